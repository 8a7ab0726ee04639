"""A support bot: AI chat and agent-workbench events, and the monthly case-study API.

The events go through `turnout.track()` (never blocking a request) into the configured sink
(SQLite by default, PostgreSQL with `TURNOUT_EVENTS__SINK=postgresql://...`); the case study
is computed from turnout's aggregates with the usual formulas.

Run it:  uvicorn examples.support_bot.app:app --port 8001
"""

from __future__ import annotations

import os
import time
from typing import Any

from fastapi import FastAPI, Query
from pydantic import BaseModel, Field

from examples.support_bot.case_study import case_study
from turnout import Turnout, current_context
from turnout.asgi import TurnoutMiddleware

ESCALATE_WORDS = ("human", "agent", "complaint", "人工", "投诉")


class ChatIn(BaseModel):
    session_id: str = Field(min_length=1, max_length=64)
    message: str = Field(min_length=1, max_length=4000)
    order_number: str | None = None
    tracking_number: str | None = None


class TicketIn(BaseModel):
    session_id: str | None = None
    subject: str = Field(min_length=1, max_length=200)


class CloseIn(BaseModel):
    resolution_hours: float = Field(ge=0)
    sla_hours: float = Field(default=24, gt=0)


def create_app(turnout: Turnout | None = None, *, cost_per_manual_session: float = 10.0) -> FastAPI:
    """The support-bot app; `turnout` decides where its events go."""
    turnout = turnout or Turnout({"telemetry": {"exporters": []}}, env=os.environ)
    app = FastAPI(title="support bot", lifespan=turnout.lifespan)
    app.add_middleware(TurnoutMiddleware, turnout=turnout)
    sessions: set[str] = set()
    tickets: dict[int, dict[str, Any]] = {}

    @app.post("/api/chat")
    async def chat(body: ChatIn) -> dict[str, Any]:
        started = time.perf_counter()
        context = current_context()
        if context is not None:
            context.session_id = body.session_id  # events of this request belong to the chat session
        if body.session_id not in sessions:
            sessions.add(body.session_id)
            turnout.track("session.start", properties={"channel": "api"})
        if body.order_number is not None:
            found = not body.order_number.endswith("0")  # the fake shop knows most orders
            turnout.track("query.order", properties={"order_number": body.order_number, "success": found})
        if body.tracking_number is not None:
            found = not body.tracking_number.endswith("0")
            turnout.track(
                "query.tracking", properties={"tracking_number": body.tracking_number, "success": found}
            )
        escalate = any(word in body.message.casefold() for word in ESCALATE_WORDS)
        reply = (
            "Connecting you to a colleague." if escalate else f"Thanks! About '{body.message[:40]}': done."
        )
        turnout.track(
            "session.message",
            properties={
                "role": "ai",
                "message_length": len(reply),
                "response_time_ms": round((time.perf_counter() - started) * 1000, 3),
            },
        )
        if escalate:
            turnout.track("session.escalate", properties={"reason": "user_request", "severity": "normal"})
        return {"reply": reply, "escalated": escalate}

    @app.post("/api/agent/sessions/{session_id}/takeover")
    async def takeover(session_id: str, first_response_ms: float = Query(ge=0)) -> dict[str, str]:
        turnout.track(
            "agent.session_takeover",
            properties={"session_id": session_id, "first_response_ms": first_response_ms},
        )
        return {"session_id": session_id, "status": "taken over"}

    @app.post("/api/agent/sessions/{session_id}/release")
    async def release(session_id: str, handle_seconds: float = Query(ge=0)) -> dict[str, str]:
        turnout.track(
            "agent.session_release",
            properties={"session_id": session_id, "handle_duration_seconds": handle_seconds},
        )
        return {"session_id": session_id, "status": "released"}

    @app.post("/api/agent/sessions/{session_id}/transfer")
    async def transfer(session_id: str, to_agent: str = Query(min_length=1)) -> dict[str, str]:
        turnout.track(
            "agent.session_transfer", properties={"session_id": session_id, "target_agent_id": to_agent}
        )
        return {"session_id": session_id, "status": "transferred"}

    @app.post("/api/tickets")
    async def create_ticket(body: TicketIn) -> dict[str, int]:
        ticket_id = len(tickets) + 1
        tickets[ticket_id] = {"subject": body.subject}
        turnout.track("ticket.created", properties={"ticket_id": ticket_id, "session_id": body.session_id})
        return {"ticket_id": ticket_id}

    @app.post("/api/tickets/{ticket_id}/close")
    async def close_ticket(ticket_id: int, body: CloseIn) -> dict[str, Any]:
        sla_met = body.resolution_hours <= body.sla_hours
        turnout.track(
            "ticket.closed",
            properties={
                "ticket_id": ticket_id,
                "resolution_hours": body.resolution_hours,
                "sla_met": sla_met,
            },
        )
        return {"ticket_id": ticket_id, "sla_met": sla_met}

    @app.get("/api/analytics/case-study")
    async def case_study_endpoint(month: str = Query(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")) -> dict[str, Any]:
        await turnout.events.aflush()  # what was tracked a moment ago counts too
        return case_study(turnout.config.events, month, cost_per_manual_session=cost_per_manual_session)

    return app


def __getattr__(name: str) -> Any:
    if name == "app":  # `uvicorn examples.support_bot.app:app`
        return create_app()
    raise AttributeError(name)
