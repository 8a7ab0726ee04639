"""One lane per sink: a bounded backlog, batched writes, retries with backoff.

Each sink has its own lane so a sink that is down holds back only its own events: the
others keep delivering. A failed batch stays in flight and is retried with exponential
backoff (capped, with jitter) until it succeeds or the tracker's stop deadline passes;
meanwhile new events wait in the lane's backlog, bounded like the tracker's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import deque
from collections.abc import Callable, Sequence
from typing import Literal

from turnout.config import EventsConfig
from turnout.events.model import Event
from turnout.events.sinks import EventSink
from turnout.failures import Failures

Overflow = Literal["drop_newest", "drop_oldest"]


class QueueOverflow(RuntimeError):
    """Events dropped because a bounded queue was full."""


class Lane:
    """A sink, the events waiting for it, and the task that writes them."""

    def __init__(
        self,
        sink: EventSink,
        name: str,
        *,
        capacity: int,
        batch_size: int,
        overflow: Overflow,
        failures: Failures,
        retry_base_s: float,
        retry_max_s: float,
        write_timeout_s: float,
    ) -> None:
        self.sink = sink
        self.name = name
        self.capacity = capacity
        self.batch_size = batch_size
        self.overflow = overflow
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.write_timeout_s = write_timeout_s
        self._failures = failures
        self.backlog: deque[Event] = deque()
        self.inflight: list[Event] | None = None
        self.delivered = 0
        self.dropped = 0
        self.failed_writes = 0
        self.stopping = False
        self._ready = asyncio.Event()
        self._nudge = asyncio.Event()

    @property
    def pending(self) -> int:
        """Events not yet delivered: the backlog and the batch in flight."""
        return len(self.backlog) + (len(self.inflight) if self.inflight is not None else 0)

    def offer(self, events: Sequence[Event]) -> None:
        """Add events to the backlog; past `capacity`, drop by the overflow policy (counted)."""
        backlog = self.backlog
        room = self.capacity - len(backlog)
        if room >= len(events):
            backlog.extend(events)
        elif self.overflow == "drop_newest":
            backlog.extend(events[: max(room, 0)])
            self._drop(len(events) - max(room, 0))
        else:
            backlog.extend(events)
            excess = len(backlog) - self.capacity
            for _ in range(excess):
                backlog.popleft()
            self._drop(excess)
        self._ready.set()

    def _drop(self, count: int) -> None:
        if count > 0:
            self.dropped += count
            self._failures.record(
                "events", QueueOverflow(f"{self.name}: backlog full ({self.capacity})"), sink=self.name
            )

    def clear(self) -> None:
        """Forget every event and count (a forked child starts empty)."""
        self.backlog.clear()
        self.inflight = None
        self.delivered = self.dropped = self.failed_writes = 0
        self.reset()  # the parent's events may hold waiters of the parent's loop

    def reset(self) -> None:
        """Fresh signalling for a new run (asyncio events are bound to the loop that waits)."""
        self._ready = asyncio.Event()
        self._nudge = asyncio.Event()
        self.stopping = False
        if self.backlog:
            self._ready.set()

    def wake(self) -> None:
        """Retry now instead of waiting out the backoff (on stop)."""
        self._nudge.set()
        self._ready.set()

    def _take(self) -> list[Event]:
        backlog = self.backlog
        return [backlog.popleft() for _ in range(min(self.batch_size, len(backlog)))]

    async def run(self) -> None:
        """Write batches until stopped (and, when stopping, until the backlog is empty)."""
        attempt = 0
        while True:
            if self.inflight is None:
                if not self.backlog:
                    if self.stopping:
                        return
                    self._ready.clear()
                    await self._ready.wait()
                    continue
                self.inflight = self._take()
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
                async with asyncio.timeout(self.write_timeout_s):
                    await self.sink.write(self.inflight)
            except Exception as exc:
                attempt += 1
                self.failed_writes += 1
                self._failures.record(f"events.sink.{self.name}", exc, attempt=attempt)
                await self._backoff(attempt)
                continue
            attempt = 0
            self.delivered += len(self.inflight)
            self.inflight = None

    async def _backoff(self, attempt: int) -> None:
        delay = min(self.retry_max_s, self.retry_base_s * 2 ** min(attempt - 1, 30))
        self._nudge.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay * random.uniform(0.5, 1.0)):
                await self._nudge.wait()

    def drain_sync(self, deadline: float, clock: Callable[[], float]) -> bool:
        """Write the whole backlog from a thread with no running loop; True if all delivered."""
        while self.inflight is not None or self.backlog:
            if self.inflight is None:
                self.inflight = self._take()
            try:
                self.sink.write_sync(self.inflight)
            except Exception as exc:
                self.failed_writes += 1
                self._failures.record(f"events.sink.{self.name}", exc, mode="sync")
                return False
            self.delivered += len(self.inflight)
            self.inflight = None
            if clock() >= deadline and (self.backlog or self.inflight):
                return False
        return True


def make_lanes(
    sinks: Sequence[EventSink],
    config: EventsConfig,
    failures: Failures,
    *,
    retry_base_s: float,
    retry_max_s: float,
    write_timeout_s: float,
) -> list[Lane]:
    """One lane per sink, named after it (`sqlite`, or `sqlite#2` when two share a name)."""
    names = [getattr(sink, "name", type(sink).__name__) for sink in sinks]
    return [
        Lane(
            sink,
            name if names.count(name) == 1 else f"{name}#{index + 1}",
            capacity=config.queue_size,
            batch_size=config.batch_size,
            overflow=config.overflow,
            failures=failures,
            retry_base_s=retry_base_s,
            retry_max_s=retry_max_s,
            write_timeout_s=write_timeout_s,
        )
        for index, (sink, name) in enumerate(zip(sinks, names, strict=True))
    ]
