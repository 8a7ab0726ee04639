"""Across processes: a graceful stop under load loses nothing, a SIGKILL loses at most the last
flush interval and leaves SQLite clean, and assignments do not depend on PYTHONHASHSEED."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from turnout import Turnout
from turnout.asgi import TurnoutMiddleware

TABLE = "analytics_events"


def rows(db: Path) -> int:
    with sqlite3.connect(db) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (count,) = connection.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
    connection.close()
    return int(count)


async def test_a_graceful_stop_under_load_delivers_every_event(tmp_path: Path) -> None:
    db = tmp_path / "events.db"
    # A long flush interval: when the stop comes, thousands of events are still queued.
    events = {"sink": f"sqlite:///{db}", "flush_interval_s": 60, "batch_size": 100_000}
    t = Turnout({"events": events, "telemetry": {"exporters": []}}, env={})

    async def work(request: Request) -> PlainTextResponse:
        assert t.track("chat.reply", properties={"n": int(request.query_params["n"])})
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/", work)], lifespan=t.lifespan)
    app.add_middleware(TurnoutMiddleware, turnout=t)
    transport = httpx.ASGITransport(app=app)

    async def client(worker: int) -> list[int]:
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            return [(await c.get(f"/?n={worker * 100 + i}")).status_code for i in range(50)]

    async with t.lifespan(app):
        statuses = [s for batch in await asyncio.gather(*(client(w) for w in range(40))) for s in batch]
        assert t.events.pending > 0
    assert statuses == [200] * 2000
    assert t.events.lost == 0 and t.events.dropped == 0
    assert rows(db) == 2000


CHILD = """
import asyncio, sys, time
from turnout import Turnout

async def main(db):
    events = {"sink": f"sqlite:///{db}", "flush_interval_s": 0.05, "batch_size": 100}
    t = Turnout({"events": events, "telemetry": {"exporters": []}}, env={})
    await t.start()
    n = 0
    while True:
        for _ in range(10):
            t.track("tick", distinct_id="u1", properties={"n": n})
            n += 1
        print(n, time.monotonic(), flush=True)
        await asyncio.sleep(0.002)

asyncio.run(main(sys.argv[1]))
"""


def test_kill_9_mid_stream_leaves_a_clean_database_and_loses_at_most_the_last_interval(
    tmp_path: Path,
) -> None:
    db = tmp_path / "events.db"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE, text=True, cwd=tmp_path
    )
    progress: list[tuple[int, float]] = []
    try:
        assert child.stdout is not None
        for line in child.stdout:
            tracked, at = line.split()
            progress.append((int(tracked), float(at)))
            if progress[-1][1] - progress[0][1] >= 1.5:  # mid-stream, well past the first flushes
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
        if child.stdout is not None:
            child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    written = rows(db)
    last_tracked, last_at = progress[-1]
    # Whatever was tracked more than one flush interval (plus slack for a busy CI machine)
    # before the kill is in the database; nothing is there twice.
    settled = max((n for n, at in progress if at <= last_at - 0.05 - 1.0), default=0)
    assert 0 < settled <= written <= last_tracked + 10
    with sqlite3.connect(db) as connection:
        distinct = connection.execute(
            f"SELECT count(DISTINCT json_extract(properties, '$.n')) FROM {TABLE}"
        ).fetchone()[0]
    connection.close()
    assert distinct == written


ASSIGN = """
import hashlib
from turnout.hashing import Splitter

digest = hashlib.sha256()
for algorithm, ids in (("murmur3", 100_000), ("growthbook-v1", 10_000), ("growthbook-v2", 10_000)):
    splitter = Splitter({"legacy": 50, "workflow": 30, "langgraph": 20}, seed="canary", algorithm=algorithm)
    for i in range(ids):
        variant, bucket = splitter.assign(f"user-{i}")
        digest.update(f"{variant}:{bucket!r};".encode())
print(digest.hexdigest())
"""


def test_two_processes_with_different_hash_seeds_assign_100k_ids_identically() -> None:
    digests = set()
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", ASSIGN], env=env, capture_output=True, text=True, check=True
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1
    assert len(digests.pop()) == len(hashlib.sha256().hexdigest())
