"""The snapshot loop: every interval, and once on stop, hand a snapshot to each exporter.

Each exporter runs in its own single worker thread with a timeout: one that raises is
logged once and counted, one that hangs is abandoned for that round (and skipped while
still busy), and neither delays requests or the other exporters.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable, Sequence

from turnout.failures import Failures
from turnout.telemetry.exporters import Exporter
from turnout.telemetry.snapshot import MetricsSnapshot


class _Lane:
    """One exporter and the thread it runs in."""

    def __init__(self, exporter: Exporter) -> None:
        self.exporter = exporter
        self.name = getattr(exporter, "name", type(exporter).__name__)
        self.pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"turnout-export-{self.name}")
        self.pending: asyncio.Future[object] | None = None


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
        """Stop the loop, export a final snapshot, shut exporters down."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._lanes:
            await self.publish()
        for lane in self._lanes:
            await self._call(lane, lane.exporter.shutdown, "shutdown")
            lane.pool.shutdown(wait=False)

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
        if lane.pending is not None and not lane.pending.done():
            self._failures.record(
                f"exporter.{lane.name}", TimeoutError("previous export still running; skipped")
            )
            return
        await self._call(lane, lambda: lane.exporter.export(snapshot), "export")

    async def _call(self, lane: _Lane, func: Callable[[], object], what: str) -> None:
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(lane.pool, func)
        lane.pending = future
        try:
            await asyncio.wait_for(asyncio.shield(future), self.timeout_s)
        except TimeoutError:
            self._failures.record(
                f"exporter.{lane.name}", TimeoutError(f"{what} took longer than {self.timeout_s:g}s")
            )
            future.add_done_callback(_consume)
        except Exception as exc:
            self._failures.record(f"exporter.{lane.name}", exc, step=what)


def _consume(future: asyncio.Future[object]) -> None:
    # An abandoned export may still fail later; read its exception so asyncio does not warn.
    if not future.cancelled():
        future.exception()
