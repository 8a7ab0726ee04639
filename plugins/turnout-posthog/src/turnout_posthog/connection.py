"""Settings (key and host from arguments or the environment) and one PostHog SDK client that reports failures.

The SDK sends from background consumer threads and never raises: a failed upload is
logged and handed to `on_error`. `Connection.send` captures a batch, flushes, and raises
`PostHogDeliveryError` when `on_error` named any of the batch's events, so turnout keeps
the batch and retries it. Every event carries its turnout id as its PostHog `uuid`, so a
batch sent twice is stored once (PostHog deduplicates on it).
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from posthog import Posthog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from turnout.errors import TurnoutError

DEFAULT_HOST = "https://us.i.posthog.com"
KEY_VARIABLES = ("POSTHOG_API_KEY", "POSTHOG_PROJECT_API_KEY")
HOST_VARIABLE = "POSTHOG_HOST"


class PostHogConfigError(TurnoutError):
    """The plugin's settings are missing or wrong (raised when the sink or exporter is built)."""


class PostHogDeliveryError(TurnoutError):
    """PostHog did not accept a batch (it is retried by turnout)."""


def redact(secret: str) -> str:
    """A key fit for logs: its type prefix only (`phc_abc123` → `phc_***`)."""
    prefix, sep, _ = secret.partition("_")
    return f"{prefix}_***" if sep and 0 < len(prefix) <= 4 and prefix.isalpha() else "***"


class PostHogSettings(BaseModel):
    """Where and how to send; `repr` shows the key redacted."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    api_key: str = Field(repr=False, min_length=1)
    host: str = DEFAULT_HOST
    gzip: bool = True
    timeout_s: float = Field(default=10.0, gt=0)
    """Per HTTP request."""
    flush_timeout_s: float = Field(default=20.0, gt=0)
    """How long one batch may take to go out before it counts as failed."""
    max_retries: int = Field(default=0, ge=0)
    """The SDK's own retries; 0 leaves retrying (with backoff) to turnout."""
    batch_size: int = Field(default=500, ge=1)
    """Events per HTTP request (the SDK's `flush_at`)."""
    max_queue_size: int = Field(default=10_000, ge=1)
    """Events the SDK may hold (its `max_queue_size`); a larger batch is refused, and retried."""

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__repr_args__() if name != "api_key")
        return f"PostHogSettings(api_key={redact(self.api_key)!r}, {fields})"

    __str__ = __repr__

    @classmethod
    def resolve(
        cls,
        api_key: str | None = None,
        host: str | None = None,
        *,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> PostHogSettings:
        """Settings from the arguments, else `POSTHOG_API_KEY` (`POSTHOG_PROJECT_API_KEY`), `POSTHOG_HOST`."""
        environ = os.environ if env is None else env
        key = (api_key or "").strip() or next(
            (environ[name].strip() for name in KEY_VARIABLES if environ.get(name, "").strip()), ""
        )
        if not key:
            raise PostHogConfigError(
                "no PostHog project API key: set POSTHOG_API_KEY (or POSTHOG_PROJECT_API_KEY), "
                "or pass api_key= (exporter_options.posthog.api_key for the exporter)"
            )
        where = ((host or "").strip() or environ.get(HOST_VARIABLE, "").strip() or DEFAULT_HOST).rstrip("/")
        if not where.startswith(("http://", "https://")):
            raise PostHogConfigError(f"PostHog host {where!r} must start with http:// or https://")
        try:
            return cls.model_validate({**options, "api_key": key, "host": where})
        except ValidationError as exc:
            # Built by hand: pydantic's own message would quote the inputs, the key among them.
            problems = "; ".join(
                f"{'.'.join(map(str, error['loc'])) or 'options'}: {error['msg']}" for error in exc.errors()
            )
            raise PostHogConfigError(f"invalid PostHog options: {problems}") from None


@dataclass(frozen=True, slots=True)
class Capture:
    """One call of the SDK's `capture`."""

    event: str
    distinct_id: str
    properties: dict[str, Any]
    timestamp: datetime | None = None
    uuid: str | None = None


class Connection:
    """One SDK client, made on first use (its consumer thread starts then), and what it failed to send.

    `send` is blocking: call it from a worker thread. Calls are serialised, so a failure
    reported by the SDK belongs to the batch being sent.
    """

    def __init__(self, settings: PostHogSettings) -> None:
        self.settings = settings
        self._client: Posthog | None = None
        self._closed = False
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._failed: dict[str, BaseException] = {}

    def __repr__(self) -> str:
        return f"Connection({self.settings!r})"

    def _after_fork(self) -> None:
        if self._pid != os.getpid():
            # A lock held by a parent's thread at fork would stay held here forever. The SDK
            # rebuilds its own client's queue and threads in a forked child.
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._failed = {}

    def _on_error(self, error: BaseException, batch: Sequence[Mapping[str, Any]]) -> None:
        # Runs in the SDK's consumer thread, before the batch counts as done in its queue.
        for message in batch:
            self._failed[str(message.get("uuid"))] = error

    def client(self) -> Posthog:
        """The SDK client (created now if need be); call with the lock held."""
        if self._closed:
            raise PostHogDeliveryError("the PostHog connection is closed")
        client = self._client
        if client is None:
            settings = self.settings
            client = self._client = Posthog(
                settings.api_key,
                host=settings.host,
                on_error=self._on_error,
                gzip=settings.gzip,
                timeout=settings.timeout_s,
                max_retries=settings.max_retries,
                flush_at=settings.batch_size,
                max_queue_size=settings.max_queue_size,
                thread=1,
            )
        return client

    def send(self, captures: Sequence[Capture]) -> None:
        """Capture every event and wait until the SDK sent them; raise if any was not accepted."""
        if not captures:
            return
        self._after_fork()
        with self._lock:
            client = self.client()
            self._failed.clear()
            queued: list[str] = []
            refused = 0
            for capture in captures:
                sent = client.capture(
                    event=capture.event,
                    distinct_id=capture.distinct_id,
                    properties=capture.properties,
                    timestamp=capture.timestamp,
                    uuid=capture.uuid,
                )
                if sent is None:  # the SDK's queue is full, or the client is shutting down
                    refused += 1
                else:
                    queued.append(str(sent))
            _flush(client, self.settings.flush_timeout_s)
            failed = [uuid for uuid in queued if uuid in self._failed]
            waiting = client.queue.unfinished_tasks
            if failed or refused or waiting:
                raise PostHogDeliveryError(_explain(len(captures), failed, refused, waiting, self._failed))

    def flush(self, timeout_s: float) -> bool:
        """Send anything the SDK still holds; True if nothing is left."""
        self._after_fork()
        with self._lock:
            client = self._client
            if client is None:
                return True
            _flush(client, timeout_s)
            return not client.queue.unfinished_tasks

    def close(self) -> None:
        """Shut the SDK client down (it sends what it holds first); later sends raise."""
        self._after_fork()
        with self._lock:
            client, self._client, self._closed = self._client, None, True
        if client is not None:
            client.shutdown()


def _explain(
    total: int, failed: list[str], refused: int, waiting: int, errors: Mapping[str, BaseException]
) -> str:
    parts = []
    if failed:
        parts.append(f"{len(failed)} rejected ({errors[failed[0]]})")
    if refused:
        parts.append(f"{refused} refused by the SDK's queue (full or shut down)")
    if waiting:
        parts.append(f"{waiting} still unsent at the flush deadline")
    return f"a batch of {total} events did not reach PostHog: {'; '.join(parts)}"


def _flush(client: Posthog, timeout_s: float) -> None:
    # Recent SDKs wait at most `timeout_seconds`; older ones (6.x) only have the unbounded flush().
    if _FLUSH_TAKES_TIMEOUT:
        client.flush(timeout_seconds=timeout_s)
    else:
        client.flush()


_FLUSH_TAKES_TIMEOUT = "timeout_seconds" in inspect.signature(Posthog.flush).parameters
