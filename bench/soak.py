"""The long versions of tests/reliability, and the timings the tests do not assert.

    python bench/soak.py                # about 12 minutes on 2 cores
    python bench/soak.py --requests 200000 --kills 20

1. The reliability suite at soak sizes: the fault matrix over `--requests` requests, the
   fuzz tests with the `soak` hypothesis profile (50,000 cases each), the kill -9 test
   `--kills` times.
2. Timings: a catastrophic `$regex` against a 10,000-character header (refused at load;
   a slow pattern the load-time check lets through is cut at its search budget), and
   `stop()` with 1, 10 and 50 hung sinks against its `shutdown_timeout_s`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from turnout import ConfigError, RoutingContext, Turnout
from turnout.config import EventsConfig
from turnout.events import Event, EventSink, EventTracker
from turnout.regex_guard import SEARCH_BUDGET_S

ROOT = Path(__file__).resolve().parent.parent


def run_suite(requests: int, kills: int) -> bool:
    env = {**os.environ, "TURNOUT_SOAK_REQUESTS": str(requests), "TURNOUT_FUZZ_PROFILE": "soak"}
    pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/reliability"]
    ok = subprocess.run(pytest, check=False, cwd=ROOT, env=env).returncode == 0
    for _ in range(kills):
        ok &= subprocess.run([*pytest, "-k", "kill_9"], check=False, cwd=ROOT, env=env).returncode == 0
    return ok


def regex_timings() -> bool:
    print("\n| pattern | header | result | time |\n| --- | --- | --- | --- |")
    header = "a" * 10_000 + "!"
    when = {"agent": {"$regex": r"^(a+)+$"}}
    flag = {"variants": ["a", "b"], "default": "a", "kind": "value", "rules": [{"when": when, "serve": "b"}]}
    try:
        Turnout({"flags": {"f": flag}}, env={})
        print("| `^(a+)+$` | — | accepted at load (unexpected) | — |")
        return False
    except ConfigError:
        print("| `^(a+)+$` | — | refused at load | — |")
    slow = r"^(.*a){12}$"
    when["agent"]["$regex"] = slow
    t = Turnout({"flags": {"f": flag}}, env={})
    worst = 0.0
    for _ in range(20):
        started = time.perf_counter()
        t.decide("f", RoutingContext("u", {"agent": header}))
        worst = max(worst, time.perf_counter() - started)
    budget = f"cut at the {SEARCH_BUDGET_S * 1000:g} ms budget"
    print(f"| `{slow}` | 10,001 chars | {budget} | worst {worst * 1000:.1f} ms |")
    short = "a" * 22 + "!"
    started = time.perf_counter()
    re.search(r"^(a+)+$", short)
    took = time.perf_counter() - started
    print(f"| `^(a+)+$` in stdlib `re`, for scale | 23 chars | no budget | {took:.2f} s |")
    return worst < 0.010 + SEARCH_BUDGET_S


class HungSink(EventSink):
    name = "hung"

    async def write(self, batch: Sequence[Event]) -> None:
        await asyncio.sleep(3600)

    def write_sync(self, batch: Sequence[Event]) -> None:
        raise TimeoutError

    async def close(self) -> None:
        await asyncio.sleep(3600)


async def stop_timings(timeout_s: float = 1.0) -> bool:
    print(
        f"\n| hung sinks | stop() took | limit ({timeout_s:g} s + 0.5 s) | lost |\n| --- | --- | --- | --- |"
    )
    ok = True
    for count in (1, 10, 50):
        tracker = EventTracker([HungSink() for _ in range(count)], EventsConfig(shutdown_timeout_s=timeout_s))
        await tracker.start()
        for n in range(100):
            tracker.track("tick", distinct_id=f"u{n}")
        started = time.perf_counter()
        await tracker.stop()
        took = time.perf_counter() - started
        ok &= took <= timeout_s + 0.5
        print(
            f"| {count} | {took:.2f} s | {'ok' if took <= timeout_s + 0.5 else 'EXCEEDED'} | {tracker.lost} |"
        )
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=50_000, help="fault-matrix requests")
    parser.add_argument("--kills", type=int, default=5, help="times the kill -9 test runs")
    parser.add_argument("--timings-only", action="store_true", help="skip the long suite run")
    args = parser.parse_args()
    ok = regex_timings()
    ok &= asyncio.run(stop_timings())
    if not args.timings_only:
        ok &= run_suite(args.requests, args.kills)
    print("\nsoak:", "ok" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
