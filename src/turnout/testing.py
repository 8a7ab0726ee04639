"""Helpers for testing code that uses turnout: a Turnout that touches no file and reads no
environment, captured decisions and events, a fake clock, in-memory exporter and sink, polling.
"""

from __future__ import annotations

import asyncio
import copy
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from turnout.context import RoutingContext
from turnout.decision import Decision
from turnout.events.model import Event
from turnout.events.sinks import MemorySink
from turnout.router import Turnout
from turnout.telemetry.exporters import Exporter
from turnout.telemetry.snapshot import MetricsSnapshot
from turnout.types import Clock, EngineCallable

__all__ = [
    "FakeClock",
    "InMemoryExporter",
    "MemorySink",
    "capture_decisions",
    "capture_events",
    "context",
    "eventually",
    "eventually_async",
    "make_turnout",
]


class FakeClock:
    """An injectable clock (`Turnout(..., clock=FakeClock())`) that moves only when told."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class InMemoryExporter(Exporter):
    """Keeps every exported snapshot in `snapshots` (thread-safe)."""

    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: list[MetricsSnapshot] = []
        self.shut_down = False

    def export(self, snapshot: MetricsSnapshot) -> None:
        with self._lock:
            self._snapshots.append(snapshot)

    def shutdown(self) -> None:
        self.shut_down = True

    @property
    def snapshots(self) -> list[MetricsSnapshot]:
        """The snapshots received so far, oldest first."""
        with self._lock:
            return list(self._snapshots)

    def clear(self) -> None:
        """Forget the snapshots received so far."""
        with self._lock:
            self._snapshots.clear()


def context(key: str = "user-1", /, **attributes: Any) -> RoutingContext:
    """A routing context for tests: `context("u1", plan="premium")`."""
    text = attributes.pop("text", None)
    overrides: Mapping[str, str] = attributes.pop("overrides", {})
    return RoutingContext(key, attributes, text=text, overrides=overrides)


def make_turnout(
    config: Mapping[str, Any] | None = None,
    *,
    engines: Mapping[str, EngineCallable] | None = None,
    clock: Clock | None = None,
    sink: MemorySink | None = None,
    exporter: InMemoryExporter | None = None,
    exporters: Sequence[Exporter] = (),
    **options: Any,
) -> Turnout:
    """A `Turnout` for tests: reads no environment and writes nothing in the working directory.

    Events go to `sink` (a new `MemorySink` by default: `turnout.events` delivers to it), metrics
    snapshots to `exporter` (a new `InMemoryExporter`; `exporters` adds others) and to no file
    unless the config names one, the state store to a
    temporary directory removed with the Turnout. `engines` are registered by name; `clock`
    (a `FakeClock`, say) drives rollouts, guardrails and events; `options` go to `Turnout`.
    """
    data: dict[str, Any] = copy.deepcopy(dict(config or {}))
    telemetry = data.setdefault("telemetry", {})
    telemetry.setdefault("exporters", [])
    scratch = Path(tempfile.mkdtemp(prefix="turnout-test-"))
    telemetry.setdefault("jsonl_path", str(scratch / "metrics.jsonl"))
    data.setdefault("state", {}).setdefault("url", f"sqlite:///{scratch / 'state.db'}")
    if clock is not None:
        options["clock"] = clock
    turnout = Turnout(
        data,
        env={},
        event_sinks=[sink if sink is not None else MemorySink()],
        exporters=[exporter if exporter is not None else InMemoryExporter(), *exporters],
        **options,
    )
    weakref.finalize(turnout, shutil.rmtree, scratch, ignore_errors=True)
    for name, func in (engines or {}).items():
        turnout.add_engine(name, func)
    return turnout


@contextmanager
def capture_decisions(turnout: Turnout) -> Iterator[list[Decision]]:
    """Every decision `turnout` makes inside the block, in order: `with capture_decisions(t) as seen:`."""
    seen: list[Decision] = []
    remove = turnout.add_decision_listener(lambda decision, _: seen.append(decision))
    try:
        yield seen
    finally:
        remove()


class capture_events:
    """The events `turnout` delivered to its `MemorySink` while the block ran (flushed on exit).

    `with` in sync code, `async with` in async code (where the flush is awaited). The list is
    filled when the block ends.
    """

    def __init__(self, turnout: Turnout) -> None:
        sinks = [lane.sink for lane in turnout.events.lanes if isinstance(lane.sink, MemorySink)]
        if not sinks:
            raise TypeError(
                "capture_events needs a Turnout whose events go to a MemorySink "
                "(turnout.testing.make_turnout makes one)"
            )
        self._turnout = turnout
        self._sink = sinks[0]
        self._start = 0
        self.events: list[Event] = []

    def __enter__(self) -> list[Event]:
        self._start = len(self._sink.events)
        return self.events

    def __exit__(self, *exc: object) -> None:
        if _loop_running():
            raise TypeError("inside a running event loop use `async with capture_events(...)`")
        self._turnout.events.flush()
        self.events.extend(self._sink.events[self._start :])

    async def __aenter__(self) -> list[Event]:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._turnout.events.aflush()
        self.events.extend(self._sink.events[self._start :])


def eventually(
    condition: Callable[[], object],
    what: str = "the condition",
    *,
    timeout_s: float = 10.0,
    every_s: float = 0.01,
) -> None:
    """Poll `condition` until it is true; AssertionError naming `what` after `timeout_s` seconds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:g} s waiting for {what}")
        time.sleep(every_s)


async def eventually_async(
    condition: Callable[[], object | Awaitable[object]],
    what: str = "the condition",
    *,
    timeout_s: float = 10.0,
    every_s: float = 0.01,
) -> None:
    """`eventually` for async tests: sleeps without blocking the loop; `condition` may be async."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:g} s waiting for {what}")
        await asyncio.sleep(every_s)


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
