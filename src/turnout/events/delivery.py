"""The flusher: moves queued events into the sinks' lanes; start, flush and stop with deadlines."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from collections.abc import Callable, Sequence

from turnout.errors import TurnoutError
from turnout.events.lanes import Lane
from turnout.events.model import Event, PropertyDropped, Raw, build_events
from turnout.failures import Failures


class EventsLost(RuntimeError):
    """Events still undelivered when a stop deadline passed."""


class SinkHung(RuntimeError):
    """A sink did not finish closing by the stop deadline; it was abandoned."""


_GRACE_S = 0.25
"""What stopping the writers and closing the sinks may take past the stop deadline."""


class Delivery:
    """Runs the flusher task and the lanes' tasks; knows how to drain them."""

    def __init__(
        self,
        lanes: Sequence[Lane],
        pop: Callable[[int], list[Raw]],
        queued: Callable[[], int],
        reject: Callable[[Exception, str], object],
        *,
        batch_size: int,
        interval_s: float,
        failures: Failures,
    ) -> None:
        self.lanes = list(lanes)
        self._pop = pop
        self._queued = queued
        self._reject = reject
        self.batch_size = batch_size
        self.interval_s = interval_s
        self._failures = failures
        self.reset()

    def reset(self) -> None:
        """Forget tasks, loop and locks (a new process, or a new start)."""
        self.loop: asyncio.AbstractEventLoop | None = None
        self.loop_thread = 0
        self._wake = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None
        self._tasks: dict[Lane, asyncio.Task[None]] = {}
        self._sync_lock = threading.Lock()
        self.lost = self.properties_dropped = 0

    def poke(self) -> None:
        """Wake the flusher now (a batch is ready); callable from any thread."""
        loop = self.loop
        if loop is None:
            return
        if threading.get_ident() == self.loop_thread:
            self._wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                loop.call_soon_threadsafe(self._wake.set)

    def move(self, limit: int | None = None) -> None:
        """Turn up to `limit` (default: all) queued events into `Event`s and offer them to every lane."""
        remaining = self._queued() if limit is None else limit
        while remaining > 0:
            raw = self._pop(min(remaining, self.batch_size))
            if not raw:
                return
            remaining -= len(raw)
            events = self._build(raw)
            for lane in self.lanes:
                lane.offer(events)

    def _build(self, raw: list[Raw]) -> list[Event]:
        try:
            return build_events(raw, self._dropped_properties, self._reject)
        except Exception as exc:  # a bug, not bad input (that is handled inside): count them all
            for item in raw:
                self._reject(exc, item[1])
            return []

    def _dropped_properties(self, name: str, dropped: list[str]) -> None:
        self.properties_dropped += len(dropped)
        self._failures.record("events", PropertyDropped("; ".join(dropped)[:300]), event_name=name)

    async def start(self) -> None:
        """Start the flusher and one writer task per lane on the running loop."""
        if self.loop is not None or not self.lanes:
            return
        self.loop = asyncio.get_running_loop()
        self.loop_thread = threading.get_ident()
        self._wake = asyncio.Event()
        for lane in self.lanes:
            self._spawn(lane)
        self._flusher = asyncio.create_task(self._run(), name="turnout-events")

    def _spawn(self, lane: Lane) -> None:
        task = self._tasks.get(lane)
        if task is None or task.done():
            lane.reset()
            self._tasks[lane] = asyncio.create_task(lane.run(), name=f"turnout-events-{lane.name}")

    async def _run(self) -> None:
        size = self.batch_size
        while True:
            if self._queued() < size:
                self._wake.clear()
                if self._queued() < size:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.interval_s):
                            await self._wake.wait()
            else:
                await asyncio.sleep(0)  # a long queue: one batch at a time, requests run in between
            try:
                self.move(size)
            except Exception as exc:  # the flusher must outlive any bug in one batch
                self._failures.record("events.flush", exc)

    async def flush(self, timeout_s: float) -> bool:
        """Deliver everything queued so far, waiting up to `timeout_s`; True if all was delivered."""
        loop = asyncio.get_running_loop()
        if self.loop is not loop:
            return await asyncio.to_thread(self.flush_sync, timeout_s)
        deadline = loop.time() + timeout_s
        while True:
            self.move()
            if not self._queued() and not any(lane.pending for lane in self.lanes):
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.005)

    def flush_sync(self, timeout_s: float) -> bool:
        """`flush` for code with no running loop (scripts, CLI, worker threads)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            if threading.get_ident() == self.loop_thread:
                raise TurnoutError("flush() would block the event loop; use `await tracker.aflush()` there")
            future = asyncio.run_coroutine_threadsafe(self.flush(timeout_s), loop)
            try:
                return future.result(timeout_s + 1.0)
            except (TimeoutError, concurrent.futures.CancelledError):
                future.cancel()
                return False
        with self._sync_lock:
            deadline = time.monotonic() + timeout_s
            self.move()
            delivered = [lane.drain_sync(deadline, time.monotonic) for lane in self.lanes]  # each lane tries
            return all(delivered)

    async def _close(self, lane: Lane) -> None:
        try:
            await lane.sink.close()
        except Exception as exc:
            self._failures.record(f"events.sink.{lane.name}", exc, step="close")

    async def stop(self, timeout_s: float) -> int:
        """Deliver everything within `timeout_s`, stop the tasks, close the sinks; the number lost."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        flusher, self._flusher = self._flusher, None
        if flusher is not None:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher
        while True:
            self.move()
            for lane in self.lanes:
                if lane.pending or lane in self._tasks:
                    self._spawn(lane)
                    lane.stopping = True
                    lane.wake()
            running = [task for task in self._tasks.values() if not task.done()]
            if running:
                _, late = await asyncio.wait(running, timeout=max(0.0, deadline - loop.time()))
                if late:
                    break
            if not self._queued() or loop.time() >= deadline:
                break
        # Past the deadline, cancelling the writers and closing the sinks share one short grace.
        final = max(deadline, loop.time()) + _GRACE_S
        for task in self._tasks.values():
            task.cancel()
        tasks = [task for task in self._tasks.values() if not task.done()]
        if tasks:
            # Bounded: a sink that swallows the cancellation must not hold the stop past its deadline.
            await asyncio.wait(tasks, timeout=max(final - loop.time(), 0.0))
        self.move()  # anything queued during the last round: counted below as lost
        lost = sum(lane.pending for lane in self.lanes)
        for lane in self.lanes:
            lane.backlog.clear()
            lane.inflight = None
        if lost:
            self.lost += lost
            self._failures.record("events", EventsLost(f"{lost} undelivered at the {timeout_s:g}s deadline"))
        # All sinks close at once under one deadline: N hung sinks cost no more than one.
        closes = {asyncio.ensure_future(self._close(lane)): lane for lane in self.lanes}
        if closes:
            _, hung = await asyncio.wait(closes, timeout=max(final - loop.time(), 0.05))
            for task in hung:
                task.cancel()
                self._failures.record(
                    f"events.sink.{closes[task].name}", SinkHung("close() passed the stop deadline")
                )
            if hung:
                await asyncio.sleep(0)  # let each hung close see its cancellation (if it will)
        self._tasks.clear()
        self.loop, self.loop_thread = None, 0
        return lost
