"""Aggregates: the same support-bot events in SQLite and in PostgreSQL give the same numbers.

Every figure is checked against a plain-Python computation over the very same events.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

import pg_server
from turnout.events import Event, EventSink, SQLiteSink
from turnout.events.postgres import PostgresSink
from turnout.events.stats import Count, EventStats, EventsUnavailable, Funnel, Numbers, Rate

NOW = datetime(2026, 1, 4, 12, 0, tzinfo=UTC)
FIRST = datetime(2025, 12, 29, 20, 0, tzinfo=UTC)


def support_bot_events() -> list[Event]:
    """Support-bot events: 80 chat sessions from 15 users over the turn of the year."""
    events: list[Event] = []

    def add(name: str, user: str, session: str | None, at: datetime, **properties: Any) -> None:
        events.append(Event(name, user, properties, at, session_id=session))

    for n in range(80):
        user, session = f"u{n % 15}", f"s{n}"
        start = FIRST + timedelta(hours=2 * n, minutes=n % 7)
        add("session.start", user, session, start, channel="api" if n % 3 else "web")
        for m in range(1 + n % 3):
            add(
                "session.message",
                user,
                session,
                start + timedelta(seconds=5 + m),
                response_time_ms=800 + 37 * n + m,
            )
        if n % 4 == 0:
            add(
                "session.escalate",
                user,
                session,
                start + timedelta(seconds=40),
                reason="angry",
                severity=n % 3,
            )
        if n % 5 == 1:
            add(
                "query.order",
                user,
                session,
                start + timedelta(seconds=20),
                success=n % 10 != 1,
                response_time_ms=120,
            )
        if n % 6 == 2:
            add(
                "query.tracking",
                user,
                session,
                start + timedelta(seconds=25),
                success=n % 12 != 2,
                carrier="sf",
            )
        if n % 8 == 3:
            add("ticket.created", user, None, start + timedelta(hours=1), priority="high")
            add("ticket.closed", user, None, start + timedelta(hours=5), sla_met=n % 16 == 3, hours=4.5)
    # Values the numeric aggregates must leave out, and a key that is not a plain word.
    add("session.message", "u1", "s1", FIRST + timedelta(minutes=3), response_time_ms="120")
    add("session.message", "u1", "s1", FIRST + timedelta(minutes=4), response_time_ms=True)
    add("agent.login", "agent-7", None, FIRST + timedelta(days=1), **{"shift.start": 9, "agent-id": 7})
    return events


EVENTS = support_bot_events()


# -- the oracle ---------------------------------------------------------------------------


def in_window(event: Event, start: datetime | None = None, end: datetime | None = None) -> bool:
    return (start is None or event.timestamp >= start) and (end is None or event.timestamp < end)


def oracle_counts(by: str | None, unit: str = "events", start: datetime | None = None) -> list[Count]:
    groups: dict[tuple[str | None, str], set[Any]] = defaultdict(set)
    for event in EVENTS:
        if in_window(event, start):
            stamp = event.timestamp.astimezone(UTC)
            period = None if by is None else stamp.strftime("%Y-%m-%d" if by == "day" else "%Y-%m")
            who = {"events": event.id, "users": event.distinct_id, "sessions": event.session_id}[unit]
            groups[period, event.name].add(who)
    return [
        Count(p, e, len(who - {None}))
        for (p, e), who in sorted(groups.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
    ]


def oracle_numbers(key: str, by: str | None) -> list[Numbers]:
    values: dict[tuple[str | None, str], list[float]] = defaultdict(list)
    for event in EVENTS:
        value = event.properties.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            period = None if by is None else event.timestamp.strftime("%Y-%m-%d" if by == "day" else "%Y-%m")
            values[period, event.name].append(value)
    return [
        Numbers(p, e, len(v), float(sum(v)), float(min(v)), float(max(v)))
        for (p, e), v in sorted(values.items(), key=lambda kv: (kv[0][0] or "", kv[0][1]))
    ]


def oracle_funnel(first: str, then: str, within: timedelta, key: str) -> Funnel:
    starts: dict[str, datetime] = {}
    for event in EVENTS:
        who = getattr(event, key)
        if event.name == first and who is not None:
            starts[who] = min(starts.get(who, event.timestamp), event.timestamp)
    converted = {
        event_who
        for event in EVENTS
        if event.name == then
        and (event_who := getattr(event, key)) in starts
        and starts[event_who] <= event.timestamp <= starts[event_who] + within
    }
    return Funnel(first, then, len(starts), len(converted))


# -- the backends -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def stats(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[EventStats]:
    """EventStats over the support-bot events, written by the backend's own sink."""
    sink: EventSink
    if request.param == "sqlite":
        sink = SQLiteSink(tmp_path / "events.db")
    else:
        sink = PostgresSink(request.getfixturevalue("pg_url"))
    asyncio.run(write(sink, EVENTS))
    with EventStats.open(sink, now=lambda: NOW) as opened:
        yield opened


async def write(sink: EventSink, events: list[Event]) -> None:
    await sink.write(events)
    await sink.close()


def test_counts_per_day_and_month(stats: EventStats) -> None:
    assert stats.counts() == oracle_counts("day")
    assert stats.counts(by="month") == oracle_counts("month")
    assert stats.counts(by=None) == oracle_counts(None)
    assert stats.counts(by="month", unit="users") == oracle_counts("month", "users")
    assert stats.counts(by="day", unit="sessions") == oracle_counts("day", "sessions")
    december = {c.event: c.count for c in oracle_counts("month") if c.period == "2025-12"}
    assert stats.count("session.start", month="2025-12") == december["session.start"]
    assert stats.count() == len(EVENTS)
    assert stats.count(unit="users") == 16  # u0-u14 and agent-7


def test_period_filters(stats: EventStats) -> None:
    cut = datetime(2026, 1, 2, tzinfo=UTC)
    assert stats.counts(by=None, since=cut) == oracle_counts(None, start=cut)
    assert stats.counts(by=None, since="2026-01-02") == oracle_counts(None, start=cut)
    assert stats.counts(by=None, since=date(2026, 1, 2)) == oracle_counts(None, start=cut)
    assert stats.counts(by=None, since="60h") == oracle_counts(None, start=NOW - timedelta(hours=60))
    assert stats.counts(by=None, since=datetime(2026, 1, 2)) == oracle_counts(None, start=cut)  # naive is UTC
    both = stats.count(since="2025-12-31T00:00:00+00:00", until=cut)
    assert both == sum(in_window(e, cut - timedelta(days=2), cut) for e in EVENTS)
    assert stats.count(month="2025-12", since=cut) == 0  # the month and the range intersect
    assert stats.counts(events=["session.escalate", "ticket.closed"], by=None) == [
        c for c in oracle_counts(None) if c.event in ("session.escalate", "ticket.closed")
    ]
    assert stats.counts(events=[]) == []
    assert stats.span() == (FIRST, max(e.timestamp for e in EVENTS))
    assert stats.span(month="2027-01") is None


def test_rates(stats: EventStats) -> None:
    total = Counter(e.name for e in EVENTS)
    assert stats.rate("session.escalate", "session.start") == Rate(20, 80)
    assert stats.rate("session.escalate", "session.start").value == 0.25
    ok = sum(1 for e in EVENTS if e.name == "query.order" and e.properties["success"] is True)
    assert stats.rate("query.order", "query.order", where={"success": True}) == Rate(ok, total["query.order"])
    failed = sum(1 for e in EVENTS if e.name == "query.tracking" and not e.properties["success"])
    assert stats.rate("query.tracking", "query.tracking", where={"success": False}).numerator == failed == 7
    assert stats.rate("ticket.closed", "ticket.closed", where={"sla_met": True, "hours": 4.5}) == Rate(5, 10)
    assert stats.rate("session.message", "session.message", where={"response_time_ms": "120"}) == Rate(1, 161)
    assert stats.count("session.escalate", where={"severity": 0}) == 7
    assert stats.count("agent.login", where={"agent-id": 7.0}) == 1  # JSON numbers compare as numbers
    escalated = {e.distinct_id for e in EVENTS if e.name == "session.escalate"}
    assert stats.rate("session.escalate", "session.start", unit="users") == Rate(len(escalated), 15)
    assert stats.rate("nothing.here", "nor.here") == Rate(0, 0)
    assert Rate(0, 0).value is None


def test_a_rate_over_sessions_counts_each_session_once_and_never_exceeds_one(tmp_path: Path) -> None:
    # Four sessions, one escalated twice, and an escalation of a session that started earlier.
    at = FIRST
    events = [Event("session.start", f"u{n}", {"variant": v}, at, session_id=f"s{n}")
              for n, v in enumerate(["legacy", "legacy", "workflow", "workflow"])]  # fmt: skip
    events += [
        Event("session.escalate", "u0", {"variant": "legacy"}, at + timedelta(minutes=1), session_id="s0"),
        Event("session.escalate", "u0", {"variant": "legacy"}, at + timedelta(minutes=2), session_id="s0"),
        Event("session.escalate", "u9", {"variant": "workflow"}, at + timedelta(minutes=3), session_id="old"),
    ]
    sink = SQLiteSink(tmp_path / "events.db")
    asyncio.run(write(sink, events))
    with EventStats.open(sink, now=lambda: NOW) as stats:
        assert stats.rate("session.escalate", "session.start") == Rate(3, 4)  # events: as they are
        assert stats.rate("session.escalate", "session.start", unit="sessions") == Rate(1, 4)
        by_variant = stats.rate("session.escalate", "session.start", unit="sessions", by="variant")
        assert by_variant == {"legacy": Rate(1, 2), "workflow": Rate(0, 2)}
        workflow = stats.rate("session.escalate", "session.start", segment={"variant": "workflow"})
        assert workflow == Rate(1, 2)  # the segment applies to both sides
        assert stats.rate("session.start", "session.start", by="channel") == {None: Rate(4, 4)}


def test_numbers_of_a_property(stats: EventStats) -> None:
    assert stats.numbers("response_time_ms") == oracle_numbers("response_time_ms", None)
    assert stats.numbers("response_time_ms", by="day") == oracle_numbers("response_time_ms", "day")
    [messages] = stats.numbers("response_time_ms", events=["session.message"], month="2026-01")
    picked = [
        e.properties["response_time_ms"]
        for e in EVENTS
        if e.name == "session.message"
        and e.timestamp.month == 1
        and type(e.properties["response_time_ms"]) is int
    ]
    assert (messages.count, messages.total, messages.mean) == (
        len(picked),
        sum(picked),
        sum(picked) / len(picked),
    )
    assert stats.numbers("hours", events=["ticket.closed"]) == [
        Numbers(None, "ticket.closed", 10, 45.0, 4.5, 4.5)
    ]
    assert stats.numbers("shift.start") == [Numbers(None, "agent.login", 1, 9.0, 9.0, 9.0)]
    assert stats.numbers("channel") == []  # strings are not numbers


def test_funnels(stats: EventStats) -> None:
    hour, minute = timedelta(hours=1), timedelta(minutes=1)
    assert stats.funnel("session.start", "session.escalate", within="1h") == oracle_funnel(
        "session.start", "session.escalate", hour, "distinct_id"
    )
    by_session = stats.funnel("session.start", "session.escalate", within=60, unit="sessions")
    assert by_session == oracle_funnel("session.start", "session.escalate", minute, "session_id")
    assert (by_session.entered, by_session.converted, by_session.rate) == (80, 20, 0.25)
    assert stats.funnel("session.start", "session.escalate", within="39s", unit="sessions").converted == 0
    assert stats.funnel("session.start", "session.escalate", within="41s", unit="sessions").converted == 20
    assert stats.funnel("ticket.created", "ticket.closed", within="5h") == oracle_funnel(
        "ticket.created", "ticket.closed", 5 * hour, "distinct_id"
    )
    january = stats.funnel("session.start", "query.order", within="1d", month="2026-01")
    assert january.entered == len(
        {e.distinct_id for e in EVENTS if e.name == "session.start" and e.timestamp.year == 2026}
    )
    assert stats.funnel("session.start", "session.start", within="30d").converted == 15  # a later one each
    assert stats.funnel("nothing", "session.start") == Funnel("nothing", "session.start", 0, 0)
    assert Funnel("a", "b", 0, 0).rate is None


def test_bad_arguments_are_refused_before_any_query(stats: EventStats) -> None:
    with pytest.raises(ValueError, match="since"):
        stats.counts(since="last tuesday")
    with pytest.raises(ValueError, match="YYYY-MM"):
        stats.count("session.start", month="2025-13")
    with pytest.raises(ValueError, match="unit"):
        stats.count("session.start", unit="rows")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="funnel"):
        stats.funnel("a", "b", unit="events")
    with pytest.raises(ValueError, match="by"):
        stats.counts(by="week")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="property key"):
        stats.numbers("x') OR 1=1 --")
    with pytest.raises(ValueError, match="where"):
        stats.count("query.order", where={"success": None})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="where"):
        stats.count("query.order", where={"rate": float("nan")})
    # Values are parameters: quotes in them are just characters.
    assert stats.count("query.order", where={"carrier": "x' OR '1'='1"}) == 0


@pytest.mark.postgres
def test_both_backends_give_identical_numbers(tmp_path: Path, pg_url: str) -> None:
    results = []
    for sink in (SQLiteSink(tmp_path / "events.db"), PostgresSink(pg_url)):
        asyncio.run(write(sink, EVENTS))
        with EventStats.open(sink, now=lambda: NOW) as stats:
            results.append(report(stats))
    assert results[0] == results[1]
    assert results[0]["counts"] == oracle_counts("day")


def report(stats: EventStats) -> dict[str, Any]:
    """Everything the aggregates can say about the events, in one comparable value."""
    return {
        "counts": stats.counts(),
        "months": stats.counts(by="month", unit="users"),
        "escalation": stats.rate("session.escalate", "session.start", month="2026-01"),
        "escalated_sessions": stats.rate("session.escalate", "session.start", unit="sessions"),
        "by_channel": stats.rate("session.escalate", "session.start", unit="sessions", by="channel"),
        "by_success": stats.rate("query.order", "session.start", by="success"),
        "orders": stats.rate("query.order", "query.order", where={"success": True}, since="7d"),
        "numbers": stats.numbers("response_time_ms", by="month"),
        "funnel": stats.funnel("session.start", "ticket.created", within="2h", unit="users"),
        "span": stats.span(since="3d"),
    }


@pytest.mark.postgres
def test_a_table_not_created_yet_reads_as_empty(tmp_path: Path, pg_url: str) -> None:
    sqlite3.connect(tmp_path / "empty.db").close()
    for source in (tmp_path / "empty.db", pg_url):
        with EventStats.open(source) as stats:
            assert not stats.exists()
            assert stats.counts() == [] and stats.count("x") == 0 and stats.numbers("y") == []
            assert stats.rate("a", "b") == Rate(0, 0) and stats.funnel("a", "b") == Funnel("a", "b", 0, 0)
            assert stats.span() is None


@pytest.mark.postgres
def test_sources_it_can_read(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    asyncio.run(write(SQLiteSink("turnout_events.db"), EVENTS[:5]))
    asyncio.run(write(PostgresSink(pg_url), EVENTS[:7]))
    opened: list[tuple[object, str, int]] = [
        ("sqlite:///turnout_events.db", "sqlite", 5),
        (f"sqlite:///{tmp_path}/turnout_events.db", "sqlite", 5),  # four slashes: an absolute path
        ("turnout_events.db", "sqlite", 5),
        (tmp_path / "turnout_events.db", "sqlite", 5),
        (pg_url, "postgres", 7),
        (pg_url.replace("postgresql://", "postgres://"), "postgres", 7),
    ]
    for source, backend, count in opened:
        with EventStats.open(source) as stats:
            assert (stats.backend, stats.count()) == (backend, count), source
    connection = sqlite3.connect("turnout_events.db")
    with EventStats.open(connection) as stats:
        assert stats.count() == 5
    assert connection.execute("SELECT 1").fetchone() == (1,)  # handed in open: left open
    connection.close()
    with psycopg.connect(pg_url) as pg, EventStats.open(pg) as stats:
        assert stats.count() == 7
    with pytest.raises(EventsUnavailable, match=r"no events database at missing\.db"):
        EventStats.open("sqlite:///missing.db")
    with pytest.raises(EventsUnavailable, match="cannot connect"):
        EventStats.open(f"postgresql://postgres:secret@127.0.0.1:{pg_server.free_port()}/x")
    with pytest.raises(EventsUnavailable, match="jsonl://"):
        EventStats.open("jsonl:///events.jsonl")
    with pytest.raises(TypeError):
        EventStats.open(42)


@pytest.mark.postgres
def test_times_read_back_are_utc_whatever_the_session_time_zone(tmp_path: Path, pg_url: str) -> None:
    shanghai = pg_url + "%20-ctimezone%3DAsia/Shanghai"  # added to the URL's options=-csearch_path…
    asyncio.run(write(PostgresSink(shanghai), EVENTS[:1]))
    with EventStats.open(shanghai) as stats:
        assert stats.count() == 1
        span = stats.span()
    assert span is not None and span[0] == FIRST and span[0].utcoffset() == timedelta(0)


@pytest.mark.postgres
def test_postgres_stats_reconnect_after_a_server_restart(
    postgres_server: pg_server.PostgresServer, pg_url: str
) -> None:
    asyncio.run(write(PostgresSink(pg_url), EVENTS[:4]))
    with EventStats.open(pg_url) as stats:
        assert stats.count() == 4
        postgres_server.stop()
        postgres_server.start()
        assert stats.count() == 4
