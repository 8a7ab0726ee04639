"""`turnout demo`: a Starlette app with three engines, driven by synthetic users in-process."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from typing import Any

from turnout.asgi import TurnoutMiddleware
from turnout.decorators import BoundEngine, experiment
from turnout.router import Turnout
from turnout.workflow import Workflow

DEMO_CONFIG: dict[str, Any] = {
    "engines": {
        "legacy": {"version": "1.0"},
        "workflow": {"version": "2.0", "fallback": "legacy", "timeout_ms": 500},
        "langgraph": {"version": "0.9", "fallback": "legacy", "timeout_ms": 500},
    },
    "http": {"attribute_headers": {"X-Plan": "plan"}, "variant_header": "X-Turnout-Variant"},
    "flags": {
        "coordinator": {
            "variants": ["legacy", "workflow", "langgraph"],
            "default": "legacy",
            "rules": [
                {"name": "enterprise", "when": {"plan": "enterprise"}, "serve": "langgraph"},
                {
                    "name": "canary",
                    "experiment": "workflow-canary",
                    "split": {"legacy": 90, "workflow": 10},
                },
            ],
        }
    },
}
PLANS = ("free", "free", "free", "premium", "enterprise")
MESSAGES = ("where is my order?", "I want a refund", "你好，我的快递到哪了？", "talk to a human please")


def build(failure_rate: float, seed: int) -> tuple[Turnout, Any]:
    """The demo's Turnout and Starlette app."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    turnout = Turnout(DEMO_CONFIG, env={})
    rng = random.Random(seed)

    @turnout.engine("legacy")
    def legacy(message: str) -> str:
        return "Thanks, an agent will look at: " + message

    workflow = Workflow(name="workflow")
    workflow.add("intent", lambda state: {"intent": "refund" if "refund" in state["message"] else "other"})
    workflow.add("generate", lambda state: {"response": f"[{state['intent']}] handled by the workflow"})
    turnout.add_engine("workflow", workflow)

    @turnout.engine("langgraph")
    async def langgraph(message: str) -> str:
        await asyncio.sleep(0)
        if rng.random() < failure_rate:
            raise RuntimeError("graph node failed")
        return "graph answer to: " + message

    @experiment("coordinator")
    async def chat(request: Request, engine: BoundEngine) -> JSONResponse:
        body = await request.json()
        reply = await engine(body["message"])
        return JSONResponse({"variant": engine.variant, "reply": reply})

    app = Starlette(routes=[Route("/chat", chat, methods=["POST"])], lifespan=turnout.lifespan)
    app.add_middleware(TurnoutMiddleware, turnout=turnout)
    return turnout, app


async def _drive(app: Any, users: int, seed: int) -> tuple[Counter[tuple[str, str]], int, float]:
    import httpx

    rng = random.Random(seed)
    by_plan: Counter[tuple[str, str]] = Counter()
    first: dict[str, str] = {}
    moved = 0
    started = time.perf_counter()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo") as client:
        for round_ in range(2):
            for user in range(users):
                plan = PLANS[user % len(PLANS)]
                headers = {"X-User-Id": f"user-{user}", "X-Plan": plan}
                response = await client.post("/chat", json={"message": rng.choice(MESSAGES)}, headers=headers)
                variant = response.json()["variant"]
                if round_ == 0:
                    first[headers["X-User-Id"]] = variant
                    by_plan[(plan, variant)] += 1
                elif first[headers["X-User-Id"]] != variant:
                    moved += 1
    return by_plan, moved, time.perf_counter() - started


def run_demo(*, users: int = 2000, seed: int = 7) -> int:
    """Route `users` synthetic users twice (to show stickiness) and print what happened."""
    turnout, app = build(failure_rate=0.05, seed=seed)

    async def drive() -> tuple[Counter[tuple[str, str]], int, float]:
        await turnout.start()
        try:
            return await _drive(app, users, seed)
        finally:
            await turnout.stop()

    by_plan, moved, elapsed = asyncio.run(drive())
    print(
        f"turnout demo: {users} users x 2 requests through TurnoutMiddleware + @experiment ({elapsed:.1f}s)\n"
    )
    variants = ("legacy", "workflow", "langgraph")
    print(f"{'plan':<12}" + "".join(f"{v:>12}" for v in variants))
    for plan in sorted({p for p, _ in by_plan}):
        total = sum(by_plan[(plan, v)] for v in variants)
        cells = "".join(f"{by_plan[(plan, v)]:>6} {by_plan[(plan, v)] / total:>4.0%}" for v in variants)
        print(f"{plan:<12}{cells}")
    print(f"\nsticky: {moved} of {users} users changed variant between their two requests")
    fallbacks = turnout.failures.snapshot()
    print(f"engine failures served by the fallback engine: {fallbacks or 'none'}")
    print("\nnext: `turnout validate examples/turnout.toml`, and see README.md for the API")
    return 0 if moved == 0 else 1
