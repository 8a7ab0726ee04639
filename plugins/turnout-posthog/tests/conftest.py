"""A PostHog capture server on 127.0.0.1 that records what the real SDK sends; no other network."""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from turnout.plugins import clear_cache

LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@dataclass(frozen=True)
class Received:
    """One request the server answered."""

    path: str
    status: int
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def events(self) -> list[dict[str, Any]]:
        batch: list[dict[str, Any]] = self.body.get("batch", [])
        return batch


class CaptureServer:
    """Answers PostHog's capture endpoints: 200, or the statuses queued with `fail_next`."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._statuses: deque[int] = deque()
        self._lock = threading.Lock()
        self.released = threading.Event()
        self.released.set()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    raw = gzip.decompress(raw)
                owner.released.wait(10)
                status = owner._answer(self.path, dict(self.headers), json.loads(raw))
                payload = b'{"status": 1}' if status == 200 else b'{"detail": "capture is down"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), name="capture-server", daemon=True
        )

    def _answer(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> int:
        with self._lock:
            status = self._statuses.popleft() if self._statuses else 200
            self.requests.append(Received(path, status, headers, body))
        return status

    def hold(self) -> None:
        """Keep requests waiting (for an answer) until `release()`."""
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def fail_next(self, count: int, status: int = 500) -> None:
        """Answer the next `count` requests with `status`."""
        with self._lock:
            self._statuses.extend([status] * count)

    def accepted(self) -> list[dict[str, Any]]:
        """Every event of every batch answered with 200, in order."""
        with self._lock:
            return [event for request in self.requests if request.status == 200 for event in request.events]

    def statuses(self) -> list[int]:
        with self._lock:
            return [request.status for request in self.requests]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.release()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def server() -> Iterator[CaptureServer]:
    capture = CaptureServer()
    capture.start()
    yield capture
    capture.stop()


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """No PostHog settings or proxies from the environment, and no connection beyond loopback."""
    for name in ("POSTHOG_API_KEY", "POSTHOG_PROJECT_API_KEY", "POSTHOG_HOST", "POSTHOG_CAPTURE_MODE"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("TURNOUT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    clear_cache()
    refused: list[Any] = []
    connect = socket.socket.connect

    def guarded(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in LOOPBACK:
            refused.append(address)
            raise OSError(f"test is offline: connection to {address!r} refused")
        connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)
    yield refused
    assert refused == []
