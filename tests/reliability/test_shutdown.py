"""`stop()` keeps its deadline however many sinks hang, and counts what it could not deliver."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from turnout.config import EventsConfig
from turnout.events import Event, EventSink, EventTracker, MemorySink


class HungSink(EventSink):
    """Never finishes a write or a close; notes when each started and when it was cancelled."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def write(self, batch: Sequence[Event]) -> None:
        await self._hang("write")

    def write_sync(self, batch: Sequence[Event]) -> None:
        raise RuntimeError("hung")

    async def close(self) -> None:
        await self._hang("close")

    async def _hang(self, step: str) -> None:
        self.log.append(f"{step} {self.name}")
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.log.append(f"cancelled {step} {self.name}")
            raise


async def test_hung_sinks_are_stopped_together_and_their_events_counted_lost() -> None:
    log: list[str] = []
    sinks = [HungSink(f"hung{i}", log) for i in range(6)]
    healthy = MemorySink()
    config = EventsConfig(shutdown_timeout_s=0.3, flush_interval_s=0.05)
    tracker = EventTracker([*sinks, healthy], config)
    await tracker.start()
    for n in range(10):
        assert tracker.track("query", distinct_id=f"u{n}")
    async with asyncio.timeout(30):  # only a guard against a hang, not a measurement
        delivered_all = await tracker.stop()

    assert not delivered_all
    assert len(healthy.events) == 10 and healthy.closed
    assert tracker.lost == 6 * 10  # every hung sink's copy of every event, counted
    closes = [entry for entry in log if entry.startswith("close")]
    cancelled = [i for i, entry in enumerate(log) if entry.startswith("cancelled close")]
    assert len(closes) == len(cancelled) == 6
    # Concurrent, not one after another: every close began before the first was given up.
    assert max(i for i, entry in enumerate(log) if entry.startswith("close")) < min(cancelled)


def test_the_sink_write_timeout_comes_from_the_config() -> None:
    tracker = EventTracker([MemorySink()], EventsConfig(sink_timeout_s="2s"))
    assert [lane.write_timeout_s for lane in tracker.lanes] == [2.0]
    assert EventsConfig().sink_timeout_s == 30.0
