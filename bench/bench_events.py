"""Event tracking: `track()` enqueue cost, and sustained events/s into SQLite vs raw sqlite3.

1. Enqueue: ns per `track()` / `exposure()` call on a tracker that is not flushing (so
   only the request-path work is timed), median over batches of 1,000 calls.
2. Sustained: N events (the support-bot taxonomy) tracked into SQLite through the
   tracker — from the first `track()` until `stop()` has committed the last row — against
   raw sqlite3 `executemany` of the very same rows, into the same schema with the same
   pragmas, in transactions of the same batch size. Also delivery alone: the queue filled
   first (untimed), then `start()` … `stop()`. Runs alternate, medians reported.

    .venv/bin/python bench/bench_events.py            # 200k events, 3 runs each
    .venv/bin/python bench/bench_events.py --quick    # 50k events
    .venv/bin/python bench/bench_events.py --batch 2000
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import _common

from turnout.config import EventsConfig
from turnout.context import RoutingContext, use_context
from turnout.decision import Decision, Reason
from turnout.events import EventTracker, MemorySink, SQLiteSink
from turnout.events.sinks import INSERT

NAMES = ("session.start", "session.message", "session.message", "query.order", "session.escalate")
BASE = {"environment": "production", "source": "support_bot", "service_version": "1.4.2"}


def properties(i: int) -> dict[str, Any]:
    """What the support bot sends with a chat event."""
    return {"session_id": f"s{i % 9000}", "channel": "api", "response_time_ms": 200 + i % 1800}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50k events, 1,000 enqueue batches")
    parser.add_argument("--events", type=int, default=None, help="events per sustained run (200,000)")
    parser.add_argument("--batch", type=int, default=500, help="batch size, both sides (500 = default)")
    parser.add_argument("--runs", type=int, default=3, help="sustained runs per side")
    _common.add_json_option(parser)
    args = parser.parse_args()
    args.events = args.events or (50_000 if args.quick else 200_000)
    args.calls = 1_000_000 if not args.quick else 200_000
    return args


# -- 1. enqueue ---------------------------------------------------------------------------


def enqueue(calls: int) -> list[tuple[str, float, float]]:
    """(what, median ns, p99 ns) per call."""
    config = EventsConfig(queue_size=calls + 1, batch_size=calls + 1, base_properties=BASE)
    props = [properties(i) for i in range(1000)]
    users = [f"user-{i}" for i in range(calls)]
    results = []

    def timed(what: str, call: Any) -> None:
        tracker = EventTracker([MemorySink()], config)
        batches = _common.chunks(range(calls))
        spent = _common.time_batches(lambda batch: call(tracker, batch), batches)
        per_call = [ns / len(batch) for ns, batch in zip(spent, batches, strict=True)]
        if tracker.tracked + tracker.deduplicated < calls or tracker.dropped or tracker.invalid:
            raise SystemExit(f"{what}: tracked {tracker.tracked}, dropped {tracker.dropped}")
        results.append((what, statistics.median(per_call), _p99(per_call)))

    def explicit(tracker: EventTracker, batch: range) -> None:
        track = tracker.track
        for i in batch:
            track("session.message", users[i], props[i % 1000])

    def in_request(tracker: EventTracker, batch: range) -> None:
        track = tracker.track
        with use_context(RoutingContext(users[batch[0]], session_id="s1")):
            for i in batch:
                track("session.message", properties=props[i % 1000])

    decisions = [Decision("coordinator", v, v, Reason.SPLIT, "canary", "workflow-canary") for v in ("a", "b")]

    def exposure(tracker: EventTracker, batch: range) -> None:
        expose = tracker.exposure
        for i in batch:
            expose(decisions[i & 1], users[i])

    timed("track(name, distinct_id, 3 properties) + 3 base properties", explicit)
    timed("track(name, properties=…) inside a request (id from the context)", in_request)
    timed("exposure(decision, distinct_id), every one new (not deduplicated)", exposure)

    def repeated(tracker: EventTracker, batch: range) -> None:
        expose = tracker.exposure
        expose(decisions[0], "user-0")
        for _ in batch:
            expose(decisions[0], "user-0")

    timed("exposure(decision, distinct_id) already seen (deduplicated)", repeated)
    return results


def _p99(values: list[float]) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[98]


# -- 2. sustained -------------------------------------------------------------------------


async def through_tracker(path: Path, events: int, batch: int) -> float:
    """Events/s from the first track() to the last row committed by stop()."""
    config = EventsConfig(queue_size=events, batch_size=batch, flush_interval_s=0.05, base_properties=BASE)
    tracker = EventTracker([SQLiteSink(path)], config)
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
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT count(*) FROM analytics_events").fetchone()[0]
    if rows != events:
        raise SystemExit(f"expected {events} rows, found {rows}")
    return events / elapsed


async def delivery_only(path: Path, events: int, batch: int) -> float:
    """Events/s of delivery alone: the queue is filled first (untimed), then start() … stop()."""
    config = EventsConfig(queue_size=events, batch_size=batch, flush_interval_s=0.05, base_properties=BASE)
    tracker = EventTracker([SQLiteSink(path)], config)
    props = [properties(i) for i in range(1000)]
    for i in range(events):
        tracker.track(NAMES[i % 5], f"user-{i % 5000}", props[i % 1000])
    start = time.perf_counter()
    await tracker.start()
    if not await tracker.stop(timeout_s=600):
        raise SystemExit(f"events lost: {tracker.counts()}")
    return events / (time.perf_counter() - start)


def raw_sqlite(path: Path, rows: list[tuple[Any, ...]], batch: int) -> float:
    """Rows/s of plain executemany, one transaction per batch, same schema and pragmas."""
    db = SQLiteSink(path).connect()
    start = time.perf_counter()
    for first in range(0, len(rows), batch):
        db.execute("BEGIN IMMEDIATE")
        db.executemany(INSERT, rows[first : first + batch])
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return len(rows) / elapsed


def sustained(events: int, batch: int, runs: int) -> tuple[float, float, float]:
    """Median events/s (tracker end to end, tracker delivery only, raw) over alternating runs."""
    tracked: list[float] = []
    delivered: list[float] = []
    raw: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(runs):
            db = Path(tmp) / f"tracker-{run}.db"
            tracked.append(asyncio.run(through_tracker(db, events, batch)))
            delivered.append(asyncio.run(delivery_only(Path(tmp) / f"delivery-{run}.db", events, batch)))
            with sqlite3.connect(db) as source:
                rows = source.execute(
                    "SELECT id, kind, event_name, distinct_id, session_id, properties, created_at"
                    " FROM analytics_events ORDER BY rowid"
                ).fetchall()
            raw.append(raw_sqlite(Path(tmp) / f"raw-{run}.db", rows, batch))
            _common.progress(run + 1, runs)
    return statistics.median(tracked), statistics.median(delivered), statistics.median(raw)


def main() -> None:
    args = parse_args()
    print("# turnout events benchmark\n")
    print(_common.machine())
    print(f"SQLite {sqlite3.sqlite_version}, WAL, synchronous=NORMAL, 3 indexes + primary key\n")
    rows = [(what, f"{median:,.0f}", f"{p99:,.0f}") for what, median, p99 in enqueue(args.calls)]
    print(f"## Enqueue ({args.calls:,} calls per row; target ≤ 3,000 ns)\n")
    print(_common.table(["call", "median ns", "p99 ns (per 1,000-call batch)"], rows, right=(1, 2)))
    tracker, delivery, raw = sustained(args.events, args.batch, args.runs)
    print(f"\n## Sustained into SQLite ({args.events:,} events, batch {args.batch}, median of {args.runs})\n")
    print(
        _common.throughput_table(
            tracker, delivery, raw, "raw sqlite3 executemany of the same rows (pre-built tuples)"
        )
    )
    print(f"\ntracker / raw: {tracker / raw:.2f}; targets: ≥ 100,000 events/s and ≥ 0.8 × raw")
    _common.save_ratio(args.json, "events", tracker / raw, target=0.8, higher_is_better=True)


if __name__ == "__main__":
    main()
