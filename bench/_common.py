"""Shared pieces of the benchmarks: the workload, the network guard, timing, the raw ASGI loop, tables."""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import socket
import statistics
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from turnout import Turnout

VARIANTS = ("legacy", "workflow", "langgraph")
SPLIT = {"legacy": 80, "workflow": 10, "langgraph": 10}
PREMIUM_PLANS = ("premium", "enterprise")
FULL_IDS = 100_000
QUICK_IDS = 10_000
BATCH = 1_000
"""Calls per timed batch: the spread columns are percentiles over these batches."""

TURNOUT_FLAG: dict[str, Any] = {
    "variants": list(VARIANTS),
    "default": "legacy",
    "rules": [
        {"name": "premium", "when": {"plan": {"$in": list(PREMIUM_PLANS)}}, "serve": "langgraph"},
        {"name": "split", "split": dict(SPLIT), "seed": "coordinator"},
    ],
}
"""The one flag every library is given: premium/enterprise → langgraph, else 80/10/10."""

User = tuple[str, str]
"""(user id, plan)."""


def plan_of(index: int) -> str:
    """Every fifth user is premium or enterprise (20%); the rest are free or pro."""
    if index % 5 == 0:
        return PREMIUM_PLANS[(index // 5) % 2]
    return ("free", "pro")[index % 2]


def users(count: int) -> list[User]:
    """(user id, plan) for user-0 .. user-{count-1}."""
    return [(f"user-{i}", plan_of(i)) for i in range(count)]


def parse_args(
    description: str, extra: Callable[[argparse.ArgumentParser], object] | None = None
) -> argparse.Namespace:
    """`--quick` (10k ids, 3 passes), `--ids N`, `--reps N`, and whatever `extra` adds."""
    parser = argparse.ArgumentParser(description=description)
    if extra is not None:
        extra(parser)
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_IDS:,} ids and 3 passes")
    parser.add_argument("--ids", type=int, default=None, help=f"distinct ids (default {FULL_IDS:,})")
    parser.add_argument("--reps", type=int, default=None, help="timed passes over the ids (default 7)")
    add_json_option(parser)
    args = parser.parse_args()
    args.ids = args.ids or (QUICK_IDS if args.quick else FULL_IDS)
    args.reps = args.reps or (3 if args.quick else 7)
    return args


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """`--json PATH`: where the script writes its headline ratio for `bench/summary.py`."""
    parser.add_argument("--json", metavar="PATH", default=None, help="also write the headline ratio here")


def save_ratio(path: str | None, key: str, value: float, *, target: float, higher_is_better: bool) -> None:
    """Write one script's headline figure (`bench/summary.py` reads it); nothing without `--json`."""
    if path is None:
        return
    met = value >= target if higher_is_better else value <= target
    record = {"key": key, "value": value, "target": target, "higher_is_better": higher_is_better, "met": met}
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(record, file)


def chunks(items: Sequence[Any], size: int = BATCH) -> list[Sequence[Any]]:
    """`items` cut into timed batches."""
    return [items[i : i + size] for i in range(0, len(items), size)]


# -- no network ---------------------------------------------------------------------------


class NetworkGuard:
    """Makes every outgoing connection and DNS lookup fail, and counts the attempts.

    All the SDKs are configured for offline, local evaluation; the guard proves it: each
    benchmark prints the attempt count at the end, and it must be 0.
    """

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def install(self) -> None:
        """Patch `socket` so that nothing in this process can reach the network."""

        def refuse(what: str) -> Callable[..., Any]:
            def blocked(*args: Any, **kwargs: Any) -> Any:
                self.attempts.append(what)
                raise OSError(f"network disabled in benchmarks ({what})")

            return blocked

        socket.socket.connect = refuse("connect")  # type: ignore[method-assign]
        socket.socket.connect_ex = refuse("connect_ex")  # type: ignore[method-assign]
        socket.create_connection = refuse("create_connection")
        socket.getaddrinfo = refuse("getaddrinfo")

    def report(self) -> str:
        """One line for the end of a run."""
        if not self.attempts:
            return "network attempts: 0 (everything was evaluated locally)"
        return f"network attempts: {len(self.attempts)} BLOCKED ({', '.join(sorted(set(self.attempts)))})"


# -- timing -------------------------------------------------------------------------------


@dataclass
class Result:
    """Timings of one contender: ns per call for each pass and for each batch."""

    name: str
    note: str
    passes: list[float] = field(default_factory=list)
    batches: list[float] = field(default_factory=list)

    def add_pass(self, batch_ns: Sequence[int], batch_sizes: Sequence[int]) -> None:
        """Record one pass over all the ids, timed batch by batch."""
        self.passes.append(sum(batch_ns) / sum(batch_sizes))
        self.batches.extend(ns / n for ns, n in zip(batch_ns, batch_sizes, strict=True))

    @property
    def median_us(self) -> float:
        """Median over the passes of the mean per-call time, in µs."""
        return statistics.median(self.passes) / 1000

    @property
    def best_us(self) -> float:
        """The fastest pass, in µs per call: the least disturbed by other load on the machine."""
        return min(self.passes) / 1000

    def percentile_us(self, q: int) -> float:
        """The q-th percentile of the per-call time over all batches, in µs."""
        return statistics.quantiles(self.batches, n=100, method="inclusive")[q - 1] / 1000


class PausedGC:
    """Pause the garbage collector while timing (as `timeit` does), after a full collection."""

    def __enter__(self) -> None:
        gc.collect()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        gc.enable()


def time_batches(run: Callable[[Sequence[Any]], object], batches: Sequence[Sequence[Any]]) -> list[int]:
    """Run `run` over each batch with the GC paused; the ns each batch took."""
    clock = time.perf_counter_ns
    spent = []
    with PausedGC():
        for batch in batches:
            start = clock()
            run(batch)
            spent.append(clock() - start)
    return spent


def progress(rep: int, reps: int) -> None:
    """Tell stderr a pass is done (stdout keeps only the report)."""
    print(f"  pass {rep}/{reps} done", file=sys.stderr, flush=True)


# -- the raw ASGI loop --------------------------------------------------------------------
# Apps are driven with `await app(scope, receive, send)`: prebuilt scopes, an empty body
# and a send that does nothing, so the numbers are the app's own cost. No server and no
# httpx: httpx's ASGI transport costs more than the app and would hide what is measured.

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]
Contender = tuple[str, str, ASGIApp]
"""(name, what it adds, app): one line of an ASGI table; the first of a list is the baseline."""

ASGI_CONFIG: dict[str, Any] = {
    "flags": {"coordinator": TURNOUT_FLAG},
    "http": {"attribute_headers": {"X-Plan": "plan"}},
}
"""The benchmark flag, with the X-Plan header read into the `plan` attribute."""


def asgi_turnout(**kwargs: Any) -> Turnout:
    """A `Turnout` on ASGI_CONFIG with a trivial async engine per variant (it answers its name)."""
    router = Turnout(ASGI_CONFIG, env={}, **kwargs)
    for name in VARIANTS:

        async def engine(message: str, name: str = name) -> str:
            return name

        router.add_engine(name, engine)
    return router


def http_scopes(
    people: Sequence[User], path: str = "/chat", *, method: str = "GET", body: bytes = b""
) -> list[dict[str, Any]]:
    """One prebuilt HTTP scope per user (X-User-Id, X-Plan); each request gets a shallow copy.

    With a `body`, the scope announces it as JSON of that length (the caller's receive sends it).
    """
    sent = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))] if body else []
    return [
        {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"bench.local"),
                (b"user-agent", b"turnout-bench"),
                (b"accept", b"application/json"),
                *sent,
                (b"x-user-id", user.encode()),
                (b"x-plan", plan.encode()),
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        for user, plan in people
    ]


async def receive() -> Message:
    """An empty request body."""
    return {"type": "http.request", "body": b"", "more_body": False}


async def discard(message: Message) -> None:
    """The no-op send of the timed passes."""


async def serve_all(name: str, app: ASGIApp, requests: Sequence[Scope], people: Sequence[User]) -> list[str]:
    """Serve every request once (untimed: also the warm-up); each answer must be 200 + a variant."""
    variants = []
    for scope, (user, _) in zip(requests, people, strict=True):
        sent: list[Message] = []

        async def record(message: Message, sent: list[Message] = sent) -> None:
            sent.append(message)

        await app(dict(scope), receive, record)
        status = sent[0]["status"]
        if status != 200:
            raise SystemExit(f"{name}: {user} got HTTP {status}: {sent[1:]}")
        variants.append(json.loads(b"".join(m.get("body", b"") for m in sent[1:]))["variant"])
    return variants


async def check_apps(contenders: Sequence[Contender], people: Sequence[User]) -> list[tuple[str, ...]]:
    """Serve every id once through each app; (name, variant shares…) rows for a table."""
    requests = http_scopes(people)
    rows = []
    for name, _, app in contenders:
        chosen = await serve_all(name, app, requests, people)
        rows.append(
            (name, *shares((plan, variant) for (_, plan), variant in zip(people, chosen, strict=True)))
        )
    return rows


async def time_asgi_pass(app: ASGIApp, batches: Sequence[Sequence[Scope]]) -> list[int]:
    """Serve each batch with the GC paused; the ns each batch took."""
    clock = time.perf_counter_ns
    spent = []
    with PausedGC():
        for batch in batches:
            start = clock()
            for scope in batch:
                await app(dict(scope), receive, discard)
            spent.append(clock() - start)
    return spent


async def time_apps(contenders: Sequence[Contender], people: Sequence[User], reps: int) -> list[Result]:
    """Time the apps interleaved (one pass of each, then the next round), `reps` passes."""
    batches = chunks(http_scopes(people))
    sizes = [len(b) for b in batches]
    results = [Result(name, note) for name, note, _ in contenders]
    for rep in range(1, reps + 1):
        for (_, _, app), result in zip(contenders, results, strict=True):
            result.add_pass(await time_asgi_pass(app, batches), sizes)
        progress(rep, reps)
    return results


def overhead_rows(results: Sequence[Result], baseline: Result) -> list[tuple[str, ...]]:
    """Per result: µs/request, best pass, p10–p90, and µs and % over `baseline` (medians / best)."""
    rows = []
    for result in results:
        if result is baseline:
            overhead = ("—", "—")
        else:
            median, best = result.median_us - baseline.median_us, result.best_us - baseline.best_us
            overhead = (
                f"{median:+.2f} / {best:+.2f}",
                f"{100 * median / baseline.median_us:+.0f}% / {100 * best / baseline.best_us:+.0f}%",
            )
        rows.append(
            (
                result.name,
                f"{result.median_us:.2f}",
                f"{result.best_us:.2f}",
                f"{result.percentile_us(10):.2f}–{result.percentile_us(90):.2f}",
                *overhead,
                result.note,
            )
        )
    return rows


OVERHEAD_HEADERS = ("app", "µs/request", "best pass", "p10–p90", "overhead µs", "overhead", "what it does")


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
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, {cpu}; {load()}"
    )


def load() -> str:
    """The load average (1, 5, 15 min): other work on the machine skews the timings."""
    if not hasattr(os, "getloadavg"):
        return "load average unknown"
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


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


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], right: Sequence[int] = ()) -> str:
    """A Markdown table; the columns whose index is in `right` are right-aligned."""
    cells = [[str(h) for h in headers], *([str(c) for c in row] for row in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        padded = (
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join("-" * (w + 1) + (":" if i in right else "-") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), rule, *(line(row) for row in cells[1:])])


def throughput_table(tracker: float, delivery: float, raw: float, raw_label: str) -> str:
    """Events/s through the tracker (end to end, delivery only) beside the raw driver, as × raw."""
    rows = [
        ("tracker end to end: track() … stop() committed the last row", tracker),
        ("tracker delivery only: queue filled first, start() … stop()", delivery),
        (raw_label, raw),
    ]
    return table(
        ["path", "events/s", "× raw"],
        [(what, f"{rate:,.0f}", f"{rate / raw:.2f}") for what, rate in rows],
        right=(1, 2),
    )


def shares(assigned: Iterable[tuple[str, str]]) -> tuple[str, str, str]:
    """Variant shares (legacy / workflow / langgraph, in %) for premium users, the others, all."""
    premium: Counter[str] = Counter()
    others: Counter[str] = Counter()
    for plan, variant in assigned:
        (premium if plan in PREMIUM_PLANS else others)[variant] += 1

    def text(counts: Counter[str]) -> str:
        total = sum(counts.values()) or 1
        names = (*VARIANTS, *sorted(set(counts) - set(VARIANTS)))
        return " / ".join(f"{100 * counts[v] / total:.1f}" for v in names)

    return text(premium), text(others), text(premium + others)
