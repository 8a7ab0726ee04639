"""A turnout config with a flag of every type, and the OFREP app served by uvicorn on loopback."""

from __future__ import annotations

import copy
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from turnout import Turnout
from turnout.events import MemorySink

USERS = [f"user-{i}" for i in range(200)]

CONFIG: dict[str, Any] = {
    "flags": {
        "theme": {
            "kind": "value",
            "variants": ["light", "dark"],
            "default": "light",
            "overrides": {"qa-1": "dark"},
            "rules": [{"name": "ab", "experiment": "theme-test", "split": {"light": 50, "dark": 50}}],
        },
        "new-checkout": {
            "kind": "value",
            "values": {"on": True, "off": False},
            "default": "off",
            "rules": [
                {"name": "pro", "when": {"plan": "pro"}, "serve": "on"},
                {"name": "half", "experiment": "checkout-test", "split": {"on": 50, "off": 50}},
            ],
        },
        "page-size": {"kind": "value", "values": {"small": 10, "large": 50}, "default": "small"},
        "sampling": {
            "kind": "value",
            "values": {"low": 0.25, "high": 1},
            "default": "low",
            "rules": [{"split": {"low": 30, "high": 70}}],
        },
        "layout": {
            "kind": "value",
            "values": {"grid": {"columns": 3}, "list": {"columns": 1}},
            "default": "list",
            "enabled": False,
        },
        "coordinator": {
            "variants": ["legacy", "workflow"],
            "default": "legacy",
            "rules": [
                {"name": "canary", "experiment": "workflow-canary", "split": {"legacy": 80, "workflow": 20}}
            ],
        },
    }
}


@pytest.fixture
def config() -> dict[str, Any]:
    return copy.deepcopy(CONFIG)


@pytest.fixture
def users() -> list[str]:
    return list(USERS)


@pytest.fixture
def serve() -> type[Served]:
    """`with serve(app) as server:` runs the app on loopback at `server.url`."""
    return Served


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def turnout(sink: MemorySink) -> Turnout:
    return Turnout(CONFIG, event_sinks=[sink])


class Served:
    """A uvicorn server in a thread, on a loopback port chosen by the OS."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Accepted connections inherit it: without it Nagle's algorithm and delayed ACKs hold
        # every small response back by ~40 ms.
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = uvicorn.Config(app, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self) -> Served:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.socket.close()


@pytest.fixture
def served(turnout: Turnout) -> Iterator[Served]:
    with Served(turnout.ofrep_app()) as server:
        yield server
