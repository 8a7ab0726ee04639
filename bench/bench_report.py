"""An experiment report over a large SQLite events table: seconds per report, rows in the table.

Builds a table of N events (default 1,000,000) the way the SQLite sink stores them — 100k
users exposed to a 50/50 canary, then their sessions, messages, resolutions and recorded
costs — and times `turnout.analysis.report()` with a proportion metric, a capped mean
metric and the by-intent breakdown (each runs its own queries over the table).

    .venv/bin/python bench/bench_report.py             # 1M events, 3 runs
    .venv/bin/python bench/bench_report.py --quick     # 200k events, 1 run
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from turnout.analysis import report
from turnout.config import validate_config
from turnout.events.model import new_event_id
from turnout.events.sinks import INSERT, SCHEMA

INTENTS = ("refund", "order_status", "complaint", "product_question", "chitchat")
CONFIG = {
    "flags": {
        "coordinator": {
            "variants": ["legacy", "workflow"],
            "default": "legacy",
            "rules": [{"name": "canary", "experiment": "wf-canary", "split": {"legacy": 50, "workflow": 50}}],
        }
    },
    "metrics": {
        "resolved": {"type": "proportion", "event": "session.resolved", "where": {"success": True}},
        "cost_usd": {"type": "mean", "capping": 0.99, "direction": "decrease"},
    },
    "experiments": {"wf-canary": {"primary": "resolved", "guardrails": ["cost_usd"]}},
}


def build(path: Path, events: int, seed: int = 1) -> int:
    """Write about `events` rows; returns how many were written."""
    rng = random.Random(seed)
    users = max(1, events // 10)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    connection = sqlite3.connect(path)
    connection.executescript(SCHEMA)
    rows: list[tuple[str, str, str, str, str | None, str, str]] = []
    written = 0

    def add(kind: str, name: str, user: str, at: datetime, props: dict[str, object]) -> None:
        stamp = at.isoformat(timespec="microseconds")
        rows.append((new_event_id(at.timestamp()), kind, name, user, f"s-{user}", json.dumps(props), stamp))

    for n in range(users):
        user = f"user-{n:07d}"
        variant = "workflow" if rng.random() < 0.5 else "legacy"
        seen = start + timedelta(seconds=n * 25)
        intent = rng.choice(INTENTS)
        exposure = {"experiment": "wf-canary", "flag": "coordinator", "variant": variant, "intent": intent}
        add("exposure", "$exposure", user, seen, exposure)
        add("track", "session.start", user, seen, {"channel": "api"})
        for m in range(6):
            add("track", "session.message", user, seen + timedelta(seconds=m), {"response_time_ms": 300 + m})
        if rng.random() < (0.47 if variant == "workflow" else 0.45):
            add("track", "session.resolved", user, seen + timedelta(minutes=2), {"success": True})
        add("track", "$record", user, seen + timedelta(seconds=3), {"cost_usd": rng.lognormvariate(-5, 1)})
        if len(rows) >= 50_000:
            connection.executemany(INSERT, rows)
            written += len(rows)
            rows.clear()
    connection.executemany(INSERT, rows)
    written += len(rows)
    connection.commit()
    connection.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=None, help="rows in the table (1,000,000)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="200,000 rows, one run")
    args = parser.parse_args()
    if args.events is None:
        args.events = 200_000 if args.quick else 1_000_000
    if args.quick:
        args.runs = 1
    config = validate_config(CONFIG)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.db"
        began = time.perf_counter()
        rows = build(path, args.events)
        print(f"built {rows:,} rows in {time.perf_counter() - began:.1f}s")
        for by in (None, "intent"):
            times = []
            for _ in range(args.runs):
                began = time.perf_counter()
                result = report(
                    "wf-canary", config=config, events=path, metrics_path=str(Path(tmp) / "none"), by=by
                )
                times.append(time.perf_counter() - began)
            verdict = result.variants[0].verdict.decision
            label = "report" if by is None else f"report --by {by}"
            print(
                f"{label:<20} rows {rows:,}  users {sum(result.users.values()):,}  "
                f"median {statistics.median(times):.2f}s  (runs: {', '.join(f'{t:.2f}' for t in times)})  "
                f"verdict {verdict}"
            )


if __name__ == "__main__":
    main()
