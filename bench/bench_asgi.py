"""What `TurnoutMiddleware` and `@experiment` add to a Starlette JSON route, per request.

The apps are driven through a raw ASGI loop: `await app(scope, receive, send)` with
prebuilt scopes and a send that does nothing, so the numbers are the app's own cost
(httpx's transport would cost more than the app). Each request carries a different
X-User-Id (user-0 … user-99999) and an X-Plan header (20% premium or enterprise).

    .venv/bin/python bench/bench_asgi.py            # 100k requests per app, 7 passes
    .venv/bin/python bench/bench_asgi.py --quick    # 10k requests, 3 passes
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

import _common
from _common import TURNOUT_FLAG, VARIANTS, User
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from turnout import BoundEngine, Turnout, experiment
from turnout.asgi import TurnoutMiddleware

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]

CONFIG: dict[str, Any] = {
    "flags": {"coordinator": TURNOUT_FLAG},
    "http": {"attribute_headers": {"X-Plan": "plan"}},
}


def make_turnout() -> Turnout:
    """The Turnout of the benchmark, with a trivial async engine for every variant."""
    router = Turnout(CONFIG, env={})
    for name in VARIANTS:

        async def engine(message: str, name: str = name) -> str:
            return name

        router.add_engine(name, engine)
    return router


async def bare(request: Request) -> JSONResponse:
    """The baseline: a plain JSON endpoint."""
    return JSONResponse({"variant": "legacy"})


@experiment("coordinator")
async def decided(request: Request, engine: BoundEngine) -> JSONResponse:
    """The chosen variant, without running an engine."""
    return JSONResponse({"variant": engine.variant})


@experiment("coordinator")
async def served(request: Request, engine: BoundEngine) -> JSONResponse:
    """The chosen engine run (it answers with its own name)."""
    return JSONResponse({"variant": await engine("hello")})


def apps(router: Turnout) -> list[tuple[str, str, ASGIApp]]:
    """(name, what it adds, app) for each line of the table; the first is the baseline."""
    middleware = [Middleware(TurnoutMiddleware, turnout=router)]
    return [
        (
            "bare Starlette route",
            "JSONResponse({'variant': 'legacy'})",
            Starlette(routes=[Route("/chat", bare)]),
        ),
        (
            "+ TurnoutMiddleware",
            "middleware only; same bare endpoint",
            Starlette(routes=[Route("/chat", bare)], middleware=middleware),
        ),
        (
            "+ middleware + @experiment",
            "decision; returns engine.variant",
            Starlette(routes=[Route("/chat", decided)], middleware=middleware),
        ),
        (
            "+ middleware + @experiment + await engine()",
            "decision and a trivial async engine run",
            Starlette(routes=[Route("/chat", served)], middleware=middleware),
        ),
    ]


def scopes(people: Sequence[User]) -> list[dict[str, Any]]:
    """One prebuilt HTTP scope per user; each request gets a shallow copy."""
    return [
        {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/chat",
            "raw_path": b"/chat",
            "root_path": "",
            "query_string": b"",
            "headers": [
                (b"host", b"bench.local"),
                (b"user-agent", b"turnout-bench"),
                (b"accept", b"application/json"),
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


async def check(
    name: str, app: ASGIApp, requests: Sequence[dict[str, Any]], people: Sequence[User]
) -> list[str]:
    """Serve every request once (untimed: also the warm-up); every answer must be 200 + a variant."""
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


async def time_pass(app: ASGIApp, batches: Sequence[Sequence[dict[str, Any]]]) -> list[int]:
    """Serve each batch with the GC paused; the ns each batch took."""
    clock = time.perf_counter_ns
    spent = []
    with _common.PausedGC():
        for batch in batches:
            start = clock()
            for scope in batch:
                await app(dict(scope), receive, discard)
            spent.append(clock() - start)
    return spent


async def run(args: Any) -> None:
    """Check every app, time them interleaved, print the table."""
    people = _common.users(args.ids)
    requests = scopes(people)
    router = make_turnout()
    contenders = apps(router)

    rows = []
    for name, _, app in contenders:
        chosen = await check(name, app, requests, people)
        premium, others, everyone = _common.shares(
            (plan, variant) for (_, plan), variant in zip(people, chosen, strict=True)
        )
        rows.append((name, premium, others, everyone))
    print("\nVariants in the responses, % legacy / workflow / langgraph (the first two apps")
    print("serve the bare endpoint, which always says legacy):\n")
    print(_common.table(("app", "premium+enterprise", "free+pro", "all"), rows))

    batches = _common.chunks(requests)
    sizes = [len(b) for b in batches]
    results = [_common.Result(name, note) for name, note, _ in contenders]
    for rep in range(1, args.reps + 1):
        for (_, _, app), result in zip(contenders, results, strict=True):
            result.add_pass(await time_pass(app, batches), sizes)
        _common.progress(rep, args.reps)

    bare_app = results[0]
    table = []
    for result in results:
        if result is bare_app:
            overhead = ("—", "—")
        else:
            median, best = result.median_us - bare_app.median_us, result.best_us - bare_app.best_us
            overhead = (
                f"{median:+.2f} / {best:+.2f}",
                f"{100 * median / bare_app.median_us:+.0f}% / {100 * best / bare_app.best_us:+.0f}%",
            )
        table.append(
            (
                result.name,
                f"{result.median_us:.2f}",
                f"{result.best_us:.2f}",
                f"{result.percentile_us(10):.2f}–{result.percentile_us(90):.2f}",
                *overhead,
                result.note,
            )
        )
    print(f"\nPer request: median of {args.reps} passes over {args.ids:,} requests, the fastest pass,")
    print(f"p10–p90 of {_common.BATCH:,}-request batches; overhead over the bare route, from the")
    print("medians / from the fastest passes:\n")
    print(
        _common.table(
            ("app", "µs/request", "best pass", "p10–p90", "overhead µs", "overhead", "what it does"),
            table,
            right=(1, 2, 3, 4, 5),
        )
    )
    decision = results[2]
    by_median = 100 * (decision.median_us - bare_app.median_us) / bare_app.median_us
    by_best = 100 * (decision.best_us - bare_app.best_us) / bare_app.best_us
    verdict = "meets" if max(by_median, by_best) <= 20 else "misses"
    print(
        f"\nDecision-only overhead: {by_median:+.0f}% (medians), {by_best:+.0f}% (fastest passes); "
        f"this {verdict} the ≤ 20% target."
    )


def main() -> None:
    """Parse the arguments and run the benchmark in one event loop."""
    args = _common.parse_args(__doc__.splitlines()[0])
    guard = _common.NetworkGuard()
    guard.install()
    print(f"# TurnoutMiddleware + @experiment vs a bare route: {args.ids:,} requests, {args.reps} passes\n")
    print(_common.machine())
    print(_common.versions(("turnout", "starlette")))
    asyncio.run(run(args))
    print(f"{guard.report()}; {_common.load()} at the end")


if __name__ == "__main__":
    main()
