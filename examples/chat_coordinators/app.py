"""The chat coordinator example: a FastAPI app whose /chat is served by one of three engines.

Run it:  uvicorn examples.chat_coordinators.app:app --port 8000
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from examples.chat_coordinators.coordinators import make_legacy, make_workflow
from examples.chat_coordinators.fake_llm import FakeLLM
from turnout import BoundEngine, Turnout, current_decision, experiment
from turnout.asgi import TurnoutMiddleware

HERE = Path(__file__).parent
FLAG = "coordinator"


class ChatIn(BaseModel):
    message: str = Field(min_length=1, max_length=4000)


class ChatOut(BaseModel):
    variant: str
    engine: str | None
    reason: str
    reply: str
    intent: str
    escalated: bool


def create_turnout(config: str | Path | None = None, *, seed: int = 0, **options: Any) -> Turnout:
    """The example's Turnout: the config file plus the legacy and workflow engines in code."""
    turnout = Turnout.from_file(
        config or os.environ.get("TURNOUT_CONFIG") or HERE / "turnout.toml", **options
    )
    # The workflow resolves more sessions than legacy but spends more on the model per answer:
    # the canary's report weighs one against the other.
    legacy_llm = FakeLLM.from_env(
        "legacy", median_ms=60, error_rate=0.01, seed=seed, resolve_rate=0.45, cost_usd=0.002
    )
    workflow_llm = FakeLLM.from_env(
        "workflow", median_ms=45, error_rate=0.02, seed=seed, resolve_rate=0.62, cost_usd=0.0034
    )
    turnout.add_engine("legacy", make_legacy(legacy_llm))
    turnout.add_engine("workflow", make_workflow(turnout, workflow_llm))
    return turnout


def create_app(turnout: Turnout | None = None) -> FastAPI:
    """The FastAPI app; pass a Turnout to control its config (tests, the demo)."""
    turnout = turnout or create_turnout()
    app = FastAPI(title="chat coordinators", lifespan=turnout.lifespan)
    app.add_middleware(TurnoutMiddleware, turnout=turnout)
    app.add_route("/metrics", turnout.metrics_app(), include_in_schema=False)  # GET /metrics, no redirect

    @app.post("/chat", response_model=ChatOut, responses={503: {"description": "every engine failed"}})
    @experiment(FLAG, text="body.message")
    async def chat(body: ChatIn, engine: BoundEngine) -> Any:
        started = time.perf_counter()
        try:
            result = await engine(body.message)
        except Exception as exc:
            # The engine and its fallbacks all failed (turnout counted and logged it): answer politely.
            turnout.track(
                "session.error", properties={"variant": engine.variant, "error": type(exc).__name__}
            )
            return JSONResponse(
                {"variant": engine.variant, "error": "The assistant is unavailable, please try again."},
                status_code=503,
            )
        final = current_decision(FLAG) or engine.decision  # FALLBACK if another engine served
        # The support-bot taxonomy; the user and session come from the request's routing context.
        turnout.track(
            "session.message",
            properties={
                "variant": final.variant,
                "engine": final.engine,
                "intent": result["intent"],
                "escalated": result["escalated"],
                "response_time_ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )
        if result["escalated"]:
            turnout.track(
                "session.escalate", properties={"intent": result["intent"], "variant": final.variant}
            )
        if result.get("resolved"):
            turnout.track(
                "session.resolved", properties={"intent": result["intent"], "variant": final.variant}
            )
        if "cost_usd" in result:
            turnout.record("cost_usd", result["cost_usd"])  # per request, for the variant that served it
        return ChatOut(
            variant=final.variant,
            engine=final.engine,
            reason=final.reason.value,
            reply=result["reply"],
            intent=result["intent"],
            escalated=result["escalated"],
        )

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"engines": sorted(turnout.engines), "flags": sorted(turnout.config.flags)}

    return app


def __getattr__(name: str) -> Any:
    # `uvicorn examples.chat_coordinators.app:app` builds the app on first use, not at import.
    if name == "app":
        return create_app()
    raise AttributeError(name)
