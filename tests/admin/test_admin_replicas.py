"""Two processes sharing one state store: a change made through one is in force in the other
after one poll (SQLite file, and a real PostgreSQL server)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from admin.conftest import WRITE, admin_config, bearer
from turnout import Reason, RoutingContext, Turnout
from turnout.admin import admin_app


async def _kill_and_split_through_one_seen_by_the_other(state_url: str, tmp_path: Path) -> None:
    one = Turnout(admin_config(state_url, tmp_path), env={})
    other = Turnout(admin_config(state_url, tmp_path), env={})
    transport = httpx.ASGITransport(app=admin_app(one, env={}))
    async with httpx.AsyncClient(transport=transport, base_url="http://a") as http:
        response = await http.put(
            "/flags/coordinator/rules/canary/split",
            json={"split": {"legacy": 0, "workflow": 100}, "reason": "full rollout"},
            headers=bearer(WRITE),
        )
        assert response.status_code == 200
        assert other.config.flags["coordinator"].rules[1].split == {"legacy": 90, "workflow": 10}
        assert await other.overlays.poll()  # what the loop does every `poll_interval_s`
        assert other.config.flags["coordinator"].rules[1].split == {"legacy": 0, "workflow": 100}
        assert other.decide("coordinator", RoutingContext("u1")).variant == "workflow"
        assert not await other.overlays.poll()  # nothing new: no rebuild

        # A write based on what `other` saw before is refused by `one`'s store too.
        stale = await http.put(
            "/flags/coordinator/enabled",
            json={"enabled": False},
            headers={**bearer(WRITE), "If-Match": '"0"'},
        )
        assert stale.status_code == 412
        await http.put("/flags/coordinator/enabled", json={"enabled": False}, headers=bearer(WRITE))
    await other.overlays.poll()
    assert other.decide("coordinator", RoutingContext("u1")).reason is Reason.DISABLED
    # A process started later begins with the overlays in force.
    late = Turnout(admin_config(state_url, tmp_path), env={})
    assert not late.config.flags["coordinator"].enabled
    for turnout in (one, other, late):
        turnout.overlays.close()


async def test_replicas_on_one_sqlite_file(state_url: str, tmp_path: Path) -> None:
    await _kill_and_split_through_one_seen_by_the_other(state_url, tmp_path)


@pytest.mark.postgres
async def test_replicas_on_postgresql(pg_url: str, tmp_path: Path) -> None:
    await _kill_and_split_through_one_seen_by_the_other(pg_url, tmp_path)


async def test_the_poll_loop_applies_changes_while_started(state_url: str, tmp_path: Path) -> None:
    config = admin_config(state_url, tmp_path)
    config["admin"]["poll_interval_s"] = 0.02
    one, other = Turnout(config, env={}), Turnout(config, env={})
    await other.start()
    one.overlays.write("coordinator", {"enabled": False}, expect=None, actor="t", action="disable", reason="")

    async def applied() -> None:
        while other.config.flags["coordinator"].enabled:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(applied(), timeout=30)
    await other.stop()
    assert other.overlays._task is None
    one.overlays.close()
