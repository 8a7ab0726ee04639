"""Rollouts steered over HTTP, and the read endpoints: engines, metrics, experiments, audit."""

from __future__ import annotations

from pathlib import Path

import httpx

from admin.conftest import READ, WRITE, admin_config, bearer
from turnout import Reason, RoutingContext, Turnout
from turnout.admin import admin_app


def _guarded(state_url: str, tmp_path: Path) -> Turnout:
    config = admin_config(state_url, tmp_path)
    canary = config["flags"]["coordinator"]["rules"][1]
    canary["guardrails"] = {"max_error_rate": 0.2}
    canary["rollout"] = {"steps": [10, 50, 100], "every": "1d", "start": "2026-01-01T00:00:00Z"}
    return Turnout(config, env={})


async def test_rollouts_are_steered_and_audited(state_url: str, tmp_path: Path) -> None:
    turnout = _guarded(state_url, tmp_path)
    app = admin_app(turnout, env={})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as http:
        listed = (await http.get("/rollouts", headers=bearer(READ))).json()["rollouts"]
        assert [(r["flag"], r["rule"], r["state"]) for r in listed] == [("coordinator", "canary", "running")]
        aborted = await http.post(
            "/rollouts/coordinator/abort", json={"reason": "errors"}, headers=bearer(WRITE)
        )
        assert aborted.json()["state"] == "rolled_back"
        decision = turnout.decide("coordinator", RoutingContext("u1"))
        assert (decision.variant, decision.reason) == ("legacy", Reason.DEFAULT)
        status = (await http.get("/rollouts/coordinator", headers=bearer(READ))).json()
        assert status["history"][-1]["action"] == "abort"
        flag = (await http.get("/flags/coordinator", headers=bearer(READ))).json()
        assert flag["rules"][1]["rollout_status"]["state"] == "rolled_back"
        assert (await http.post("/rollouts/coordinator/resume", headers=bearer(READ))).status_code == 403
        assert (await http.post("/rollouts/coordinator/nope", headers=bearer(WRITE))).status_code == 404
        assert (await http.post("/rollouts/missing/pause", headers=bearer(WRITE))).status_code == 404
        entries = (await http.get("/audit", headers=bearer(READ))).json()["entries"]
        assert (entries[0]["namespace"], entries[0]["action"], entries[0]["reason"]) == (
            "rollout",
            "abort",
            "errors",
        )
        assert (await http.get("/audit?limit=0", headers=bearer(READ))).status_code == 422
    turnout.rollouts.close()


async def test_a_rule_without_guardrails_has_no_rollout_to_steer(client: httpx.AsyncClient) -> None:
    response = await client.post("/rollouts/coordinator/pause", json={}, headers=bearer(WRITE))
    assert response.status_code == 409
    assert "no rule with guardrails" in response.json()["error"]


async def test_engines_metrics_and_experiments(client: httpx.AsyncClient, turnout: Turnout) -> None:
    await turnout.run("coordinator", "hi", context=RoutingContext("u1"))
    engines = (await client.get("/engines", headers=bearer(READ))).json()["engines"]
    assert {e["name"]: (e["version"], e["breaker"]) for e in engines} == {
        "legacy": ("0", "closed"),
        "workflow": ("1.0", "closed"),
    }
    metrics = (await client.get("/metrics", headers=bearer(READ))).json()
    assert set(metrics) >= {"timestamp", "process", "components", "experiments"}
    variants = metrics["experiments"]["wf-canary"]["variants"]
    assert sum(v["exposures"] for v in variants.values()) == 1
    assert metrics["decisions"]["coordinator"] == {"SPLIT": {"total": 1, "window": 1}}
    experiments = (await client.get("/experiments", headers=bearer(READ))).json()["experiments"]
    assert [(e["name"], e["rule"]) for e in experiments] == [("wf-canary", "canary")]
    report = await client.get("/experiments/wf-canary/results", headers=bearer(READ))
    assert report.status_code == 200
    assert (report.json()["experiment"], report.json()["control"]) == ("wf-canary", "legacy")
    assert (await client.get("/experiments/nope/results", headers=bearer(READ))).status_code == 404
