"""Shared pieces of the benchmarks: the workload, the network guard, timing and tables."""

from __future__ import annotations

import argparse
import gc
import os
import platform
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

VARIANTS = ("legacy", "workflow", "langgraph")
SPLIT = {"legacy": 80, "workflow": 10, "langgraph": 10}
PREMIUM_PLANS = ("premium", "enterprise")
FULL_IDS = 100_000
QUICK_IDS = 10_000

TURNOUT_CONFIG: dict[str, Any] = {
    "flags": {
        "coordinator": {
            "variants": list(VARIANTS),
            "default": "legacy",
            "rules": [
                {"name": "premium", "when": {"plan": {"$in": list(PREMIUM_PLANS)}}, "serve": "langgraph"},
                {"name": "split", "split": dict(SPLIT), "seed": "coordinator"},
            ],
        }
    },
}
"""The one flag every library is given: premium/enterprise → langgraph, else 80/10/10."""


def plan_of(index: int) -> str:
    """About 20% premium or enterprise (every fifth user), the rest free or pro."""
    if index % 5 == 0:
        return PREMIUM_PLANS[(index // 5) % 2]
    return ("free", "pro")[index % 2]


def users(count: int) -> list[tuple[str, str]]:
    """(user id, plan) for user-0 .. user-{count-1}."""
    return [(f"user-{i}", plan_of(i)) for i in range(count)]


def parse_args(description: str) -> argparse.Namespace:
    """`--quick` (10k ids, 3 repetitions) and `--reps N`."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_IDS:,} ids and 3 repetitions")
    parser.add_argument("--reps", type=int, default=None, help="timed passes over the ids (default 7)")
    parser.add_argument("--ids", type=int, default=None, help=f"distinct ids (default {FULL_IDS:,})")
    args = parser.parse_args()
    args.ids = args.ids or (QUICK_IDS if args.quick else FULL_IDS)
    args.reps = args.reps or (3 if args.quick else 7)
    return args


# -- no network ---------------------------------------------------------------------------


class NetworkGuard:
    """Makes every outgoing connection and DNS lookup fail, and counts the attempts.

    The SDKs are all configured for offline, local evaluation; this proves it: the
    benchmark prints the attempt count at the end and it must be 0.
    """

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def install(self) -> None:
        """Patch `socket` so that nothing in this process can reach the network."""
        guard = self

        def refuse(what: str) -> Callable[..., Any]:
            def blocked(*args: Any, **kwargs: Any) -> Any:
                guard.attempts.append(f"{what}{args[1:2] if what == 'connect' else args[:1]}")
                raise OSError(f"network disabled in benchmarks ({what})")

            return blocked

        socket.socket.connect = refuse("connect")  # type: ignore[method-assign]
        socket.socket.connect_ex = refuse("connect")  # type: ignore[method-assign]
        socket.create_connection = refuse("create_connection")
        socket.getaddrinfo = refuse("getaddrinfo")

    def report(self) -> str:
        """One line for the end of a run."""
        if not self.attempts:
            return "network attempts: 0 (everything evaluated locally)"
        return f"network attempts: {len(self.attempts)} (BLOCKED): {sorted(set(self.attempts))[:5]}"


# -- timing -------------------------------------------------------------------------------


@dataclass
class Result:
    """Per-call times (ns) of each timed pass for one contender."""

    name: str
    note: str
    per_call_ns: list[float]

    @property
    def median_us(self) -> float:
        """Median over the passes, in µs per call."""
        return statistics.median(self.per_call_ns) / 1000

    @property
    def spread_us(self) -> tuple[float, float]:
        """Fastest and slowest pass, in µs per call."""
        return min(self.per_call_ns) / 1000, max(self.per_call_ns) / 1000


def timed_pass(run: Callable[[], object], calls: int) -> float:
    """Run one pass with the garbage collector paused (as timeit does); ns per call."""
    gc.collect()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        run()
        elapsed = time.perf_counter_ns() - start
    finally:
        gc.enable()
    return elapsed / calls


def interleaved(passes: Sequence[tuple[str, str, Callable[[], object]]], calls: int, reps: int) -> list[Result]:
    """Time every contender once per repetition, round-robin, so drift hits all alike."""
    results = [Result(name, note, []) for name, note, _ in passes]
    for rep in range(reps):
        for result, (_, _, run) in zip(results, passes, strict=True):
            result.per_call_ns.append(timed_pass(run, calls))
        print(f"  pass {rep + 1}/{reps} done", file=sys.stderr, flush=True)
    return results


# -- output -------------------------------------------------------------------------------


def machine() -> str:
    """One line naming the interpreter, the platform and the CPU."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}"
    )


def versions(packages: Iterable[str]) -> str:
    """`name version` for each installed distribution."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in packages:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table, numbers right-aligned."""
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    numeric = [all(_numeric(row[i]) for row in cells[1:]) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        padded = (c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True))
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(("-" * (w + 1)) + (":" if n else "-") for w, n in zip(widths, numeric, strict=True)) + "|"
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def _numeric(text: str) -> bool:
    return bool(text) and text.lstrip("~").rstrip("×%µs ").replace(".", "", 1).replace(",", "").lstrip("+-").isdigit()


def distribution(assigned: Sequence[tuple[str, str]]) -> dict[str, str]:
    """Share of each variant among premium users, among the others, and overall."""
    premium = Counter(v for plan, v in assigned if plan in PREMIUM_PLANS)
    others = Counter(v for plan, v in assigned if plan not in PREMIUM_PLANS)
    total = premium + others

    def shares(counts: Counter[str]) -> str:
        n = sum(counts.values()) or 1
        extra = sorted(set(counts) - set(VARIANTS))
        return " / ".join(f"{100 * counts[v] / n:.1f}" for v in (*VARIANTS, *extra))

    return {"premium": shares(premium), "others": shares(others), "all": shares(total)}
