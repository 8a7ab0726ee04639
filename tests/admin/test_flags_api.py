"""Flag writes through the admin API: validated like the file, conditional, audited, kept as overlays."""

from __future__ import annotations

from pathlib import Path

import httpx

from admin.conftest import WRITE, admin_config, bearer, token_digest
from turnout import Reason, RoutingContext, Turnout

SPLIT = "/flags/coordinator/rules/canary/split"


async def test_a_flag_shows_its_rules_reasons_and_version(client: httpx.AsyncClient) -> None:
    response = await client.get("/flags/coordinator", headers=bearer(WRITE))
    assert response.status_code == 200
    assert response.headers["etag"] == '"0"'
    flag = response.json()
    assert [(r["name"], r["reason"]) for r in flag["rules"]] == [
        ("premium", "TARGETING_MATCH"),
        ("canary", "SPLIT"),
    ]
    assert flag["rules"][1]["split"] == {"legacy": 90, "workflow": 10}
    listed = (await client.get("/flags", headers=bearer(WRITE))).json()["flags"]
    assert [f["key"] for f in listed] == ["coordinator"]
    assert (await client.get("/flags/nope", headers=bearer(WRITE))).status_code == 404


async def test_the_kill_switch_applies_at_once_and_is_audited(
    client: httpx.AsyncClient, turnout: Turnout
) -> None:
    response = await client.put(
        "/flags/coordinator/enabled", json={"enabled": False, "reason": "bad canary"}, headers=bearer(WRITE)
    )
    assert response.status_code == 200
    assert response.headers["etag"] == '"1"'
    decision = turnout.decide("coordinator", RoutingContext("u1", attributes={"plan": "premium"}))
    assert (decision.variant, decision.reason) == ("legacy", Reason.DISABLED)
    entry = (await client.get("/audit?limit=1", headers=bearer(WRITE))).json()["entries"][0]
    assert entry["actor"] == f"token:{token_digest(WRITE)[:8]}"
    assert (entry["action"], entry["reason"]) == ("disable", "bad canary")
    assert entry["before"].get("enabled", True) is True
    assert entry["after"]["enabled"] is False


async def test_a_split_that_does_not_validate_is_422_with_the_files_wording(
    client: httpx.AsyncClient, turnout: Turnout
) -> None:
    response = await client.put(SPLIT, json={"split": {"legacy": 50, "workflow": 40}}, headers=bearer(WRITE))
    assert response.status_code == 422
    assert response.json() == {
        "errors": [
            {
                "path": "flags.coordinator.rules[1].split",
                "value": {"legacy": 50.0, "workflow": 40.0},
                "message": "weights must sum to 100, they sum to 90",
            }
        ]
    }
    unknown = await client.put(SPLIT, json={"split": {"legacy": 50, "nope": 50}}, headers=bearer(WRITE))
    assert unknown.json()["errors"][0]["path"] == "flags.coordinator.rules[1].split.nope"
    assert turnout.config.flags["coordinator"].rules[1].split == {"legacy": 90, "workflow": 10}


async def test_bad_bodies_are_400_or_422(client: httpx.AsyncClient) -> None:
    headers = {**bearer(WRITE), "content-type": "application/json"}
    assert (await client.put(SPLIT, content=b"{nope", headers=headers)).status_code == 400
    listed = await client.put(SPLIT, content=b"[1]", headers=headers)
    assert listed.json()["errors"][0]["path"] == "<body>"
    enabled = await client.put("/flags/coordinator/enabled", json={"enabled": "no"}, headers=bearer(WRITE))
    assert enabled.json()["errors"][0] == {
        "path": "enabled",
        "value": "no",
        "message": "expected true or false",
    }
    reason = await client.put(SPLIT, json={"split": {"legacy": 100}, "reason": 3}, headers=bearer(WRITE))
    assert reason.json()["errors"][0]["path"] == "reason"


async def test_a_stale_if_match_is_412(client: httpx.AsyncClient) -> None:
    etag = (await client.get("/flags/coordinator", headers=bearer(WRITE))).headers["etag"]
    first = await client.put(
        SPLIT, json={"split": {"legacy": 75, "workflow": 25}}, headers={**bearer(WRITE), "If-Match": etag}
    )
    assert first.status_code == 200
    stale = await client.put(
        SPLIT, json={"split": {"legacy": 50, "workflow": 50}}, headers={**bearer(WRITE), "If-Match": etag}
    )
    assert stale.status_code == 412
    assert stale.headers["etag"] == first.headers["etag"] == '"1"'
    garbage = await client.put(
        SPLIT, json={"split": {"legacy": 50, "workflow": 50}}, headers={**bearer(WRITE), "If-Match": "abc"}
    )
    assert garbage.status_code == 412


async def test_rules_are_added_replaced_and_deleted(client: httpx.AsyncClient, turnout: Turnout) -> None:
    rule = {"when": {"country": "DE"}, "serve": "workflow", "reason": "German launch"}
    added = await client.put("/flags/coordinator/rules/germany", json=rule, headers=bearer(WRITE))
    assert added.status_code == 200
    assert [r.name for r in turnout.config.flags["coordinator"].rules] == ["premium", "canary", "germany"]
    replaced = await client.put(
        "/flags/coordinator/rules/germany",
        json={"when": {"country": "AT"}, "serve": "workflow"},
        headers=bearer(WRITE),
    )
    assert replaced.json()["rules"][2]["when"] == {"country": "AT"}
    bad = await client.put(
        "/flags/coordinator/rules/germany",
        json={"when": {"country": {"$nope": 1}}, "serve": "workflow"},
        headers=bearer(WRITE),
    )
    assert bad.status_code == 422
    assert bad.json()["errors"][0]["path"].startswith("flags.coordinator.rules[2].when")
    renamed = await client.put(
        "/flags/coordinator/rules/germany", json={"name": "other", "serve": "workflow"}, headers=bearer(WRITE)
    )
    assert renamed.json()["errors"][0]["path"] == "name"
    deleted = await client.request("DELETE", "/flags/coordinator/rules/canary", headers=bearer(WRITE))
    assert [r["name"] for r in deleted.json()["rules"]] == ["premium", "germany"]
    decision = turnout.decide("coordinator", RoutingContext("u1", attributes={"country": "AT"}))
    assert (decision.variant, decision.rule) == ("workflow", "germany")
    missing = await client.request("DELETE", "/flags/coordinator/rules/canary", headers=bearer(WRITE))
    assert missing.status_code == 404
    actions = [e["action"] for e in (await client.get("/audit", headers=bearer(WRITE))).json()["entries"]]
    assert actions == ["delete_rule", "replace_rule", "add_rule"]


async def test_dropping_the_overlay_brings_back_the_file(client: httpx.AsyncClient, turnout: Turnout) -> None:
    await client.put(SPLIT, json={"split": {"legacy": 0, "workflow": 100}}, headers=bearer(WRITE))
    assert turnout.config.flags["coordinator"].rules[1].split == {"legacy": 0, "workflow": 100}
    response = await client.request("DELETE", "/flags/coordinator/overlay", headers=bearer(WRITE))
    assert response.json()["overlay"] == {}
    assert turnout.config.flags["coordinator"].rules[1].split == {"legacy": 90, "workflow": 10}


async def test_a_reload_of_the_file_keeps_the_overlays(tmp_path: Path, state_url: str) -> None:
    import json

    path = tmp_path / "turnout.json"
    config = admin_config(state_url, tmp_path)
    path.write_text(json.dumps(config))
    turnout = Turnout.from_file(path, env={})
    turnout.overlays.write(
        "coordinator", {"enabled": False}, expect=None, actor="test", action="disable", reason=""
    )
    config["flags"]["coordinator"]["variants"].append("spare")
    path.write_text(json.dumps(config))
    turnout.reload()
    flag = turnout.config.flags["coordinator"]
    assert (flag.enabled, flag.variants[-1]) == (False, "spare")
    turnout.overlays.close()


async def test_an_overlay_that_no_longer_fits_the_file_is_ignored(tmp_path: Path, state_url: str) -> None:
    turnout = Turnout(admin_config(state_url, tmp_path), env={})
    turnout.overlays.write(
        "coordinator",
        {"rules": [{"name": "all", "serve": "workflow"}]},
        expect=None,
        actor="test",
        action="replace_rule",
        reason="",
    )
    turnout.overlays.close()
    config = admin_config(state_url, tmp_path)
    config["flags"]["coordinator"]["variants"] = ["legacy"]
    config["flags"]["coordinator"]["rules"] = []
    later = Turnout(config, env={})  # a new file without the variant the overlay serves
    assert later.config.flags["coordinator"].rules == []
    assert later.failures.snapshot()["overlays"]
