"""The shadow comparison over HTTP: the same report as `turnout shadow report`, from live figures."""

from __future__ import annotations

import hashlib

import httpx

from turnout import RoutingContext, Turnout
from turnout.admin import admin_app

TOKEN = "reader-token"


def _shadowed() -> Turnout:
    config = {
        "flags": {
            "coordinator": {
                "variants": ["legacy", "graph"],
                "default": "legacy",
                "shadow": {"engine": "graph", "sample": 1.0, "comparator": "exact"},
            },
            "plain": {"variants": ["legacy"], "default": "legacy"},
        },
        "events": {"enabled": False},
        "admin": {"tokens": {hashlib.sha256(TOKEN.encode()).hexdigest(): "read"}},
    }
    turnout = Turnout(config, env={})
    turnout.add_engine("legacy", lambda message: message.upper())
    turnout.add_engine("graph", lambda message: message.upper() if message != "b" else "other")
    return turnout


async def test_shadowed_flags_report_their_match_rate_per_intent() -> None:
    turnout = _shadowed()
    for index, message in enumerate(["a", "b", "c", "d"]):
        await turnout.run("coordinator", message, context=RoutingContext(f"u{index}"))
    assert await turnout.shadows.drain(30)
    app = admin_app(turnout, env={})
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as http:
        listed = (await http.get("/shadows", headers=headers)).json()["shadows"]
        assert [report["flag"] for report in listed] == ["coordinator"]  # `plain` shadows nothing
        report = (await http.get("/shadows/coordinator", headers=headers)).json()
        (total,) = report["totals"]
        assert (total["served"], total["shadow"]) == ("legacy", "graph")
        assert (total["compared"], total["matches"]) == (4, 3)
        assert len(report["worst_mismatches"]) == 1
        assert (await http.get("/shadows/missing", headers=headers)).status_code == 404
        assert (await http.get("/shadows/coordinator")).status_code == 401
