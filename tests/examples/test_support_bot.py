"""The support bot: events in, the monthly case study out, end to end."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from turnout import Turnout

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from examples.support_bot.app import create_app  # noqa: E402


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
            for first_ms in (20_000, 40_000):
                assert (
                    await client.post(f"/api/agent/sessions/s1/takeover?first_response_ms={first_ms}")
                ).is_success
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
    assert metrics["sessions_handled"] == 2 and metrics["avg_first_response_ms"] == 30_000
    assert (metrics["tickets_created"], metrics["tickets_closed"]) == (3, 3)
    assert metrics["avg_resolution_hours"] == 12.0
    assert metrics["sla_met_rate"] == pytest.approx(66.7)
    assert metrics["avg_response_time_ms"] is not None and metrics["avg_response_time_ms"] >= 0
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
