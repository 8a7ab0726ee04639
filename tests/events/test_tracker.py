"""EventTracker: enqueue from anywhere, bounded queue, retries, graceful stop, exposures."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from turnout.config import EventsConfig
from turnout.context import RoutingContext, use_context
from turnout.decision import Decision, Reason
from turnout.errors import TurnoutError
from turnout.events import Event, EventSink, EventTracker, MemorySink, SQLiteSink
from turnout.events.model import _ids
from turnout.testing import eventually_async as eventually


def tracker(*sinks: EventSink, **config: Any) -> EventTracker:
    return EventTracker(
        list(sinks) or [MemorySink()], EventsConfig(**config), retry_base_s=0.01, retry_max_s=0.05
    )


class FailingSink(EventSink):
    """Raises on every write (a database that is down)."""

    name = "down"

    def __init__(self) -> None:
        self.calls = 0

    async def write(self, batch: Sequence[Event]) -> None:
        self.calls += 1
        raise ConnectionError("sink is down")


class FlakySink(MemorySink):
    """Fails the first `failures` writes, then delivers."""

    name = "flaky"

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def write(self, batch: Sequence[Event]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("not yet")
        await super().write(batch)


class HangingSink(EventSink):
    name = "hangs"

    async def write(self, batch: Sequence[Event]) -> None:
        await asyncio.sleep(60)


def test_track_from_many_threads_then_flush_without_a_loop() -> None:
    sink = MemorySink()
    events = tracker(sink)

    def work(n: int) -> None:
        for i in range(1000):
            assert events.track("session.message", f"user-{n}", {"i": i})

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert events.tracked == 8000 and events.pending == 8000
    assert events.flush(timeout_s=10)
    assert len(sink.events) == 8000
    assert len({e.id for e in sink.events}) == 8000
    assert events.pending == 0 and events.counts()["sink.memory.delivered"] == 8000


async def test_track_from_async_code_and_worker_threads_while_running() -> None:
    sink = MemorySink()
    events = tracker(sink, batch_size=50, flush_interval_s=0.02)
    await events.start()
    for i in range(300):
        events.track("session.start", "u", {"i": i})
    await asyncio.to_thread(lambda: [events.track("query.order", "u", {"i": i}) for i in range(300)])
    await eventually(lambda: len(sink.events) == 600)
    assert await events.stop()
    assert sorted(e.name for e in sink.events).count("query.order") == 300


async def test_a_full_batch_is_delivered_without_waiting_for_the_interval() -> None:
    sink = MemorySink()
    events = tracker(sink, batch_size=10, flush_interval_s=3600)
    await events.start()
    for i in range(10):
        events.track("session.start", "u", {"i": i})
    await eventually(lambda: len(sink.events) == 10)
    assert await events.stop()


async def test_a_partial_batch_is_delivered_after_the_interval() -> None:
    sink = MemorySink()
    events = tracker(sink, batch_size=1000, flush_interval_s=0.05)
    await events.start()
    events.track("session.start", "u")
    await eventually(lambda: len(sink.events) == 1)
    assert await events.stop()


@pytest.mark.parametrize(("overflow", "kept"), [("drop_newest", range(10)), ("drop_oldest", range(5, 15))])
def test_overflow_policies_drop_and_count(overflow: str, kept: range) -> None:
    sink = MemorySink()
    events = tracker(sink, queue_size=10, overflow=overflow)
    with capture_logs() as logs:
        accepted = [events.track("session.message", "u", {"i": i}) for i in range(15)]
    assert [log["error"] for log in logs if log["event"] == "turnout.failure"] == [
        "QueueOverflow('queue full (10)')"
    ]  # logged once
    assert accepted == ([True] * 10 + [False] * 5 if overflow == "drop_newest" else [True] * 15)
    assert events.dropped == 5
    assert events.failures.snapshot()["events"] == {"QueueOverflow": 5}
    assert events.flush(timeout_s=5)
    assert [e.properties["i"] for e in sink.events] == list(kept)


async def test_a_sink_failing_every_call_never_touches_track_and_drops_are_counted() -> None:
    down = FailingSink()
    events = tracker(down, queue_size=50, batch_size=10, flush_interval_s=0.01)
    await events.start()
    results = []
    for i in range(400):
        results.append(events.track("session.message", "u", {"i": i}))
        if i % 20 == 0:
            await asyncio.sleep(0.005)
    await eventually(lambda: events.counts()["sink.down.failed_writes"] >= 3)
    assert events.dropped > 0
    assert events.tracked == 400
    assert events.dropped + events.pending == 400  # nothing vanished unaccounted
    assert events.pending <= 50 + 50 + 10  # queue + backlog + one batch in flight
    assert events.failures.count("events.sink.down") >= 3
    assert not await events.stop(timeout_s=0.2)
    assert events.lost > 0
    assert events.lost + events.dropped == 400
    assert events.pending == 0


async def test_a_sink_that_recovers_gets_every_event_in_order() -> None:
    flaky = FlakySink(failures=4)
    events = tracker(flaky, batch_size=25, flush_interval_s=0.01)
    await events.start()
    for i in range(100):
        events.track("session.message", "u", {"i": i})
    await eventually(lambda: len(flaky.events) == 100)
    assert [e.properties["i"] for e in flaky.events] == list(range(100))
    assert events.counts()["sink.flaky.failed_writes"] == 4
    assert await events.stop()
    assert events.lost == 0 and events.dropped == 0


async def test_a_sink_that_is_down_does_not_hold_back_the_others() -> None:
    healthy, down = MemorySink(), FailingSink()
    events = tracker(healthy, down, batch_size=10, flush_interval_s=0.01)
    await events.start()
    for i in range(100):
        events.track("session.message", "u", {"i": i})
    await eventually(lambda: len(healthy.events) == 100)
    assert events.counts()["sink.down.pending"] == 100
    assert not await events.stop(timeout_s=0.1)
    assert events.lost == 100


async def test_graceful_stop_delivers_ten_thousand_events_to_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    events = EventTracker([SQLiteSink(path)], EventsConfig(flush_interval_s=0.5))
    await events.start()
    for i in range(10_000):
        events.track("session.message", f"user-{i % 100}", {"i": i})
        if i % 1000 == 0:
            await asyncio.sleep(0)
    assert await events.stop()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*), count(DISTINCT id) FROM analytics_events").fetchone() == (
            10_000,
            10_000,
        )
        values = {json.loads(p)["i"] for (p,) in db.execute("SELECT properties FROM analytics_events")}
    assert values == set(range(10_000))


async def test_stop_without_start_still_delivers() -> None:
    sink = MemorySink()
    events = tracker(sink)
    events.track("session.start", "u")
    assert await events.stop()
    assert sink.names() == ["session.start"] and sink.closed


async def test_stop_gives_up_at_the_deadline_and_counts_what_was_lost() -> None:
    events = tracker(HangingSink(), batch_size=5)
    await events.start()
    for _ in range(12):
        events.track("session.start", "u")
    assert not await events.stop(timeout_s=0.1)
    assert events.lost == 12
    assert events.failures.snapshot()["events"]["EventsLost"] == 1


async def test_sync_flush_from_a_worker_thread_while_running_and_not_on_the_loop() -> None:
    sink = MemorySink()
    events = tracker(sink, flush_interval_s=3600)
    await events.start()
    events.track("session.start", "u")
    assert await asyncio.to_thread(events.flush, 5)
    assert sink.names() == ["session.start"]
    with pytest.raises(TurnoutError, match="aflush"):
        events.flush()
    events.track("session.end", "u")
    assert await events.aflush(5)
    assert sink.names() == ["session.start", "session.end"]
    assert await events.stop()


def decision(variant: str = "workflow", experiment: str | None = "workflow-canary") -> Decision:
    return Decision("coordinator", variant, variant, Reason.SPLIT, "canary", experiment, 0.42)


def test_exposures_carry_the_decision_and_are_deduplicated() -> None:
    sink = MemorySink()
    events = tracker(sink, base_properties={"environment": "test"})
    assert events.exposure(decision(), "u1")
    assert not events.exposure(decision(), "u1")
    assert events.exposure(decision("legacy"), "u1")
    assert events.exposure(decision(), "u2")
    assert not events.exposure(decision(experiment=None), "u3")
    assert events.deduplicated == 1
    events.flush()
    assert [(e.distinct_id, e.properties["variant"]) for e in sink.events] == [
        ("u1", "workflow"),
        ("u1", "legacy"),
        ("u2", "workflow"),
    ]
    first = sink.events[0]
    assert (first.kind, first.name) == ("exposure", "$exposure")
    assert first.properties == {
        "environment": "test",
        "flag": "coordinator",
        "experiment": "workflow-canary",
        "variant": "workflow",
        "reason": "SPLIT",
        "rule": "canary",
    }


def test_the_exposure_cache_is_bounded_and_least_recently_seen_goes_first() -> None:
    sink = MemorySink()
    events = EventTracker([sink], exposure_cache_size=3)
    for user in ("u1", "u2", "u3"):
        events.exposure(decision(), user)
    assert not events.exposure(decision(), "u1")  # u1 is now the most recent
    events.exposure(decision(), "u4")  # evicts u2
    assert len(events._exposures) == 3
    assert not events.exposure(decision(), "u1")
    assert events.exposure(decision(), "u2")
    for user in range(1000):
        events.exposure(decision(), f"many-{user}")
    assert len(events._exposures) == 3


def test_invalid_input_is_dropped_counted_and_never_raises() -> None:
    sink = MemorySink()
    events = tracker(sink)
    assert not events.track("bad/name", "u")
    assert not events.track(None, "u")  # type: ignore[arg-type]
    assert not events.track("ok", "u", properties=["not", "a", "mapping"])  # type: ignore[arg-type]
    assert not events.track("ok")  # no distinct id and no request context
    assert not events.track("ok", "u", timestamp="yesterday")  # type: ignore[arg-type]
    assert not events.identify(None, {"plan": "pro"})  # type: ignore[arg-type]
    assert events.invalid == 6
    assert events.failures.count("events") == 6
    assert events.track("ok", "u", {"fine": 1, "bad": object(), 7: "int key"})
    assert events.track("ok", 42)  # type: ignore[arg-type]
    events.flush()
    assert [e.properties for e in sink.events] == [{"fine": 1}, {}]
    assert sink.events[1].distinct_id == "42"
    assert events.counts()["properties_dropped"] == 2


def test_distinct_and_session_ids_come_from_the_routing_context() -> None:
    sink = MemorySink()
    events = tracker(sink)
    with use_context(RoutingContext("user-7", session_id="s-1")):
        events.track("session.start")
        events.track("session.start", "explicit")
        events.track("session.message", properties={"session_id": "s-2"})
        events.exposure(decision())
    with use_context(RoutingContext("cookie-123", anonymous=True, session_id="s-3")):
        events.track("session.start")
    events.exposure(decision(), context=RoutingContext("user-8", session_id="s-4"))  # not the current one
    events.flush()
    assert [(e.distinct_id, e.session_id) for e in sink.events] == [
        ("user-7", "s-1"),
        ("explicit", "s-1"),
        ("user-7", "s-2"),
        ("user-7", "s-1"),
        ("anonymous_cookie-123", "s-3"),
        ("user-8", "s-4"),
    ]


def test_base_properties_are_merged_and_event_properties_win() -> None:
    sink = MemorySink()
    events = tracker(sink, base_properties={"environment": "prod", "source": "bot"})
    events.track("session.start", "u")
    events.track("session.start", "u", {"source": "cli", "n": 1})
    events.identify("u", {"plan": "pro"})
    events.flush()
    assert [e.properties for e in sink.events] == [
        {"environment": "prod", "source": "bot"},
        {"environment": "prod", "source": "cli", "n": 1},
        {"plan": "pro"},  # traits are about the user, not the service
    ]
    assert (sink.events[2].kind, sink.events[2].name) == ("identify", "$identify")


def test_timestamps_given_are_kept() -> None:
    sink = MemorySink()
    events = EventTracker([sink], clock=lambda: 1_769_688_000.0)
    events.track("a", "u")
    events.track("b", "u", timestamp=1_769_000_000)
    events.flush()
    assert [e.timestamp.timestamp() for e in sink.events] == [1_769_688_000.0, 1_769_000_000.0]


def test_a_failed_sync_flush_keeps_the_events_for_later() -> None:
    flaky = FlakySink(failures=1)
    events = tracker(flaky)
    for i in range(3):
        events.track("session.message", "u", {"i": i})
    assert not events.flush(timeout_s=5)
    assert events.pending == 3 and events.lost == 0
    assert events.flush(timeout_s=5)
    assert [e.properties["i"] for e in flaky.events] == [0, 1, 2]


def test_construction_starts_no_thread(tmp_path: Path) -> None:
    before = threading.active_count()
    events = EventTracker([SQLiteSink(tmp_path / "e.db"), MemorySink()])
    events.track("session.start", "u")
    assert threading.active_count() == before


def test_disabled_or_sinkless_trackers_accept_nothing() -> None:
    assert not EventTracker([MemorySink()], EventsConfig(enabled=False)).track("a", "u")
    assert not EventTracker([]).track("a", "u")
    assert EventTracker.from_config(EventsConfig(enabled=False)).lanes == []


def test_from_config_builds_the_named_sinks(tmp_path: Path) -> None:
    config = EventsConfig(
        sink=f"sqlite:///{tmp_path}/e.db", sinks=["memory://", f"sqlite:///{tmp_path}/e.db"]
    )
    events = EventTracker.from_config(config)
    assert [lane.name for lane in events.lanes] == ["sqlite", "memory"]
    with pytest.raises(TurnoutError, match=r"base_properties"):
        EventTracker([MemorySink()], EventsConfig(base_properties={"bad": float("nan")}))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="POSIX fork")
def test_a_forked_child_starts_empty_and_mints_other_ids() -> None:
    events = tracker(MemorySink())
    for _ in range(5):
        events.track("session.start", "u")
    parent_middle = _ids.middle
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's teardown
        ok = events.pending == 0 and events.tracked == 0 and _ids.middle != parent_middle
        ok = ok and events.track("session.start", "u") and events.pending == 1
        os.write(write, b"ok" if ok else b"bad")
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 8) == b"ok"
    os.close(read)
    assert events.pending == 5
