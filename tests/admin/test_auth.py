"""Tokens and roles: 401 without a valid token, 403 for a role too low, loopback-only without tokens."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from structlog.testing import capture_logs

from admin.conftest import ADMIN, READ, WRITE, admin_config, bearer
from turnout import ConfigError, Turnout, TurnoutError
from turnout.admin import admin_app, token_digest


async def test_whoami_names_the_role_of_each_token(client: httpx.AsyncClient) -> None:
    for token, role in ((READ, "read"), (WRITE, "write"), (ADMIN, "admin")):
        response = await client.get("/whoami", headers=bearer(token))
        assert response.status_code == 200
        assert response.json() == {"role": role, "name": f"token:{token_digest(token)[:8]}"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}, {"Authorization": "Bearer nope"}],
)
async def test_a_missing_or_unknown_token_is_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/flags", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "token" in response.json()["error"]


async def test_a_role_too_low_is_403_and_changes_nothing(client: httpx.AsyncClient, turnout: Turnout) -> None:
    response = await client.put("/flags/coordinator/enabled", json={"enabled": False}, headers=bearer(READ))
    assert response.status_code == 403
    assert response.json() == {"error": "role 'read' cannot do this; it needs 'write'"}
    assert turnout.config.flags["coordinator"].enabled
    cleanup = await client.post("/engines/cleanup", json={}, headers=bearer(WRITE))
    assert cleanup.status_code == 403


async def test_the_environment_token_has_role_admin(turnout: Turnout) -> None:
    app = admin_app(turnout, env={"TURNOUT_ADMIN_TOKEN": "from-the-env"}, tokens={})
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as http:
        response = await http.get("/whoami", headers=bearer("from-the-env"))
    assert response.json()["role"] == "admin"


def test_no_token_configured_refuses_to_start(state_url: str, tmp_path: Path) -> None:
    config = admin_config(state_url, tmp_path)
    config["admin"] = {}
    turnout = Turnout(config, env={})
    with pytest.raises(TurnoutError, match="insecure_local_only"):
        admin_app(turnout, env={})


async def test_insecure_local_only_serves_loopback_clients_alone(state_url: str, tmp_path: Path) -> None:
    config = admin_config(state_url, tmp_path)
    config["admin"] = {"insecure_local_only": True}
    app = admin_app(Turnout(config, env={}), env={})
    local = httpx.ASGITransport(app=app, client=("127.0.0.1", 5000))
    async with httpx.AsyncClient(transport=local, base_url="http://a") as http:
        assert (await http.get("/whoami")).json() == {"role": "admin", "name": "local"}
    remote = httpx.ASGITransport(app=app, client=("10.1.2.3", 5000))
    async with httpx.AsyncClient(transport=remote, base_url="http://a") as http:
        response = await http.get("/whoami")
    assert response.status_code == 403
    assert "loopback" in response.json()["error"]


def test_a_token_key_that_is_not_a_digest_is_a_config_error(state_url: str, tmp_path: Path) -> None:
    config = admin_config(state_url, tmp_path)
    config["admin"] = {"tokens": {"plain-secret-token": "admin"}}
    with pytest.raises(ConfigError) as caught:
        Turnout(config, env={})
    assert caught.value.issues[0].path == "admin.tokens"
    assert "plain-secret-token" not in str(caught.value)


async def test_tokens_never_reach_the_logs(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        await client.get("/flags", headers=bearer("a-wrong-secret"))
        await client.put(
            "/flags/coordinator/enabled", json={"enabled": False, "reason": "x"}, headers=bearer(WRITE)
        )
    text = caplog.text + repr(logs)
    assert any(entry["event"] == "turnout.admin_unauthorized" for entry in logs)
    for secret in ("a-wrong-secret", WRITE, token_digest(WRITE)):
        assert secret not in text
