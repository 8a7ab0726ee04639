"""The snapshot loop: every interval, and once on stop, hand a snapshot to each exporter.

Each exporter runs in its own daemon worker thread with a timeout: one that raises is
logged once and counted, one that hangs is abandoned for that round (and skipped while
still busy), and neither delays requests, the other exporters, `stop()` or the exit of
the process (a thread pool's workers would be joined at exit, forever for a hung one).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable, Sequence

from turnout.failures import Failures
from turnout.telemetry.exporters import Exporter
from turnout.telemetry.snapshot import MetricsSnapshot

_Job = tuple[Callable[[], object], asyncio.AbstractEventLoop, "asyncio.Future[object]"]


class _Lane:
    """One exporter and the daemon thread its calls run in, one after another."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter
        self.name = getattr(exporter, "name", type(exporter).__name__)
        self.pending: asyncio.Future[object] | None = None
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        return self.pending is not None and not self.pending.done()

    def submit(self, func: Callable[[], object]) -> asyncio.Future[object]:
        """Queue `func` for the lane's thread; the future settles on the running loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[object] = loop.create_future()
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._work, name=f"turnout-export-{self.name}", daemon=True
            )
            self._thread.start()
        self._jobs.put((func, loop, future))
        self.pending = future
        return future

    def close(self) -> None:
        """Let the thread end once the calls queued before are done."""
        self._jobs.put(None)

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            func, loop, future = job
            result: object = None
            error: BaseException | None = None
            try:
                result = func()
            except Exception as exc:
                error = exc
            except BaseException as exc:  # e.g. SystemExit in an exporter: still only a failure
                error = RuntimeError(f"exporter raised {exc!r}")
            with contextlib.suppress(RuntimeError):  # the event loop is closed: nobody waits
                loop.call_soon_threadsafe(_settle, future, result, error)


def _settle(future: asyncio.Future[object], result: object, error: BaseException | None) -> None:
    if future.cancelled():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class SnapshotLoop:
    """Takes a snapshot every `interval_s` and exports it; a final one on `stop()`."""

    def __init__(
        self,
        take: Callable[[], MetricsSnapshot],
        exporters: Sequence[Exporter],
        *,
        interval_s: float,
        timeout_s: float,
        failures: Failures,
    ) -> None:
        self._take = take
        self._lanes = [_Lane(exporter) for exporter in exporters]
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._failures = failures
        self._task: asyncio.Task[None] | None = None
        self.exported = 0

    @property
    def exporters(self) -> list[Exporter]:
        """The exporters, in config order."""
        return [lane.exporter for lane in self._lanes]

    def start(self) -> None:
        """Start the periodic loop on the running event loop."""
        if self._task is None and self._lanes:
            self._task = asyncio.create_task(self._run(), name="turnout-snapshots")

    async def stop(self) -> None:
        """Stop the loop, export a final snapshot, shut exporters down; each wait is bounded."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if not self._lanes:
            return
        # An export the cancelled round left running should still get the final snapshot.
        running = [lane.pending for lane in self._lanes if lane.pending is not None and lane.busy]
        if running:
            await asyncio.wait(running, timeout=self.timeout_s)
        await self.publish()
        await asyncio.gather(*(self._shutdown(lane) for lane in self._lanes))

    async def publish(self) -> MetricsSnapshot | None:
        """Take one snapshot now and export it everywhere (concurrently)."""
        try:
            snapshot = self._take()
        except Exception as exc:
            self._failures.record("telemetry.snapshot", exc)
            return None
        await asyncio.gather(*(self._export(lane, snapshot) for lane in self._lanes))
        self.exported += 1
        return snapshot

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            await self.publish()

    async def _export(self, lane: _Lane, snapshot: MetricsSnapshot) -> None:
        if lane.busy:
            self._failures.record(
                f"exporter.{lane.name}", TimeoutError("previous export still running; skipped")
            )
            return
        await self._call(lane, lambda: lane.exporter.export(snapshot), "export")

    async def _shutdown(self, lane: _Lane) -> None:
        if lane.busy:
            # Still stuck in an export: shutdown runs after it, if it ever returns; nobody waits.
            lane.submit(lane.exporter.shutdown).add_done_callback(_consume)
        else:
            await self._call(lane, lane.exporter.shutdown, "shutdown")
        lane.close()

    async def _call(self, lane: _Lane, func: Callable[[], object], what: str) -> None:
        future = lane.submit(func)
        try:
            # asyncio.wait neither cancels the call on timeout nor mistakes the exporter's own
            # TimeoutError for ours.
            done, _ = await asyncio.wait({future}, timeout=self.timeout_s)
        except asyncio.CancelledError:
            future.add_done_callback(_consume)
            raise
        if not done:
            self._failures.record(
                f"exporter.{lane.name}", TimeoutError(f"{what} took longer than {self.timeout_s:g}s")
            )
            future.add_done_callback(_consume)
            return
        error = future.exception()
        if error is not None:
            self._failures.record(f"exporter.{lane.name}", error, step=what)


def _consume(future: asyncio.Future[object]) -> None:
    # An abandoned call may still fail later; read its exception so asyncio does not warn.
    if not future.cancelled():
        future.exception()
