"""Sustained events/s into PostgreSQL through the tracker, against raw psycopg COPY of the same rows.

Starts its own throwaway PostgreSQL server (tests/pg_server.py: installs Debian's package if
needed), durable by default (fsync and synchronous_commit on, as in production).

1. Tracker: N events (a support bot's event taxonomy, as in `bench_events.py`) tracked into
   `PostgresSink` — from the first `track()` until `stop()` has committed the last row.
2. Delivery only: the queue filled first (untimed), then `start()` … `stop()`.
3. Raw: psycopg `cursor.copy()` + `write_row` of the very same rows (read back from the
   tracker's table), into the same schema, one COPY per batch of the same size.
Runs alternate; medians are reported, each into its own fresh table.

    .venv/bin/python bench/bench_events_pg.py             # 200k events, 3 runs each
    .venv/bin/python bench/bench_events_pg.py --quick     # 50k events
    .venv/bin/python bench/bench_events_pg.py --no-fsync  # a throwaway server's settings
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import _common
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
import pg_server
from turnout.config import EventsConfig
from turnout.events import EventTracker
from turnout.events.postgres import COLUMNS, PostgresSink

NAMES = ("session.start", "session.message", "session.message", "query.order", "session.escalate")
BASE = {"environment": "production", "source": "support_bot", "service_version": "1.4.2"}
TARGET = 30_000


def properties(i: int) -> dict[str, Any]:
    """What a support bot sends with a chat event."""
    return {"session_id": f"s{i % 9000}", "channel": "api", "response_time_ms": 200 + i % 1800}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50k events per run")
    parser.add_argument("--events", type=int, default=None, help="events per run (200,000)")
    parser.add_argument("--batch", type=int, default=500, help="batch size, both sides (500 = default)")
    parser.add_argument("--runs", type=int, default=3, help="runs per side")
    parser.add_argument("--no-fsync", action="store_true", help="fsync and synchronous_commit off")
    args = parser.parse_args()
    args.events = args.events or (50_000 if args.quick else 200_000)
    return args


def config(events: int, batch: int) -> EventsConfig:
    return EventsConfig(queue_size=events, batch_size=batch, flush_interval_s=0.05, base_properties=BASE)


async def through_tracker(dsn: str, table: str, events: int, batch: int) -> float:
    """Events/s from the first track() to the last row committed by stop()."""
    tracker = EventTracker([PostgresSink(dsn, table=table)], config(events, batch))
    props = [properties(i) for i in range(1000)]
    await tracker.start()
    start = time.perf_counter()
    track = tracker.track
    for first in range(0, events, batch):
        for i in range(first, min(first + batch, events)):
            track(NAMES[i % 5], f"user-{i % 5000}", props[i % 1000])
        await asyncio.sleep(0)  # a server yields between requests; so does this producer
    if not await tracker.stop(timeout_s=600):
        raise SystemExit(f"events lost: {tracker.counts()}")
    elapsed = time.perf_counter() - start
    check(dsn, table, events)
    return events / elapsed


async def delivery_only(dsn: str, table: str, events: int, batch: int) -> float:
    """Events/s of delivery alone: the queue is filled first (untimed), then start() … stop()."""
    tracker = EventTracker([PostgresSink(dsn, table=table)], config(events, batch))
    props = [properties(i) for i in range(1000)]
    for i in range(events):
        tracker.track(NAMES[i % 5], f"user-{i % 5000}", props[i % 1000])
    start = time.perf_counter()
    await tracker.start()
    if not await tracker.stop(timeout_s=600):
        raise SystemExit(f"events lost: {tracker.counts()}")
    elapsed = time.perf_counter() - start
    check(dsn, table, events)
    return events / elapsed


def raw_copy(dsn: str, table: str, rows: list[tuple[Any, ...]], batch: int) -> float:
    """Rows/s of plain psycopg COPY (`write_row`), one COPY (its own transaction) per batch."""
    PostgresSink(dsn, table=table).migrate()
    statement = f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN"
    with psycopg.connect(dsn, autocommit=True) as conn:
        start = time.perf_counter()
        for first in range(0, len(rows), batch):
            with conn.cursor() as cursor, cursor.copy(statement) as copy:
                for row in rows[first : first + batch]:
                    copy.write_row(row)
        elapsed = time.perf_counter() - start
    check(dsn, table, len(rows))
    return len(rows) / elapsed


def check(dsn: str, table: str, expected: int) -> None:
    with psycopg.connect(dsn) as conn:
        found = conn.execute(f"SELECT count(*) FROM {table}").fetchone()
    if found is None or found[0] != expected:
        raise SystemExit(f"{table}: expected {expected} rows, found {found}")


def sustained(dsn: str, events: int, batch: int, runs: int) -> tuple[float, float, float]:
    """Median events/s (tracker end to end, tracker delivery only, raw COPY) over alternating runs."""
    tracked: list[float] = []
    delivered: list[float] = []
    raw: list[float] = []
    for run in range(runs):
        tracked.append(asyncio.run(through_tracker(dsn, f"tracker_{run}", events, batch)))
        delivered.append(asyncio.run(delivery_only(dsn, f"delivery_{run}", events, batch)))
        with psycopg.connect(dsn) as conn:
            columns = ", ".join(COLUMNS[:-2])
            query = f"SELECT {columns}, properties::text, created_at FROM tracker_{run} ORDER BY id"
            rows = conn.execute(query).fetchall()
        raw.append(raw_copy(dsn, f"raw_{run}", rows, batch))
        _common.progress(run + 1, runs)
    return statistics.median(tracked), statistics.median(delivered), statistics.median(raw)


def main() -> None:
    args = parse_args()
    with pg_server.PostgresServer(durable=not args.no_fsync, database="turnout_bench") as server:
        with psycopg.connect(server.dsn) as conn:
            version = conn.execute("SHOW server_version").fetchone()
            fsync = conn.execute("SHOW fsync").fetchone()
            commit = conn.execute("SHOW synchronous_commit").fetchone()
        print("# turnout events → PostgreSQL benchmark\n")
        print(_common.machine())
        print(
            f"PostgreSQL {version[0] if version else '?'} on 127.0.0.1 (fsync={fsync[0] if fsync else '?'}, "
            f"synchronous_commit={commit[0] if commit else '?'}), psycopg {psycopg.__version__} "
            f"({psycopg.pq.__impl__}); primary key + 4 indexes\n"
        )
        tracker, delivery, raw = sustained(server.dsn, args.events, args.batch, args.runs)
    print(f"## Sustained ({args.events:,} events, batch {args.batch}, median of {args.runs})\n")
    print(_common.throughput_table(tracker, delivery, raw, "raw psycopg COPY (write_row) of the same rows"))
    print(f"\ntarget: ≥ {TARGET:,} events/s — {'met' if tracker >= TARGET else 'NOT met'}")


if __name__ == "__main__":
    main()
