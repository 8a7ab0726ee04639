"""What a shadow costs a request's critical path: the route of bench_asgi.py with and without one.

Each app is `TurnoutMiddleware` + `@experiment` + a trivial async engine, driven through the
raw ASGI loop of `_common.time_apps` (X-User-Id user-0 … user-99999). The shadow engine is a
trivial async one too, but the timed loop never yields to the event loop between requests, so
shadow calls do not run inside the timed passes: the table is the cost a request pays (the
sticky sampling hash, deferring the call until the response is sent, admitting it to the
bounded queue or counting it skipped), which is what a user can feel. The shadow calls
themselves run after each pass and are counted at the end.

    .venv/bin/python bench/bench_shadow.py            # 100k requests per app, 7 passes
    .venv/bin/python bench/bench_shadow.py --quick    # 10k requests, 3 passes
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import _common
from bench_asgi import served
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route

from turnout import Turnout
from turnout.asgi import TurnoutMiddleware


def shadowed(sample: float | None) -> Turnout:
    """The benchmark Turnout, its flag shadowed by an extra engine on `sample` of the users."""
    config: dict[str, Any] = copy.deepcopy(_common.ASGI_CONFIG)
    if sample is not None:
        config["flags"]["coordinator"]["shadow"] = {"engine": "candidate", "sample": sample}
    config["events"] = {"enabled": False}
    router = Turnout(config, env={})
    for name in (*_common.VARIANTS, "candidate"):

        async def engine(message: str, name: str = name) -> str:
            return name

        router.add_engine(name, engine)
    return router


def apps(routers: dict[str, Turnout]) -> list[_common.Contender]:
    """One app per line of the table; the first (no shadow) is the baseline."""
    notes = {
        "no shadow": "the bench_asgi route that runs its engine",
        "shadow, sample 0": "a shadow configured, nobody sampled: one hash per request",
        "shadow, sample 0.05": "5% of users shadowed (the default share)",
        "shadow, sample 1.0": "every request shadowed (bounded: most are skipped and counted)",
    }
    return [
        (
            name,
            notes[name],
            Starlette(
                routes=[Route("/chat", served)], middleware=[Middleware(TurnoutMiddleware, turnout=router)]
            ),
        )
        for name, router in routers.items()
    ]


async def run(args: Any) -> None:
    """Time the apps interleaved and print the overhead table and the shadow counts."""
    people = _common.users(args.ids)
    routers = {
        "no shadow": shadowed(None),
        "shadow, sample 0": shadowed(0.0),
        "shadow, sample 0.05": shadowed(0.05),
        "shadow, sample 1.0": shadowed(1.0),
    }
    contenders = apps(routers)
    await _common.check_apps(contenders, people)
    results = await _common.time_apps(contenders, people, args.reps)
    print(f"\nPer request: median of {args.reps} passes over {args.ids:,} requests, the fastest pass,")
    print(f"p10–p90 of {_common.BATCH:,}-request batches; overhead over the route without a shadow:\n")
    print(
        _common.table(
            _common.OVERHEAD_HEADERS, _common.overhead_rows(results, results[0]), right=(1, 2, 3, 4, 5)
        )
    )
    print("\nShadow calls after the passes (offered / skipped for room / compared):")
    for name, router in routers.items():
        assert await router.shadows.drain(30)
        pairs = router.telemetry.live()["shadows"].get("coordinator", {})
        stats = [s for pair in pairs.values() for s in pair["intents"].values()]
        offered, skipped, compared = (
            sum(s[key] for s in stats) for key in ("offered", "skipped", "compared")
        )
        print(f"  {name:<22} {offered:>9,} / {skipped:>9,} / {compared:>9,}")
        router.shadows.close()


def main() -> None:
    """Parse the arguments and run the benchmark in one event loop."""
    args = _common.parse_args(__doc__.splitlines()[0])
    guard = _common.NetworkGuard()
    guard.install()
    print(f"# A shadow's cost on the critical path: {args.ids:,} requests, {args.reps} passes\n")
    print(_common.machine())
    print(_common.versions(("turnout", "starlette")))
    asyncio.run(run(args))
    print(f"{guard.report()}; {_common.load()} at the end")


if __name__ == "__main__":
    main()
