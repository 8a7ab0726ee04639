"""Sinks: SQLite schema and rows, JSON lines, memory, and building sinks from URLs."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import turnout.plugins
from turnout.errors import TurnoutError
from turnout.events import (
    Event,
    EventSink,
    EventTracker,
    JsonlSink,
    MemorySink,
    SQLiteSink,
    ThreadedSink,
    sink_from_url,
)
from turnout.events.sinks import _rows


def events(count: int = 3) -> list[Event]:
    return [
        Event(
            "session.message",
            f"user-{i}",
            {"i": i, "text": "你好"},
            datetime(2026, 1, 29, 12, 0, i, 123_456, tzinfo=UTC),
            session_id=f"s{i}",
        )
        for i in range(count)
    ]


async def test_sqlite_schema_is_analytics_events_in_wal_mode(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "sub" / "events.db")
    await sink.write(events(1))
    await sink.close()
    with sqlite3.connect(tmp_path / "sub" / "events.db") as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        columns = [row[1] for row in db.execute("PRAGMA table_info(analytics_events)")]
        indexes = {
            row[1]: [col[2] for col in db.execute(f"PRAGMA index_info({row[1]})")]
            for row in db.execute("PRAGMA index_list(analytics_events)")
            if row[3] == "c"  # created by CREATE INDEX, not the primary key's
        }
    assert columns == ["id", "kind", "event_name", "distinct_id", "session_id", "properties", "created_at"]
    assert indexes == {
        "idx_analytics_events_created": ["created_at"],
        "idx_analytics_events_distinct_id": ["distinct_id"],
        "idx_analytics_events_name_created": ["event_name", "created_at"],
        # exposures by experiment (an expression) and user, for experiment reports
        "idx_analytics_events_exposure": [None, "distinct_id"],
    }


async def test_sqlite_rows_hold_every_field(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "events.db")
    batch = events(3)
    await sink.write(batch)
    await sink.close()
    with sqlite3.connect(tmp_path / "events.db") as db:
        rows = db.execute(
            "SELECT id, kind, event_name, distinct_id, session_id, properties, created_at"
            " FROM analytics_events ORDER BY created_at"
        ).fetchall()
    assert [row[0] for row in rows] == [e.id for e in batch]
    assert rows[1][1:5] == ("track", "session.message", "user-1", "s1")
    assert json.loads(rows[1][5]) == {"i": 1, "text": "你好"}
    assert rows[1][6] == "2026-01-29T12:00:01.123456+00:00"
    assert datetime.fromisoformat(rows[1][6]) == batch[1].timestamp


async def test_sqlite_writes_are_idempotent_and_survive_close(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    sink = SQLiteSink(path)
    batch = events(5)
    await sink.write(batch)
    await sink.close()
    await sink.write(batch)  # a retried batch after an ambiguous failure
    sink.write_sync(events(2) + batch)
    await sink.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM analytics_events").fetchone() == (7,)


async def test_sqlite_write_fails_while_another_writer_holds_the_lock_then_succeeds(tmp_path: Path) -> None:
    path = tmp_path / "events.db"
    sink = SQLiteSink(path, busy_timeout_s=0.05)
    await sink.write(events(1))
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await sink.write(events(3))
    other.execute("ROLLBACK")
    other.close()
    path.unlink()  # even a file removed meanwhile comes back, schema and all
    await sink.write(events(3))
    await sink.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM analytics_events").fetchone() == (3,)


def test_sqlite_in_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "events.db")
    sink.write_sync(events(1))
    inherited = sink._db
    sink._pid = -1  # what a forked child sees: the pid it started with is not its own
    sink.write_sync(events(2)[1:])
    assert sink._db is not inherited and sink._db is not None
    assert inherited is not None
    inherited.close()


@given(
    st.datetimes(
        min_value=datetime(1970, 1, 2), timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])
    )
)
@example(datetime(3059, 1, 1, 0, 0, 0, 999_997, tzinfo=UTC))  # the float rounds up to the next second
@example(datetime(2026, 1, 29, 12, 0, 0, 0, tzinfo=UTC))
def test_iso_text_matches_isoformat_in_utc(moment: datetime) -> None:
    [row] = _rows([Event("a", "u", {}, moment)])
    assert row[-1] == moment.astimezone(UTC).isoformat(timespec="microseconds")


async def test_jsonl_writes_one_object_per_line(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    sink = JsonlSink(path)
    await sink.write(events(2))
    sink.write_sync(events(3)[2:])
    await sink.close()
    lines = path.read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == 3
    assert records[0] == {
        "id": records[0]["id"],
        "kind": "track",
        "event": "session.message",
        "distinct_id": "user-0",
        "session_id": "s0",
        "timestamp": "2026-01-29T12:00:00.123456+00:00",
        "properties": {"i": 0, "text": "你好"},
    }
    assert [r["properties"]["i"] for r in records] == [0, 1, 2]


async def test_memory_sink_keeps_batches_and_events() -> None:
    sink = MemorySink()
    await sink.write(events(2))
    await sink.write(events(1))
    await sink.flush()
    await sink.close()
    assert [len(b) for b in sink.batches] == [2, 1]
    assert sink.names() == ["session.message"] * 3
    assert sink.closed


async def test_the_base_sink_does_nothing_and_write_sync_runs_write() -> None:
    class Counting(EventSink):
        def __init__(self) -> None:
            self.seen = 0

        async def write(self, batch: Sequence[Event]) -> None:
            self.seen += len(batch)

    base = EventSink()
    await base.write(events(1))
    await base.flush()
    await base.close()
    counting = Counting()
    await asyncio.to_thread(counting.write_sync, events(2))
    assert counting.seen == 2


class _Blocking(ThreadedSink):
    """Records which thread ran each blocking call."""

    name = "blocking"

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, str, int]] = []

    def write_blocking(self, batch: Sequence[Event]) -> None:
        self.calls.append(("write", threading.current_thread().name, len(batch)))

    def flush_blocking(self) -> None:
        self.calls.append(("flush", threading.current_thread().name, 0))

    def close_blocking(self) -> None:
        self.calls.append(("close", threading.current_thread().name, 0))


async def test_a_threaded_sink_runs_its_one_blocking_body_in_its_thread_and_in_sync_callers() -> None:
    sink = _Blocking()
    await sink.write(events(2))
    await sink.flush()
    await asyncio.to_thread(sink.write_sync, events(3))  # `EventTracker.flush()` from a script
    await sink.close()
    caller = [name for step, name, _ in sink.calls if step == "write"][1]
    assert [(step, size) for step, _, size in sink.calls] == [
        ("write", 2),
        ("flush", 0),
        ("write", 3),
        ("close", 0),
    ]
    assert {name for _, name, _ in sink.calls} - {caller} == {"turnout-blocking_0"}
    assert not caller.startswith("turnout-blocking")


def test_a_sink_with_only_an_async_write_serves_the_sync_flush() -> None:
    class OnlyWrite(EventSink):
        name = "only-write"

        def __init__(self) -> None:
            self.seen: list[str] = []

        async def write(self, batch: Sequence[Event]) -> None:
            await asyncio.sleep(0)  # a real await: the adapter runs it on a loop of its own
            self.seen.extend(event.name for event in batch)

    sink = OnlyWrite()
    tracker = EventTracker([sink])
    tracker.track("session.start", "u1")
    assert tracker.flush(5)
    assert sink.seen == ["session.start"]


def test_a_sink_that_still_overrides_write_sync_is_called_by_the_sync_flush() -> None:
    class TwoMethods(EventSink):
        name = "two-methods"

        def __init__(self) -> None:
            self.sync: list[str] = []

        async def write(self, batch: Sequence[Event]) -> None:
            raise AssertionError("the sync flush must use write_sync")

        def write_sync(self, batch: Sequence[Event]) -> None:
            self.sync.extend(event.name for event in batch)

    sink = TwoMethods()
    tracker = EventTracker([sink])
    tracker.track("session.start", "u1")
    assert tracker.flush(5)
    assert sink.sync == ["session.start"]


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///turnout_events.db", "turnout_events.db"),
        ("sqlite:////var/lib/turnout/events.db", "/var/lib/turnout/events.db"),
        ("sqlite://", "turnout_events.db"),
        ("sqlite", "turnout_events.db"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    sink = sink_from_url(url)
    assert isinstance(sink, SQLiteSink)
    assert sink.path == path


def test_jsonl_and_memory_urls() -> None:
    jsonl = sink_from_url("jsonl:///logs/events.jsonl")
    assert isinstance(jsonl, JsonlSink) and jsonl.path == Path("logs/events.jsonl")
    assert isinstance(sink_from_url("memory://"), MemorySink)


class _EntryPoint:
    def __init__(self, name: str, factory: Any) -> None:
        self.name = name
        self._factory = factory
        self.dist = None

    def load(self) -> Any:
        return self._factory


def test_plugins_are_found_by_name_and_get_the_url(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[str | None] = []

    def factory(url: str | None = None) -> EventSink:
        made.append(url)
        return MemorySink()

    plugins = {
        "posthog": _EntryPoint("posthog", factory),
        "broken": _EntryPoint("broken", lambda url=None: 42),
    }
    monkeypatch.setattr(
        turnout.plugins, "_installed", lambda group: plugins if group == "turnout.sinks" else {}
    )
    assert isinstance(sink_from_url("posthog"), MemorySink)
    assert isinstance(sink_from_url("posthog://eu.example"), MemorySink)
    assert made == [None, "posthog://eu.example"]
    with pytest.raises(TurnoutError, match="not an EventSink"):
        sink_from_url("broken")
    with pytest.raises(TurnoutError, match=r"no plugin 'kafka' in entry-point group 'turnout.sinks'"):
        sink_from_url("kafka://broker")
    with pytest.raises(TurnoutError, match="blocked"):
        sink_from_url("posthog", block=["posthog"])
    assert isinstance(sink_from_url("turnout.events.sinks:MemorySink"), MemorySink)
