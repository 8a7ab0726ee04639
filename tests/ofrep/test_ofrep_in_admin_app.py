"""OFREP served by the admin app (`app.mount("/admin", turnout.admin_app())`), with the admin's tokens."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from turnout import RoutingContext, Turnout

READ = "a-read-token"
OFREP_ONLY = "a-token-for-the-go-service"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@pytest.fixture
def openfeature_api() -> Iterator[Any]:
    from openfeature import api

    yield api
    api.shutdown()
    api.clear_providers()


def _app(turnout: Turnout) -> Starlette:
    return Starlette(routes=[Mount("/admin", app=turnout.admin_app(tokens={_digest(READ): "read"}))])


def test_the_python_sdk_evaluates_through_the_admin_app_with_an_admin_token(
    serve: Any, config: dict[str, Any], users: list[str], openfeature_api: Any
) -> None:
    from openfeature.contrib.provider.ofrep import OFREPProvider
    from openfeature.evaluation_context import EvaluationContext
    from openfeature.flag_evaluation import Reason

    turnout = Turnout(config, env={})
    with serve(_app(turnout)) as server:
        headers = {"Authorization": f"Bearer {READ}"}
        openfeature_api.set_provider(OFREPProvider(f"{server.url}/admin", headers_factory=lambda: headers))
        client = openfeature_api.get_client()
        for user in users[:50]:
            theme = client.get_string_details("theme", "none", EvaluationContext(user))
            assert theme.variant == turnout.decide("theme", RoutingContext(user)).variant
            assert theme.reason == Reason.SPLIT


async def test_admin_tokens_and_ofrep_tokens_both_admit_and_nothing_else_does(config: dict[str, Any]) -> None:
    config["ofrep"] = {"tokens": {_digest(OFREP_ONLY): "go-service"}}
    turnout = Turnout(config, env={})
    transport = httpx.ASGITransport(_app(turnout), client=("203.0.113.9", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        url = "/admin/ofrep/v1/evaluate/flags/theme"
        body = {"context": {"targetingKey": "user-1"}}
        for token in (READ, OFREP_ONLY):
            answer = await http.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200 and answer.json()["key"] == "theme"
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            answer = await http.post(url, json=body, headers=headers)
            assert answer.status_code == 401
        # The admin API's own paths keep their 405 for a method they lack.
        assert (
            await http.delete("/admin/flags", headers={"Authorization": f"Bearer {READ}"})
        ).status_code == 405


async def test_without_any_token_only_loopback_clients_evaluate(config: dict[str, Any]) -> None:
    turnout = Turnout({**config, "admin": {"insecure_local_only": True}}, env={})
    app = Starlette(routes=[Mount("/admin", app=turnout.admin_app())])
    body = {"context": {"targetingKey": "user-1"}}
    for client, status in ((("127.0.0.1", 4000), 200), (("203.0.113.9", 4000), 401)):
        transport = httpx.ASGITransport(app, client=client)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            answer = await http.post("/admin/ofrep/v1/evaluate/flags/theme", json=body)
        assert answer.status_code == status
