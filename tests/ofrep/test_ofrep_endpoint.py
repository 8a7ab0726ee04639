"""The OFREP endpoints per the protocol's OpenAPI: single, bulk with ETag, errors, auth, exposures."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest

from turnout import RoutingContext, Turnout
from turnout.events import MemorySink

SINGLE = "/ofrep/v1/evaluate/flags/"
BULK = "/ofrep/v1/evaluate/flags"


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def test_single_evaluation_of_every_type(turnout: Turnout) -> None:
    async with client(turnout.ofrep_app()) as http:
        context = {"context": {"targetingKey": "user-1", "plan": "pro"}}
        answers = {key: (await http.post(SINGLE + key, json=context)).json() for key in turnout.config.flags}
    assert answers["new-checkout"] == {
        "key": "new-checkout",
        "value": True,
        "variant": "on",
        "reason": "TARGETING_MATCH",
        "metadata": {"turnoutReason": "TARGETING_MATCH", "rule": "pro"},
        "cacheable": False,
    }
    assert answers["page-size"]["value"] == 10
    assert answers["page-size"]["reason"] == "DEFAULT"
    assert answers["sampling"]["value"] in (0.25, 1.0)
    assert answers["sampling"]["reason"] == "SPLIT"
    assert answers["layout"]["value"] == {"columns": 1}
    assert answers["layout"]["reason"] == "DISABLED"
    assert answers["coordinator"]["metadata"]["engine"] == answers["coordinator"]["value"]


async def test_the_same_user_gets_the_in_process_variant(turnout: Turnout, users: list[str]) -> None:
    async with client(turnout.ofrep_app()) as http:
        for user in users[:50]:
            answer = (await http.post(SINGLE + "theme", json={"context": {"targetingKey": user}})).json()
            assert answer["variant"] == turnout.decide("theme", RoutingContext(user)).variant


async def test_remote_decisions_are_exposures(turnout: Turnout, sink: MemorySink, users: list[str]) -> None:
    async with client(turnout.ofrep_app()) as http:
        for user in users[:20]:
            await http.post(SINGLE + "theme", json={"context": {"targetingKey": user, "plan": "free"}})
    await turnout.events.stop()
    exposures = [e for e in sink.events if e.name == "$exposure"]
    assert {e.distinct_id for e in exposures} == set(users[:20])
    assert {e.properties["experiment"] for e in exposures} == {"theme-test"}
    assert all(e.properties["attributes"] == {"plan": "free"} for e in exposures)


@pytest.mark.parametrize(
    ("path", "body", "status", "code"),
    [
        (SINGLE + "missing", {"context": {"targetingKey": "u"}}, 404, "FLAG_NOT_FOUND"),
        (SINGLE + "theme", {"context": {"plan": "pro"}}, 400, "TARGETING_KEY_MISSING"),
        (SINGLE + "theme", {"context": ["u"]}, 400, "INVALID_CONTEXT"),
        (SINGLE + "theme", {"context": {"targetingKey": 5}}, 400, "INVALID_CONTEXT"),
        (SINGLE + "theme", b"{not json", 400, "PARSE_ERROR"),
        (SINGLE + "theme", b"[1]", 400, "PARSE_ERROR"),
    ],
)
async def test_errors_carry_the_protocols_codes(
    turnout: Turnout, path: str, body: Any, status: int, code: str
) -> None:
    async with client(turnout.ofrep_app()) as http:
        if isinstance(body, bytes):
            response = await http.post(path, content=body, headers={"content-type": "application/json"})
        else:
            response = await http.post(path, json=body)
    assert response.status_code == status
    answer = response.json()
    assert (answer["key"], answer["errorCode"]) == (path.rsplit("/", 1)[1], code)
    assert answer["errorDetails"]


async def test_a_body_past_the_limit_is_refused(turnout: Turnout, monkeypatch: pytest.MonkeyPatch) -> None:
    import turnout.ofrep as ofrep

    monkeypatch.setattr(ofrep, "MAX_BODY_BYTES", 100)
    body = {"context": {"targetingKey": "u", "padding": "x" * 200}}
    async with client(turnout.ofrep_app()) as http:
        response = await http.post(SINGLE + "theme", json=body)
    assert (response.status_code, response.json()["errorCode"]) == (400, "PARSE_ERROR")


async def test_a_flag_without_splits_needs_no_targeting_key(turnout: Turnout) -> None:
    async with client(turnout.ofrep_app()) as http:
        response = await http.post(SINGLE + "page-size", content=b"")
    assert (response.status_code, response.json()["value"]) == (200, 10)


async def test_bulk_evaluates_every_flag_with_an_etag(turnout: Turnout) -> None:
    context = {"context": {"targetingKey": "user-7"}}
    async with client(turnout.ofrep_app()) as http:
        first = await http.post(BULK, json=context)
        again = await http.post(BULK, json=context, headers={"If-None-Match": first.headers["etag"]})
        other = await http.post(BULK, json={"context": {"targetingKey": "qa-1"}})
        stale = await http.post(BULK, json=context, headers={"If-None-Match": '"0000"'})
    assert first.status_code == 200
    flags = {entry["key"]: entry for entry in first.json()["flags"]}
    assert set(flags) == set(turnout.config.flags)
    assert flags["theme"]["variant"] == turnout.decide("theme", RoutingContext("user-7")).variant
    assert (again.status_code, again.content, again.headers["etag"]) == (304, b"", first.headers["etag"])
    assert other.headers["etag"] != first.headers["etag"]
    assert stale.status_code == 200


async def test_bulk_reports_per_flag_errors_and_context_errors(turnout: Turnout) -> None:
    async with client(turnout.ofrep_app()) as http:
        keyless = await http.post(BULK, json={"context": {"plan": "pro"}})
        broken = await http.post(BULK, json={"context": "user-1"})
    flags = {entry["key"]: entry for entry in keyless.json()["flags"]}
    assert flags["theme"]["errorCode"] == "TARGETING_KEY_MISSING"
    assert flags["new-checkout"]["errorCode"] == "TARGETING_KEY_MISSING"
    assert flags["page-size"]["value"] == 10
    assert (broken.status_code, broken.json()["errorCode"]) == (400, "INVALID_CONTEXT")


async def test_a_reload_changes_the_bulk_etag(turnout: Turnout) -> None:
    context = {"context": {"targetingKey": "user-7"}}
    async with client(turnout.ofrep_app()) as http:
        before = await http.post(BULK, json=context)
        flags = dict(turnout.config.model_dump()["flags"])
        flags["page-size"] = {**flags["page-size"], "default": "large"}
        turnout.reload({"flags": flags})
        after = await http.post(BULK, json=context, headers={"If-None-Match": before.headers["etag"]})
    assert after.status_code == 200
    assert {e["key"]: e for e in after.json()["flags"]}["page-size"]["value"] == 50


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def test_tokens_from_config_guard_every_endpoint(config: dict[str, Any]) -> None:
    t = Turnout({**config, "ofrep": {"tokens": {_digest("s3cret"): "go-router"}}})
    body = {"context": {"targetingKey": "qa-1"}}
    async with client(t.ofrep_app()) as http:
        anonymous = await http.post(SINGLE + "theme", json=body)
        wrong = await http.post(BULK, json=body, headers={"Authorization": "Bearer nope"})
        config = await http.get("/ofrep/v1/configuration")
        bearer = await http.post(SINGLE + "theme", json=body, headers={"Authorization": "Bearer s3cret"})
        api_key = await http.post(BULK, json=body, headers={"X-API-Key": "s3cret"})
    for refused in (anonymous, wrong, config):
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Bearer")
        assert "s3cret" not in refused.text
    assert (bearer.status_code, api_key.status_code) == (200, 200)
    # An authenticated caller is trusted with the targeting key: per-user overrides apply.
    assert bearer.json()["variant"] == "dark"
    assert bearer.json()["metadata"]["turnoutReason"] == "OVERRIDE"


async def test_without_tokens_request_supplied_keys_do_not_get_overrides(turnout: Turnout) -> None:
    async with client(turnout.ofrep_app()) as http:
        answer = (await http.post(SINGLE + "theme", json={"context": {"targetingKey": "qa-1"}})).json()
    assert answer["metadata"]["turnoutReason"] == "SPLIT"


async def test_tokens_given_in_code_replace_the_configs(turnout: Turnout) -> None:
    app = turnout.ofrep_app(tokens={_digest("k"): "js"})
    async with client(app) as http:
        assert (await http.post(BULK, json={})).status_code == 401
        assert (await http.post(BULK, json={}, headers={"Authorization": "Bearer k"})).status_code == 200


async def test_configuration_announces_polling_and_types(turnout: Turnout) -> None:
    async with client(turnout.ofrep_app()) as http:
        answer = (await http.get("/ofrep/v1/configuration")).json()
    assert answer["name"] == "turnout"
    assert answer["capabilities"]["cacheInvalidation"]["polling"] == {
        "enabled": True,
        "minPollingIntervalMs": 30000,
    }
    assert answer["capabilities"]["flagEvaluation"]["supportedTypes"] == [
        "boolean",
        "string",
        "int",
        "float",
        "object",
    ]


async def test_a_server_failure_is_a_500_counted_and_never_a_crash(
    turnout: Turnout, monkeypatch: pytest.MonkeyPatch
) -> None:
    import turnout.ofrep as ofrep

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(ofrep, "evaluate", broken)
    async with client(turnout.ofrep_app()) as http:
        response = await http.post(SINGLE + "theme", json={"context": {"targetingKey": "u"}})
    assert response.status_code == 500
    assert response.json() == {"errorDetails": "the evaluation failed on the server"}
    assert turnout.failures.count("ofrep") == 1


def test_bad_token_digests_are_config_errors() -> None:
    from turnout import ConfigError

    with pytest.raises(ConfigError) as caught:
        Turnout({"ofrep": {"tokens": {"plain-token": "x"}}})
    assert [(issue.path, issue.value) for issue in caught.value.issues] == [("ofrep.tokens", "***")]
    assert "plain-token" not in str(caught.value)


async def test_the_package_level_function_builds_the_same_app(turnout: Turnout) -> None:
    import turnout as package

    async with client(package.ofrep_app(turnout)) as http:
        answer = (await http.post(SINGLE + "page-size", json={})).json()
    assert (answer["value"], answer["reason"]) == (10, "DEFAULT")
