"""`turnout events summary`: totals, top events, per-day counts and support-bot rates, or a clear why-not."""

from __future__ import annotations

import asyncio
import io
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console

import pg_server
from turnout.cli.events import summary_main
from turnout.events import Event, EventSink, SQLiteSink
from turnout.events.postgres import PostgresSink

TODAY = datetime.now(UTC).replace(hour=10, minute=0, second=0, microsecond=0)


def console() -> Console:
    return Console(file=io.StringIO(), width=160, color_system=None)


def output(screen: Console) -> str:
    file = screen.file
    assert isinstance(file, io.StringIO)
    return file.getvalue()


def recent_events() -> list[Event]:
    """Ten support-bot sessions a day for the last three days, and one event 60 days ago."""
    events = []
    for day in range(3):
        for n in range(10):
            at = TODAY - timedelta(days=day, minutes=n)
            session, user = f"d{day}s{n}", f"user-{n}"
            events.append(Event("session.start", user, {"channel": "api"}, at, session_id=session))
            events.append(
                Event("session.message", user, {"response_time_ms": 1000 + 100 * n}, at, session_id=session)
            )
            if n < 2:
                events.append(Event("session.escalate", user, {"reason": "angry"}, at, session_id=session))
            if n < 4:
                events.append(Event("query.order", user, {"success": n != 0}, at, session_id=session))
    events.append(Event("session.start", "old-user", {}, TODAY - timedelta(days=60), session_id="old"))
    return events


def store(sink: EventSink, events: list[Event]) -> None:
    async def write() -> None:
        await sink.write(events)
        await sink.close()

    asyncio.run(write())


def test_summary_of_the_last_thirty_days(tmp_path: Path) -> None:
    store(SQLiteSink(tmp_path / "events.db"), recent_events())
    screen = console()
    assert summary_main(f"sqlite:///{tmp_path}/events.db", None, console=screen) == 0
    text = output(screen)
    assert "from the last 30d" in text
    assert "78 events from 10 users" in text  # the event 60 days ago is outside the window
    lines = text.splitlines()
    top = [line.split("│")[1:5] for line in lines if line.startswith(("│ session.", "│ query."))]
    assert [[cell.strip() for cell in row] for row in top[:4]] == [
        ["session.message", "30", "10", "38.5%"],
        ["session.start", "30", "10", "38.5%"],
        ["query.order", "12", "4", "15.4%"],
        ["session.escalate", "6", "2", "7.7%"],
    ]
    day = next(line for line in lines if line.startswith(f"│ {TODAY:%Y-%m-%d}"))
    assert [cell.strip() for cell in day.split("│")[1:7]] == [f"{TODAY:%Y-%m-%d}", "26", "10", "10", "4", "2"]
    assert "Escalation rate" in text and "20.0%" in text and "(6 / 30)" in text
    assert "AI resolution rate" in text and "80.0%" in text
    assert "Avg response time" in text and "1,450 ms" in text
    assert "Order query success" in text and "75.0%" in text
    assert "Ticket" not in text  # no ticket events: no ticket rates


def test_a_longer_window_and_an_iso_date(tmp_path: Path) -> None:
    store(SQLiteSink(tmp_path / "events.db"), recent_events())
    screen = console()
    assert summary_main(str(tmp_path / "events.db"), "90d", console=screen) == 0
    assert "79 events from 11 users" in output(screen)
    screen = console()
    since = f"{TODAY - timedelta(days=1):%Y-%m-%d}"
    assert summary_main(str(tmp_path / "events.db"), since, console=screen) == 0
    assert f"since {since}" in output(screen) and "52 events from 10 users" in output(screen)


def test_without_the_support_bot_events_there_are_no_rates(tmp_path: Path) -> None:
    events = [Event("page.view", f"u{i}", {"path": "/"}, TODAY - timedelta(hours=i)) for i in range(5)]
    store(SQLiteSink(tmp_path / "events.db"), events)
    screen = console()
    assert summary_main(str(tmp_path / "events.db"), "7d", console=screen) == 0
    text = output(screen)
    assert "5 events from 5 users" in text and "page.view" in text
    assert "Support-bot metrics" not in text


def test_nothing_to_show_says_why(tmp_path: Path) -> None:
    screen = console()
    assert summary_main("sqlite:///missing.db", None, console=screen) == 1
    assert "no events database at missing.db" in output(screen)

    sqlite3.connect(tmp_path / "empty.db").close()
    screen = console()
    assert summary_main(str(tmp_path / "empty.db"), None, console=screen) == 1
    assert "No events yet" in output(screen) and "analytics_events" in output(screen)

    store(
        SQLiteSink(tmp_path / "old.db"), [Event("session.start", "u", {}, datetime(2020, 5, 1, tzinfo=UTC))]
    )
    screen = console()
    assert summary_main(str(tmp_path / "old.db"), "7d", console=screen) == 1
    assert "No events" in output(screen) and "the newest is from 2020-05-01 00:00:00 UTC" in output(screen)


def test_bad_input_is_exit_code_two(tmp_path: Path) -> None:
    store(SQLiteSink(tmp_path / "events.db"), recent_events())
    screen = console()
    assert summary_main(str(tmp_path / "events.db"), "last week", console=screen) == 2
    assert "invalid --since 'last week'" in output(screen)
    screen = console()
    assert summary_main("jsonl:///events.jsonl", None, console=screen) == 1
    assert "sqlite:/// or postgres://" in output(screen)


@pytest.mark.postgres
def test_summary_from_postgres_hides_passwords(pg_url: str) -> None:
    store(PostgresSink(pg_url), recent_events())
    screen = console()
    assert summary_main(pg_url, "30d", console=screen) == 0
    assert "78 events from 10 users" in output(screen) and "postgres" in output(screen)
    screen = console()
    down = f"postgresql://app:hunter2@127.0.0.1:{pg_server.free_port()}/analytics"
    assert summary_main(down, None, console=screen) == 1
    assert (
        "cannot connect" in output(screen)
        and "hunter2" not in output(screen)
        and "app:***@" in output(screen)
    )
