"""The PostgreSQL sink against a real server: COPY batches, idempotence, JSONB, NUL, restarts, fork."""

from __future__ import annotations

import asyncio
import functools
import os
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from structlog.testing import capture_logs

import pg_server
from turnout.config import EventsConfig
from turnout.errors import TurnoutError
from turnout.events import Event, EventTracker, sink_from_url
from turnout.events.postgres import MIGRATIONS, PostgresSink
from turnout.testing import eventually_async

pytestmark = pytest.mark.postgres

START = datetime(2026, 1, 29, 12, 0, 0, 123_456, tzinfo=UTC)

# A throwaway server on a busy CI machine: give deliveries longer than the default.
eventually = functools.partial(eventually_async, timeout_s=20.0)


def events(count: int, first: int = 0, name: str = "session.message") -> list[Event]:
    return [
        Event(
            name,
            f"user-{i % 97}",
            {"i": i, "response_time_ms": 100 + i % 50, "text": "你好"},
            START + timedelta(milliseconds=i),
            session_id=f"s{i % 13}",
        )
        for i in range(first, first + count)
    ]


def rows(url: str, query: str = "SELECT count(*) FROM analytics_events") -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def test_a_postgres_url_makes_a_sink_without_connecting() -> None:
    sink = sink_from_url("postgresql://app:s3cret@127.0.0.1:1/analytics?table=turnout_events&sslmode=disable")
    assert isinstance(sink, PostgresSink)
    assert sink.table == "turnout_events"
    assert sink.url == "postgresql://app:s3cret@127.0.0.1:1/analytics?sslmode=disable"
    assert "s3cret" not in repr(sink) and "***" in repr(sink)
    qualified = sink_from_url("postgres://h/db", table="app.events")
    assert isinstance(qualified, PostgresSink) and qualified.table == "app.events"
    with pytest.raises(TurnoutError, match=r"SCHEMA\.NAME"):
        PostgresSink("postgres://h/db", table="events; DROP TABLE x")
    with pytest.raises(TurnoutError, match="the URL names"):
        PostgresSink("postgres://h/db?table=a", table="b")
    with pytest.raises(TurnoutError, match="invalid postgres URL 'postgres://u:\\*\\*\\*@h/db"):
        sink_from_url("postgres://u:pw@h/db?no_such_option=1")


async def test_an_unreachable_server_raises_so_the_lane_retries() -> None:
    sink = PostgresSink(f"postgresql://postgres@127.0.0.1:{pg_server.free_port()}/x")
    with pytest.raises(psycopg.OperationalError):
        await sink.write(events(1))
    with pytest.raises(psycopg.OperationalError):
        sink.write_sync(events(1))
    await sink.close()


async def test_schema_indexes_and_migration_record(pg_url: str) -> None:
    sink = PostgresSink(pg_url)
    await sink.write(events(1))
    await sink.close()
    columns = rows(
        pg_url,
        "SELECT column_name, data_type FROM information_schema.columns"
        " WHERE table_name = 'analytics_events' AND table_schema = current_schema()"
        " ORDER BY ordinal_position",
    )
    assert columns == [
        ("id", "text"),
        ("kind", "text"),
        ("event_name", "text"),
        ("distinct_id", "text"),
        ("session_id", "text"),
        ("properties", "jsonb"),
        ("created_at", "timestamp with time zone"),
    ]
    indexes = rows(
        pg_url,
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()"
        " AND tablename = 'analytics_events' ORDER BY 1",
    )
    assert [name for (name,) in indexes] == [
        "analytics_events_pkey",
        "idx_analytics_events_created",
        "idx_analytics_events_distinct_id",
        "idx_analytics_events_exposure",
        "idx_analytics_events_name_created",
        "idx_analytics_events_session",
    ]
    recorded = rows(pg_url, "SELECT table_name, version, name FROM turnout_schema_migrations")
    assert recorded == [("analytics_events", version, what) for version, what, _ in MIGRATIONS]


async def test_ten_thousand_events_become_ten_thousand_rows_and_retries_add_none(pg_url: str) -> None:
    sink = PostgresSink(pg_url)
    batch = events(10_000)
    for first in range(0, 10_000, 500):
        await sink.write(batch[first : first + 500])
    for first in range(0, 10_000, 2_500):  # every batch again, as after acknowledgements were lost
        await sink.write(batch[first : first + 2_500])
    await sink.write(batch[-10:] + events(5, first=10_000))  # a retried batch with new events appended
    sink.write_sync(batch[:100] + events(5, first=20_000))  # the same through the blocking connection
    await sink.close()
    assert rows(pg_url) == [(10_010,)]
    assert rows(pg_url, "SELECT count(DISTINCT id), min(created_at) FROM analytics_events") == [
        (10_010, START)
    ]
    assert sink.rejected == 0


async def test_properties_are_queryable_jsonb_and_every_field_round_trips(pg_url: str) -> None:
    sink = PostgresSink(pg_url)
    tricky = 'tab\there, line\nbreak, back\\slash, quote" and 中文'
    batch = [
        Event(
            "query.order",
            "u1",
            {"success": True, "cart": {"total": 42.5, "items": [1, 2]}},
            START,
            "track",
            "s1",
        ),
        Event("query.order", "u2", {"success": False, "note": tricky}, START, "track", None),
        Event(
            "$exposure", "anonymous_abc", {"flag": "coordinator", "variant": "workflow"}, START, "exposure"
        ),
    ]
    await sink.write(batch)
    await sink.close()
    found = rows(
        pg_url,
        "SELECT id, kind, event_name, distinct_id, session_id, properties, created_at"
        " FROM analytics_events ORDER BY distinct_id",
    )
    assert [row[0] for row in found] == [batch[2].id, batch[0].id, batch[1].id]
    assert found[1][1:] == ("track", "query.order", "u1", "s1", batch[0].properties, START)
    assert found[2][4] is None and found[2][5] == {"success": False, "note": tricky}
    assert found[0][1:3] == ("exposure", "$exposure")
    assert rows(
        pg_url,
        "SELECT distinct_id, (properties -> 'cart' ->> 'total')::numeric FROM analytics_events"
        """ WHERE properties @> '{"success": true}'""",
    ) == [("u1", 42.5)]
    assert rows(pg_url, "SELECT count(*) FROM analytics_events WHERE properties ->> 'note' LIKE '%中文'") == [
        (1,)
    ]


async def test_nul_is_removed_from_text_and_json(pg_url: str) -> None:
    sink = PostgresSink(pg_url)
    event = Event("session.message", "us\x00er", {"k\x00ey": "va\x00lue", "list": ["x\x00", {"\x00": 1}]})
    event.session_id = "s\x001"
    await sink.write([event])
    sink.write_sync([Event("session.message", "u\x00", {"plain": "a\x00b", "kept": "\\u0000"})])
    await sink.write([Event("session.message", "lone \ud800", {})])  # only a hand-made event has these
    await sink.close()
    assert rows(pg_url, "SELECT distinct_id, session_id, properties FROM analytics_events ORDER BY 1") == [
        ("lone ?", None, {}),
        ("u", None, {"plain": "ab", "kept": "\\u0000"}),
        ("user", "s1", {"key": "value", "list": ["x", {"": 1}]}),
    ]


async def test_a_row_postgres_refuses_for_good_is_skipped_logged_and_counted(pg_url: str) -> None:
    sink = PostgresSink(pg_url)
    await sink.write(events(1))
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE analytics_events ADD CONSTRAINT no_bad CHECK (event_name <> 'bad.event')")
    batch = events(60, first=1) + events(1, first=61, name="bad.event") + events(40, first=62)
    blocking = events(1, first=200, name="bad.event") + events(3, first=201)
    with capture_logs() as logs:
        await sink.write(batch)
        sink.write_sync(blocking)
    await sink.close()
    assert rows(pg_url) == [(1 + 100 + 3,)]
    assert sink.rejected == 2
    rejected = [entry for entry in logs if entry["event"] == "turnout.events.rejected"]
    assert [entry["event_id"] for entry in rejected] == [batch[60].id, blocking[0].id]
    assert "no_bad" in rejected[0]["error"]


async def test_a_hand_made_table_of_that_name_is_reported_not_altered(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:  # a hand-made analytics_events
        conn.execute(
            "CREATE TABLE analytics_events (id BIGSERIAL PRIMARY KEY, event_name VARCHAR(50) NOT NULL,"
            " session_id VARCHAR(64), event_data JSONB NOT NULL, created_at TIMESTAMP DEFAULT NOW())"
        )
    sink = PostgresSink(pg_url)
    with pytest.raises(TurnoutError, match="without the columns kind, distinct_id, properties"):
        await sink.write(events(1))
    other = PostgresSink(pg_url, table="turnout_events")
    await other.write(events(3))
    await other.close()
    assert rows(pg_url, "SELECT count(*) FROM turnout_events") == [(3,)]


async def test_many_sinks_starting_at_once_migrate_once(pg_url: str) -> None:
    sinks = [PostgresSink(pg_url) for _ in range(6)]
    await asyncio.gather(*(sink.write(events(100, first=100 * n)) for n, sink in enumerate(sinks)))
    await asyncio.gather(*(sink.close() for sink in sinks))
    assert rows(pg_url) == [(600,)]
    assert rows(pg_url, "SELECT count(*) FROM turnout_schema_migrations") == [(len(MIGRATIONS),)]


async def test_ten_thousand_tracked_events_across_a_graceful_stop(pg_url: str) -> None:
    tracker = EventTracker.from_config(EventsConfig(sink=pg_url, batch_size=500))
    await tracker.start()
    for i in range(10_000):
        tracker.track("session.message", f"user-{i % 300}", {"i": i})
        if i % 1000 == 0:
            await asyncio.sleep(0)
    assert await tracker.stop()
    assert rows(pg_url) == [(10_000,)]
    assert rows(pg_url, "SELECT count(DISTINCT properties ->> 'i') FROM analytics_events") == [(10_000,)]


async def test_postgres_restarted_mid_stream_loses_nothing(
    postgres_server: pg_server.PostgresServer, pg_url: str
) -> None:
    tracker = EventTracker(
        [PostgresSink(pg_url)],
        EventsConfig(batch_size=100, flush_interval_s=0.02),
        retry_base_s=0.02,
        retry_max_s=0.2,
    )
    [lane] = tracker.lanes
    await tracker.start()
    sent = 0

    async def burst(count: int) -> None:
        nonlocal sent
        for _ in range(count):
            assert tracker.track("session.message", f"user-{sent % 50}", {"n": sent})
            sent += 1
            if sent % 100 == 0:
                await asyncio.sleep(0.001)

    await burst(1_000)
    await eventually(lambda: lane.delivered >= 500)
    await asyncio.to_thread(postgres_server.stop)  # connections terminated, new ones refused
    await burst(2_000)
    await eventually(lambda: lane.failed_writes >= 2)
    assert lane.pending > 0  # waiting in the backlog, not lost
    await asyncio.to_thread(postgres_server.start)
    await burst(1_000)
    assert await tracker.stop()
    assert tracker.dropped == 0 and tracker.lost == 0
    assert rows(pg_url, "SELECT count(*), count(DISTINCT properties ->> 'n') FROM analytics_events") == [
        (4_000, 4_000)
    ]


def test_a_forked_child_leaves_its_parents_connection_alone(pg_url: str) -> None:
    sink = PostgresSink(pg_url)
    sink.write_sync(events(10))  # the parent's connection, inherited by the child below
    parents = sink._conn
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            sink.write_sync(events(10, first=10))
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    sink.write_sync(events(10, first=20))  # still the same connection: the child never said goodbye on it
    assert sink._conn is parents and parents is not None and not parents.closed
    asyncio.run(sink.close())
    assert rows(pg_url) == [(30,)]
