"""The engine registry: stages and transitions, tags, rollback, cleanup, and `engine@stable` variants."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from admin.conftest import ADMIN, WRITE, admin_config, bearer
from turnout import RoutingContext, Turnout
from turnout.admin import admin_app
from turnout.registry import Registry, RegistryError, UnknownVersionError
from turnout.state import open_store


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def state_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def registry(tmp_path: Path) -> Any:
    store = open_store(f"sqlite:///{tmp_path / 'state.db'}")
    clock = Clock()
    yield Registry(lambda: store, clock=clock), clock
    store.close()


def test_register_then_promote_stage_by_stage(registry: Any) -> None:
    reg, _ = registry
    first = reg.register("workflow", "1.0", description="linear steps", params={"k": 3}, metrics={"f1": 0.91})
    assert (first.stage, first.tags) == ("registered", ("latest",))
    assert [reg.promote("workflow", "1.0").stage for _ in range(4)] == [
        "validated",
        "canary",
        "stable",
        "deployed",
    ]
    found = reg.get("workflow", "1.0")
    assert (found.params, found.metrics, found.tags) == ({"k": 3}, {"f1": 0.91}, ("latest", "stable"))
    with pytest.raises(RegistryError, match="already has version"):
        reg.register("workflow", "1.0")
    with pytest.raises(UnknownVersionError):
        reg.promote("workflow", "9.9")


def test_transitions_not_allowed_are_refused(registry: Any) -> None:
    reg, _ = registry
    reg.register("workflow", "1.0")
    with pytest.raises(RegistryError, match="registered cannot move to stable"):
        reg.promote("workflow", "1.0", "stable")
    reg.promote("workflow", "1.0", "archived")
    with pytest.raises(RegistryError, match="no next stage"):
        reg.promote("workflow", "1.0")


def test_rollback_goes_to_the_previous_stable_version(registry: Any) -> None:
    reg, _ = registry
    for version in ("1.0", "2.0"):
        reg.register("workflow", version)
        reg.promote("workflow", version, "validated")
        reg.promote("workflow", version, "stable")
    assert reg.resolve("workflow", "stable").version == "2.0"
    back = reg.rollback("workflow", reason="2.0 answers badly")
    assert (back.version, back.stage) == ("1.0", "stable")
    assert reg.get("workflow", "2.0").stage == "archived"
    assert reg.resolve("workflow", "stable").version == "1.0"
    with pytest.raises(RegistryError, match="no previous stable"):
        reg.rollback("workflow")


def test_cleanup_deletes_archived_versions_older_than_n(registry: Any) -> None:
    reg, clock = registry
    for version in ("1.0", "2.0", "3.0"):
        reg.register("workflow", version)
    reg.promote("workflow", "1.0", "archived")
    clock.now += 10 * 86400
    reg.promote("workflow", "2.0", "archived")
    removed = reg.cleanup(7 * 86400)
    assert [v.version for v in removed] == ["1.0"]
    assert [v.version for v in reg.versions("workflow")] == ["2.0", "3.0"]
    assert reg.cleanup(7 * 86400) == []


def _tagged_config(state_url: str, tmp_path: Path) -> dict[str, Any]:
    config = admin_config(state_url, tmp_path)
    flag = config["flags"]["coordinator"]
    flag["variants"] = ["legacy", "workflow@stable"]
    flag["rules"] = [{"name": "all", "serve": "workflow@stable"}]
    return config


async def test_a_variant_follows_the_stable_tag(state_url: str, tmp_path: Path) -> None:
    turnout = Turnout(_tagged_config(state_url, tmp_path), env={})
    ctx = RoutingContext("u1")
    # No stable version yet: served by the flag default, and the request still succeeds.
    assert await turnout.run("coordinator", "hi", context=RoutingContext("u0")) == "legacy:hi"
    reg = turnout.registry
    reg.register("workflow", "1.0")
    reg.promote("workflow", "1.0", "validated")
    reg.promote("workflow", "1.0", "stable")
    assert await turnout.run("coordinator", "hi", context=ctx) == "workflow:hi"
    reg.register("workflow", "2.0", target="admin.conftest:workflow_v2")
    reg.promote("workflow", "2.0", "validated")
    reg.promote("workflow", "2.0", "stable")
    assert turnout.engines["workflow@stable"].version == "2.0"
    assert await turnout.run("coordinator", "hi", context=RoutingContext("u2")) == "workflow-v2:hi"
    reg.rollback("workflow")
    assert await turnout.run("coordinator", "hi", context=RoutingContext("u3")) == "workflow:hi"
    other = Turnout(_tagged_config(state_url, tmp_path), env={})  # another replica starts on 1.0
    assert other.engines["workflow@stable"].version == "1.0"
    turnout.overlays.close()


async def test_the_registry_over_http(state_url: str, tmp_path: Path) -> None:
    turnout = Turnout(admin_config(state_url, tmp_path), env={})
    app = admin_app(turnout, env={})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as http:
        body = {"engine": "workflow", "version": "2.0", "description": "v2", "metrics": {"f1": 0.93}}
        created = await http.post("/engines/register", json=body, headers=bearer(WRITE))
        assert created.status_code == 201
        again = await http.post("/engines/register", json=body, headers=bearer(WRITE))
        assert again.status_code == 409
        bad_target = {**body, "version": "3", "target": "not a target"}
        bad = await http.post("/engines/register", json=bad_target, headers=bearer(WRITE))
        assert bad.status_code == 422
        promoted = await http.post(
            "/engines/workflow/versions/2.0/promote", json={"stage": "validated"}, headers=bearer(WRITE)
        )
        assert promoted.json()["stage"] == "validated"
        refused = await http.post(
            "/engines/workflow/versions/2.0/promote", json={"stage": "deployed"}, headers=bearer(WRITE)
        )
        assert refused.status_code == 409
        missing = await http.post("/engines/workflow/versions/7/promote", json={}, headers=bearer(WRITE))
        assert missing.status_code == 404
        engines = {
            e["name"]: e for e in (await http.get("/engines", headers=bearer(WRITE))).json()["engines"]
        }
        assert engines["workflow"]["version"] == "1.0"
        assert engines["workflow"]["breaker"] == "closed"
        assert engines["workflow"]["registry"]["tags"] == {"latest": "2.0"}
        versions = await http.get("/engines/workflow/versions", headers=bearer(WRITE))
        assert [v["version"] for v in versions.json()["versions"]] == ["2.0"]
        rollback = await http.post("/engines/workflow/rollback", json={}, headers=bearer(WRITE))
        assert rollback.status_code == 409
        cleanup = await http.post("/engines/cleanup", json={"older_than": "1d"}, headers=bearer(ADMIN))
        assert cleanup.json() == {"removed": []}
        bad_age = await http.post("/engines/cleanup", json={"older_than": "soon"}, headers=bearer(ADMIN))
        assert bad_age.json()["errors"][0]["path"] == "older_than"
    turnout.overlays.close()


async def test_a_version_whose_target_does_not_import_serves_the_default(
    state_url: str, tmp_path: Path
) -> None:
    turnout = Turnout(_tagged_config(state_url, tmp_path), env={})
    reg = turnout.registry
    reg.register("workflow", "9.0", target="no_such_module_here:engine")
    reg.promote("workflow", "9.0", "validated")
    reg.promote("workflow", "9.0", "stable")
    assert await turnout.run("coordinator", "hi", context=RoutingContext("u1")) == "legacy:hi"
    assert turnout.failures.snapshot()["registry"]
    turnout.overlays.close()
