"""A spoofing client: identity, attributes and overrides from headers are trusted only as configured."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from turnout import RoutingContext, Turnout
from turnout.asgi import STATE_KEY, TurnoutMiddleware, sign_override
from turnout.testing import make_turnout

FLAG = "coordinator"


def make(http: dict[str, Any] | None = None, **flag: Any) -> Turnout:
    return make_turnout(
        {
            "http": {"attribute_headers": {"X-Plan": "plan"}, **(http or {})},
            "flags": {
                FLAG: {
                    "variants": ["legacy", "workflow", "langgraph"],
                    "default": "legacy",
                    "overrides": {"qa-1": "langgraph"},
                    "rules": [{"when": {"plan": "premium"}, "serve": "workflow"}],
                    **flag,
                }
            },
        }
    )


async def call(t: Turnout, headers: dict[str, str], *, user: str | None = None, query: str = "") -> Any:
    async def show(request: Request) -> JSONResponse:
        context: RoutingContext = request.scope["state"][STATE_KEY]
        if user is not None:
            context.set_user(user)  # what an app does with the id its auth dependency found
        decision = t.decide(FLAG, context)
        return JSONResponse(
            {"key": context.targeting_key, "variant": decision.variant, "reason": decision.reason}
        )

    app = Starlette(routes=[Route("/", show)])
    app.add_middleware(TurnoutMiddleware, turnout=t)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.get("/" + query, headers=headers)
    return response.json() | {"set-cookie": response.headers.get("set-cookie", "")}


async def test_untrusted_headers_ignore_the_user_and_attribute_headers() -> None:
    spoof = {"X-User-Id": "qa-1", "X-Plan": "premium"}
    trusted = await call(make(), spoof)
    untrusted = await call(make({"trusted_headers": False}), spoof)
    assert trusted["variant"] == "workflow"  # the attribute header was believed
    assert untrusted["key"] != "qa-1" and untrusted["variant"] == "legacy"


async def test_per_user_overrides_ignore_ids_that_came_from_a_header() -> None:
    t = make()
    assert (await call(t, {"X-User-Id": "qa-1"}))["reason"] == "DEFAULT"
    assert (await call(t, {"Cookie": "turnout_id=qa-1"}))["reason"] == "DEFAULT"
    by_app = await call(t, {"X-User-Id": "someone"}, user="qa-1")
    assert (by_app["variant"], by_app["reason"]) == ("langgraph", "OVERRIDE")
    assert t.decide(FLAG, RoutingContext("qa-1")).reason == "OVERRIDE"  # contexts built in code
    opted_in = make({"overrides_from_headers": True})
    assert (await call(opted_in, {"X-User-Id": "qa-1"}))["reason"] == "OVERRIDE"


async def test_an_unsigned_override_is_ignored_and_counted() -> None:
    t = make({"override_secret": "k3y"}, allow_overrides=True)
    unsigned = await call(t, {"X-Turnout-Override": "coordinator=workflow"})
    forged = await call(t, {"X-Turnout-Override": "coordinator=workflow;sig=" + "0" * 64})
    replayed = sign_override("k3y", FLAG, "langgraph").replace("langgraph;", "workflow;")
    moved = await call(t, {"X-Turnout-Override": replayed})
    assert {unsigned["reason"], forged["reason"], moved["reason"]} == {"DEFAULT"}
    assert t.failures.snapshot()["http"] == {"UnsignedOverride": 3}


async def test_a_signed_override_is_honoured_in_the_header_and_the_query() -> None:
    t = make({"override_secret": "k3y"}, allow_overrides=True)
    signed = sign_override("k3y", FLAG, "workflow")
    by_header = await call(t, {"X-Turnout-Override": signed})
    by_query = await call(t, {}, query="?" + str(httpx.QueryParams({"turnout_override": signed})))
    assert by_header["reason"] == by_query["reason"] == "OVERRIDE"
    assert by_header["variant"] == by_query["variant"] == "workflow"
    assert "http" not in t.failures.snapshot()


async def test_without_a_secret_only_allowlisted_ids_may_override() -> None:
    t = make({"override_ids": ["tester"]}, allow_overrides=True)
    allowed = await call(t, {"X-User-Id": "tester", "X-Turnout-Override": "coordinator=workflow"})
    refused = await call(t, {"X-User-Id": "other", "X-Turnout-Override": "coordinator=workflow"})
    assert (allowed["reason"], refused["reason"]) == ("OVERRIDE", "DEFAULT")
    assert t.failures.snapshot()["http"] == {"UnsignedOverride": 1}


async def test_the_cookie_can_be_forced_secure_and_its_same_site_set() -> None:
    plain = (await call(make(), {}))["set-cookie"]
    forced = (await call(make({"cookie_secure": True, "cookie_samesite": "strict"}), {}))["set-cookie"]
    cross_site = (await call(make({"cookie_samesite": "none"}), {}))["set-cookie"]
    assert "SameSite=Lax" in plain and "Secure" not in plain
    assert "SameSite=Strict" in forced and forced.endswith("; Secure")
    assert "SameSite=None" in cross_site and cross_site.endswith("; Secure")


async def test_the_secret_can_come_from_the_environment() -> None:
    config = {
        "flags": {FLAG: {"variants": ["legacy", "workflow"], "default": "legacy", "allow_overrides": True}}
    }
    t = Turnout(config, env={"TURNOUT_HTTP__OVERRIDE_SECRET": "12345"})
    assert t.config.http.override_secret == "12345"
    signed = await call(t, {"X-Turnout-Override": sign_override("12345", FLAG, "workflow")})
    assert signed["reason"] == "OVERRIDE"
