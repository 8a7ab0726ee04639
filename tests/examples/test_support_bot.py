"""The support bot: events in, the monthly case study out, end to end."""

from __future__ import annotations

import asyncio
import io
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from turnout import Turnout
from turnout.cli.events import summary_main
from turnout.config import EventsConfig
from turnout.events import Event, SQLiteSink

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from examples.support_bot.app import create_app  # noqa: E402
from examples.support_bot.case_study import case_study  # noqa: E402

TODAY = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=1)


async def store(sink: SQLiteSink, events: list[Event]) -> None:
    await sink.write(events)
    await sink.close()


@pytest.fixture
def turnout(tmp_path: Path) -> Turnout:
    return Turnout(
        {"telemetry": {"exporters": []}, "events": {"sink": f"sqlite:///{tmp_path / 'events.db'}"}}
    )


async def test_case_study_follows_the_formulas(turnout: Turnout) -> None:
    app = create_app(turnout, cost_per_manual_session=10)
    month = datetime.now(UTC).strftime("%Y-%m")
    transport = httpx.ASGITransport(app=app)
    await turnout.start()
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:

            async def chat(session: str, message: str, **extra: Any) -> dict[str, Any]:
                payload = {"session_id": session, "message": message, **extra}
                response = await client.post("/api/chat", json=payload, headers={"X-User-Id": f"c-{session}"})
                assert response.status_code == 200
                return dict(response.json())

            for index in range(20):  # 20 sessions, two messages each
                await chat(f"s{index}", "hello", order_number=f"A{index}")  # orders ending in 0 fail: 2 of 20
                await chat(f"s{index}", "where is it?", tracking_number=f"T{index + 1}")  # 2 of 20 fail
            for index in range(3):  # 3 sessions escalate (one twice: still one session)
                assert (await chat(f"s{index}", "I want a human agent"))["escalated"] is True
            assert (await chat("s0", "转人工"))["escalated"] is True
            for first_ms in (20_000, 40_000):  # s1 taken over twice: still one session handled
                assert (
                    await client.post(f"/api/agent/sessions/s1/takeover?first_response_ms={first_ms}")
                ).is_success
            assert (await client.post("/api/agent/sessions/s2/takeover?first_response_ms=0")).is_success
            assert (await client.post("/api/agent/sessions/s2/transfer?to_agent=a2")).is_success
            for session, seconds in (("s1", 300), ("s2", 660)):
                path = f"/api/agent/sessions/{session}/release?handle_seconds={seconds}"
                assert (await client.post(path)).is_success
            for hours, sla in ((2, 24), (30, 24), (4, 24)):
                ticket = (await client.post("/api/tickets", json={"subject": "broken"})).json()["ticket_id"]
                await client.post(
                    f"/api/tickets/{ticket}/close", json={"resolution_hours": hours, "sla_hours": sla}
                )

            document = (await client.get("/api/analytics/case-study", params={"month": month})).json()
            bad = await client.get("/api/analytics/case-study", params={"month": "2026-13"})
    finally:
        await turnout.stop()

    assert bad.status_code == 422
    metrics = document["metrics"]
    assert metrics["total_sessions"] == 20
    assert metrics["escalated_sessions"] == 3
    assert metrics["ai_resolved_sessions"] == 17
    assert metrics["ai_resolution_rate"] == 85.0  # 17 / 20 × 100
    assert metrics["escalation_rate"] == 15.0
    assert metrics["estimated_cost_saved"] == 170  # 17 × ¥10
    assert metrics["order_query_success_rate"] == 90.0  # A0, A10 fail
    assert metrics["tracking_query_success_rate"] == 90.0  # T10, T20 fail
    assert metrics["sessions_handled"] == 2 and metrics["avg_first_response_ms"] == 20_000
    assert metrics["avg_handle_time_s"] == 480.0  # (300 + 660) / 2
    assert metrics["transfer_rate"] == 50.0  # s2 of s1, s2
    assert metrics["ticket_resolution_rate"] == 100.0
    assert (metrics["tickets_created"], metrics["tickets_closed"]) == (3, 3)
    assert metrics["avg_resolution_hours"] == 12.0
    assert metrics["sla_met_rate"] == pytest.approx(66.7)
    assert metrics["avg_response_time_ms"] is not None and metrics["avg_response_time_ms"] >= 0
    assert document["agent_workbench"]["avg_handle_time"] == "8分钟"
    bot = document["ai_chatbot"]
    assert bot["ai_resolution_rate"] == "85.0%" and bot["cost_saved"] == "¥170"
    assert document["period"].endswith("月") and "20 位客户" in document["story"]


async def test_an_empty_month_is_all_zeros_not_an_error(turnout: Turnout) -> None:
    app = create_app(turnout)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        document = (await client.get("/api/analytics/case-study", params={"month": "2020-01"})).json()
    assert document["metrics"]["total_sessions"] == 0
    assert document["metrics"]["ai_resolution_rate"] is None
    assert document["ai_chatbot"]["ai_resolution_rate"] == "—"


def test_summary_and_case_study_count_distinct_sessions_the_same_way(tmp_path: Path) -> None:
    # Four sessions, one of them escalated twice: 1 of 4 escalated, 3 of 4 resolved by the AI.
    events = []
    for n in range(4):
        events.append(
            Event("session.start", f"u{n}", {}, TODAY - timedelta(minutes=10 - n), session_id=f"s{n}")
        )
    for minute in (1, 2):
        events.append(Event("session.escalate", "u0", {}, TODAY - timedelta(minutes=minute), session_id="s0"))
    events.append(Event("agent.session_takeover", "a1", {"first_response_ms": 3000}, TODAY, session_id="s0"))
    events.append(
        Event("agent.session_release", "a1", {"handle_duration_seconds": 480}, TODAY, session_id="s0")
    )
    events.append(Event("ticket.created", "u0", {}, TODAY))
    events.append(Event("ticket.created", "u1", {}, TODAY))
    events.append(Event("ticket.closed", "u0", {"resolution_hours": 4, "sla_met": True}, TODAY))
    asyncio.run(store(SQLiteSink(tmp_path / "events.db"), events))

    screen = Console(file=io.StringIO(), width=160)
    assert summary_main(f"sqlite:///{tmp_path}/events.db", None, console=screen) == 0
    text = screen.file.getvalue()  # type: ignore[attr-defined]
    assert "Escalation rate" in text and "25.0%" in text and "(1 / 4)" in text
    assert "AI resolution rate" in text and "75.0%" in text and "(3 / 4)" in text
    assert "Avg handle time" in text and "480.0 s" in text
    assert "Ticket resolution rate" in text and "50.0%" in text

    study = case_study(EventsConfig(sink=f"sqlite:///{tmp_path}/events.db"), f"{TODAY:%Y-%m}")
    assert study["metrics"]["escalation_rate"] == 25.0
    assert study["metrics"]["ai_resolution_rate"] == 75.0
    assert study["metrics"]["avg_handle_time_s"] == 480.0
    assert study["metrics"]["ticket_resolution_rate"] == 50.0
