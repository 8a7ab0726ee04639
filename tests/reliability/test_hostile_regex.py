"""`$regex` rules and attribute headers from clients cannot stall the event loop."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from turnout import ConfigError, RoutingContext, Turnout
from turnout.asgi import TurnoutMiddleware
from turnout.conditions import compile_condition
from turnout.errors import ConditionError
from turnout.regex_guard import compile_search

FLAG = "coordinator"


def regex_rule(pattern: str, **http: Any) -> dict[str, Any]:
    return {
        "http": {"attribute_headers": {"X-Agent": "agent"}, **http},
        "flags": {
            FLAG: {
                "variants": ["legacy", "workflow"],
                "default": "legacy",
                "rules": [{"when": {"agent": {"$regex": pattern}}, "serve": "workflow"}],
            }
        },
    }


@pytest.mark.parametrize(
    "pattern",
    [r"^(a+)+$", r"(a*)*", r"(?:x+)*y", r"(\w+\s?)+$", r"(a|aa)+$", r"(?i)(ab|AC)+", r"^((a+)(b*))+$"],
)
def test_catastrophic_patterns_are_refused_at_load_with_their_path(pattern: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Turnout(regex_rule(pattern), env={})
    (issue,) = caught.value.issues
    assert issue.path == f"flags.{FLAG}.rules[0].when.agent.$regex"
    assert issue.value == pattern
    assert "exponential time" in issue.message


@pytest.mark.parametrize(
    "pattern",
    [r"^[a-z]+@example\.com$", r"(a|b)+", r"(foo|bar)*x", r"(\d{3}-)+", r"(https?://)+", r"(?>a+)+",
     r"(a++)+", r"^([a-z0-9]+\.)+[a-z]{2,}$", r"^Mozilla/5\.0 .*Mobile", r"((ab)+c)+"],
)  # fmt: skip
def test_ordinary_patterns_are_accepted(pattern: str) -> None:
    compile_condition({"agent": {"$regex": pattern}})


def test_a_search_past_its_budget_fails_closed_and_is_counted() -> None:
    # A fixed count of a repetition: the load-time guard lets it through, the budget stops it.
    slow = r"^(.*a){12}$"
    t = Turnout(regex_rule(slow), env={})
    ctx = RoutingContext("u1", {"agent": "a" * 5000 + "!"})
    decisions = [t.decide(FLAG, ctx) for _ in range(3)]
    assert {d.variant for d in decisions} == {"legacy"}  # the rule did not match
    assert t.failures.snapshot()["condition"] == {"TimeoutError": 3}
    assert t.decide(FLAG, RoutingContext("u1", {"agent": "a" * 12})).variant == "workflow"


def test_a_negated_search_past_its_budget_still_fails_closed() -> None:
    errors: list[Exception] = []
    condition = compile_condition({"$not": {"agent": {"$regex": r"^(.*a){12}$"}}}, on_error=errors.append)
    assert condition({"agent": "a" * 5000 + "!"}) is False
    assert [type(e) for e in errors] == [TimeoutError]


def test_the_budget_is_what_the_search_gets() -> None:
    search = compile_search(r"^(.*a){12}$", budget_s=0.001)
    with pytest.raises(TimeoutError):
        search("a" * 5000 + "!")
    assert compile_search(r"^a+$")("a" * 10_000)


def test_invalid_patterns_are_condition_errors() -> None:
    for pattern in ("(", "a{4294967296}", "[z-a]"):
        with pytest.raises(ConditionError, match="invalid regular expression"):
            compile_condition({"agent": {"$regex": pattern}})


async def test_attribute_headers_are_capped_and_the_cut_is_counted() -> None:
    t = Turnout(regex_rule(r"^a+$", max_attribute_length=16), env={})
    seen: list[Any] = []

    async def show(request: Request) -> PlainTextResponse:
        context = request.scope["state"]["turnout_context"]
        seen.append(context.attributes["agent"])
        return PlainTextResponse(t.decide(FLAG, context).variant)

    app = Starlette(routes=[Route("/", show)])
    app.add_middleware(TurnoutMiddleware, turnout=t)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/", headers={"X-Agent": "a" * 10_000 + "!"})
    assert response.status_code == 200
    assert seen == ["a" * 16]
    assert t.failures.snapshot()["http"] == {"AttributeTooLong": 1}


async def test_the_default_cap_is_256_characters() -> None:
    assert Turnout({}, env={}).config.http.max_attribute_length == 256
