"""What `TurnoutMiddleware` and `@experiment` add to a Starlette JSON route, per request.

The apps are driven through a raw ASGI loop (`_common.time_apps`): `await app(scope,
receive, send)` with prebuilt scopes and a send that does nothing, so the numbers are the
app's own cost (httpx's transport would cost more than the app). Each request carries a
different X-User-Id (user-0 … user-99999) and an X-Plan header (20% premium or enterprise).
No OpenTelemetry SDK is configured here; bench_telemetry.py measures the same path with one.

    .venv/bin/python bench/bench_asgi.py            # 100k requests per app, 7 passes
    .venv/bin/python bench/bench_asgi.py --quick    # 10k requests, 3 passes
"""

from __future__ import annotations

import asyncio
from typing import Any

import _common
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from turnout import BoundEngine, Turnout, experiment
from turnout.asgi import TurnoutMiddleware


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


def apps(router: Turnout) -> list[_common.Contender]:
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


async def run(args: Any) -> None:
    """Check every app, time them interleaved, print the table."""
    people = _common.users(args.ids)
    contenders = apps(_common.asgi_turnout())

    rows = await _common.check_apps(contenders, people)
    print("\nVariants in the responses, % legacy / workflow / langgraph (the first two apps")
    print("serve the bare endpoint, which always says legacy):\n")
    print(_common.table(("app", "premium+enterprise", "free+pro", "all"), rows))

    results = await _common.time_apps(contenders, people, args.reps)
    bare_app = results[0]
    print(f"\nPer request: median of {args.reps} passes over {args.ids:,} requests, the fastest pass,")
    print(f"p10–p90 of {_common.BATCH:,}-request batches; overhead over the bare route, from the")
    print("medians / from the fastest passes:\n")
    print(
        _common.table(
            _common.OVERHEAD_HEADERS, _common.overhead_rows(results, bare_app), right=(1, 2, 3, 4, 5)
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
    _common.save_ratio(args.json, "asgi", by_median / 100, target=0.20, higher_is_better=False)


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
