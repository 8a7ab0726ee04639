"""The chat-coordinator example: three engines behind one FastAPI route, offline."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from turnout import Turnout
from turnout.testing import MemorySink

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from examples.chat_coordinators import app as example  # noqa: E402

FAST = {f"FAKE_LLM_{name}_MEDIAN_MS": "0.5" for name in ("LEGACY", "WORKFLOW", "LANGGRAPH")}


def make(monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[Turnout, MemorySink, Any]:
    for name, value in {**FAST, **env}.items():
        monkeypatch.setenv(name, value)
    sink = MemorySink()
    turnout = example.create_turnout(env={}, event_sinks=[sink])
    return turnout, sink, example.create_app(turnout)


async def chat(app: Any, user: str, plan: str, message: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        headers = {"X-User-Id": user, "X-Plan": plan}
        return await client.post("/chat", json={"message": message}, headers=headers)


async def test_enterprise_users_get_the_graph(monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, app = make(monkeypatch)
    response = await chat(app, "ent-1", "enterprise", "Where is my order?")
    assert response.status_code == 200
    body = response.json()
    assert (body["variant"], body["engine"], body["reason"]) == ("langgraph", "langgraph", "TARGETING_MATCH")
    assert body["reply"].startswith("[langgraph]")
    assert response.headers["x-turnout-variant"] == "coordinator=langgraph"


async def test_the_graph_escalates_requests_for_a_human(monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, app = make(monkeypatch)
    body = (await chat(app, "ent-2", "enterprise", "I want to talk to a human agent")).json()
    assert body["escalated"] is True and body["intent"] == "human_agent"


async def test_premium_escalations_are_routed_by_intent(monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, app = make(monkeypatch)
    body = (await chat(app, "p-1", "premium", "请帮我转人工客服")).json()
    assert body["variant"] == "langgraph" and body["escalated"] is True


async def test_free_users_see_the_workflow_canary(monkeypatch: pytest.MonkeyPatch) -> None:
    _, _sink, app = make(monkeypatch)
    seen: Counter[str] = Counter()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for index in range(300):
            headers = {"X-User-Id": f"free-{index}", "X-Plan": "free"}
            response = await client.post("/chat", json={"message": "Hi there"}, headers=headers)
            if response.status_code == 200:
                seen[response.json()["variant"]] += 1
    assert set(seen) == {"legacy", "workflow"}
    assert 10 <= seen["workflow"] <= 60  # 10% of 300, with room for chance


async def test_a_failing_workflow_falls_back_to_legacy(monkeypatch: pytest.MonkeyPatch) -> None:
    turnout, _, app = make(monkeypatch, FAKE_LLM_WORKFLOW_ERROR_RATE="1", FAKE_LLM_LEGACY_ERROR_RATE="0")
    transport = httpx.ASGITransport(app=app)
    reasons: Counter[str] = Counter()
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for index in range(200):
            headers = {"X-User-Id": f"u-{index}", "X-Plan": "free"}
            body = (await client.post("/chat", json={"message": "where is my order"}, headers=headers)).json()
            reasons[body["reason"]] += 1
            if body["reason"] == "FALLBACK":
                assert (body["variant"], body["engine"]) == ("workflow", "legacy")
    assert reasons["FALLBACK"] > 0
    assert turnout.failures.count("engine.workflow") == reasons["FALLBACK"]


async def test_when_every_engine_fails_the_user_gets_a_polite_503(monkeypatch: pytest.MonkeyPatch) -> None:
    failing = {f"FAKE_LLM_{name}_ERROR_RATE": "1" for name in ("LEGACY", "WORKFLOW", "LANGGRAPH")}
    _, _, app = make(monkeypatch, **failing)
    for user in ("a", "b", "c"):
        response = await chat(app, user, "free", "Where is my order?")
        assert response.status_code == 503
        assert "unavailable" in response.json()["error"]


async def test_bad_input_is_a_422_and_metrics_are_served(monkeypatch: pytest.MonkeyPatch) -> None:
    _, _, app = make(monkeypatch)
    assert (await chat(app, "u", "free", "")).status_code == 422
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        await client.post("/chat", json={"message": "hello"}, headers={"X-User-Id": "m"})
        metrics = await client.get("/metrics")
    assert metrics.status_code == 200  # served at /metrics itself, no 307 to /metrics/
    assert 'turnout_requests_total{component="decide"}' in metrics.text
    assert "engine" not in (await _openapi_params(app))


async def test_the_graph_answers_in_the_shadow_of_the_served_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    turnout, _, app = make(monkeypatch)
    for index in range(60):
        response = await chat(app, f"free-{index}", "free", "Where is my package?")
        assert response.json()["variant"] in {"legacy", "workflow"}  # never the shadow
    assert await turnout.shadows.drain(30)
    shadows = turnout.telemetry.live()["shadows"]["coordinator"]
    compared = sum(
        stats["compared"] + stats["timeouts"] + sum(stats["errors"].values())
        for pair in shadows.values()
        for stats in pair["intents"].values()
    )
    assert 0 < compared < 60  # a sticky fifth of the users
    assert {pair["shadow"] for pair in shadows.values()} == {"langgraph"}


async def _openapi_params(app: Any) -> list[str]:
    operation = app.openapi()["paths"]["/chat"]["post"]
    return [p["name"] for p in operation.get("parameters", [])]


async def test_events_follow_the_support_bot_taxonomy(monkeypatch: pytest.MonkeyPatch) -> None:
    turnout, sink, app = make(monkeypatch)
    await turnout.start()
    await chat(app, "ev-1", "enterprise", "I need a human, this is unacceptable")
    await chat(app, "ev-2", "free", "Where is my package?")
    await turnout.stop()
    names = Counter(sink.names())
    assert names["session.message"] == 2
    assert names["session.escalate"] == 1
    message = next(e for e in sink.events if e.name == "session.message")
    assert message.distinct_id == "ev-1" and "response_time_ms" in message.properties


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_it_runs_under_uvicorn(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, **FAST, "TURNOUT_EVENTS__SINK": "memory://", "TURNOUT_TELEMETRY__EXPORTERS": "[]"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "examples.chat_coordinators.app:app", "--port", str(port),
         "--app-dir", str(ROOT), "--log-level", "warning"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if server.poll() is not None or time.monotonic() > deadline:
                    output = server.stdout.read().decode() if server.stdout else ""
                    raise AssertionError(f"uvicorn did not start:\n{output}") from None
                time.sleep(0.2)
        assert health.json()["engines"] == ["langgraph", "legacy", "workflow"]
        reply = httpx.post(
            f"http://127.0.0.1:{port}/chat", json={"message": "hello"},
            headers={"X-User-Id": "live", "X-Plan": "enterprise"}, timeout=10,
        )  # fmt: skip
        assert reply.status_code == 200 and reply.json()["variant"] == "langgraph"
    finally:
        server.terminate()
        server.wait(timeout=20)
        if server.stdout is not None:
            server.stdout.close()
