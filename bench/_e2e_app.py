"""The apps `bench_e2e.py` serves with uvicorn: a bare FastAPI route and the same route with turnout.

Both answer POST /chat with a JSON body after awaiting a trivial async engine, so the only
difference is turnout: `TurnoutMiddleware`, the `@experiment("coordinator")` decision, the
engine call through turnout (timeout, breaker, metrics), and one exposure event per new user
into the default SQLite sink. The working directory (set by the benchmark) receives
`turnout_events.db` and `logs/metrics.jsonl`. `bench_layers.py` also builds the layers in
between: the middleware alone, and the middleware with the decision but no engine call.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI, Request

from turnout import BoundEngine, Turnout, experiment
from turnout.asgi import TurnoutMiddleware

VARIANTS = ("legacy", "workflow", "langgraph")

CONFIG: dict[str, Any] = {
    "flags": {
        "coordinator": {
            "variants": list(VARIANTS),
            "default": "legacy",
            "rules": [
                {
                    "name": "premium",
                    "when": {"plan": {"$in": ["premium", "enterprise"]}},
                    "serve": "langgraph",
                },
                {
                    "name": "canary",
                    "experiment": "bench-canary",
                    "split": {"legacy": 80, "workflow": 10, "langgraph": 10},
                },
            ],
        }
    },
    "http": {"attribute_headers": {"X-Plan": "plan"}},
}


async def _answer(message: str) -> str:
    return "ok"


async def chat(request: Request) -> dict[str, str]:
    """The route: awaits the engine function itself."""
    body = await request.json()
    return {"variant": "legacy", "reply": await _answer(body["message"])}


@experiment("coordinator")
async def decided_chat(request: Request, engine: BoundEngine) -> dict[str, str]:
    """The route with the decision made and the engine bound, but the engine function awaited itself."""
    body = await request.json()
    return {"variant": engine.variant, "reply": await _answer(body["message"])}


@experiment("coordinator")
async def turnout_chat(request: Request, engine: BoundEngine) -> dict[str, str]:
    """The route as users write it with turnout: the chosen engine awaited through turnout."""
    body = await request.json()
    return {"variant": engine.variant, "reply": await engine(body["message"])}


def bare_app() -> FastAPI:
    """The baseline: the bare route, no turnout anywhere."""
    app = FastAPI()
    app.post("/chat")(chat)
    return app


def turnout_app(*, events: bool | None = None) -> FastAPI:
    """The same route with middleware, `@experiment` and the engine run through turnout.

    `events=False` turns exposures off; by default the environment decides (uvicorn calls the
    factory without arguments, and `bench_e2e.py --no-events` sets TURNOUT_EVENTS__ENABLED=false).
    """
    app = _turnout_base(_turnout(events))
    app.post("/chat")(turnout_chat)
    return app


def middleware_app() -> FastAPI:
    """The bare route behind `TurnoutMiddleware` (with turnout started): no decision made."""
    app = _turnout_base(_turnout(False))
    app.post("/chat")(chat)
    return app


def experiment_app() -> FastAPI:
    """Middleware and the `@experiment` decision; the engine function is awaited directly."""
    app = _turnout_base(_turnout(False))
    app.post("/chat")(decided_chat)
    return app


def _turnout(events: bool | None) -> Turnout:
    # Only TURNOUT_* settings from the environment.
    settings = {name: value for name, value in os.environ.items() if name.startswith("TURNOUT_")}
    if events is not None:
        settings["TURNOUT_EVENTS__ENABLED"] = "true" if events else "false"
    turnout = Turnout(CONFIG, env=settings)
    for name in VARIANTS:
        turnout.add_engine(name, _answer)
    return turnout


def _turnout_base(turnout: Turnout) -> FastAPI:
    app = FastAPI(lifespan=turnout.lifespan)
    app.add_middleware(TurnoutMiddleware, turnout=turnout)
    return app
