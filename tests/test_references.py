"""Engines registered in code may be named by fallbacks and variants; attributes need a source."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from turnout import RoutingContext, Turnout
from turnout.config import validate_config
from turnout.errors import ConfigError
from turnout.references import attribute_issues, fallback_issues, variant_issues

FILE: dict[str, Any] = {
    "engines": {"workflow": {"fallback": "legacy", "timeout_ms": 3000}},
    "flags": {"coordinator": {"variants": ["legacy", "workflow"], "default": "legacy"}},
}


def test_a_fallback_may_name_an_engine_registered_after_the_file_loads() -> None:
    turnout = Turnout(FILE)

    @turnout.engine("legacy")
    def legacy(message: str) -> str:
        return f"legacy: {message}"

    @turnout.engine("workflow")
    def workflow(message: str) -> str:
        raise RuntimeError("down")

    ctx = RoutingContext("u1")
    decision = turnout.decide("coordinator", ctx)
    assert decision.variant == "legacy"
    assert turnout.failures.count("config") == 0
    assert turnout.engines["workflow"].fallback == "legacy"


async def test_start_names_the_setting_when_the_fallback_engine_is_still_missing() -> None:
    turnout = Turnout(FILE)
    turnout.add_engine("workflow", lambda message: message)
    with pytest.raises(ConfigError) as caught:
        await turnout.start()
    (issue,) = caught.value.issues
    assert (issue.path, issue.value) == ("engines.workflow.fallback", "legacy")
    assert issue.message == "unknown engine; declared: workflow"


async def test_start_passes_once_the_engine_is_registered() -> None:
    turnout = Turnout({**FILE, "telemetry": {"exporters": []}, "events": {"enabled": False}})
    turnout.add_engine("workflow", lambda message: message)
    turnout.add_engine("legacy", lambda message: message)
    await turnout.start()
    await turnout.stop()


def test_the_first_decision_of_an_app_never_started_reports_a_missing_fallback_and_serves() -> None:
    turnout = Turnout(FILE)
    turnout.add_engine("workflow", lambda message: message)
    with capture_logs() as logs:
        decision = turnout.decide("coordinator", RoutingContext("u1"))
        turnout.decide("coordinator", RoutingContext("u2"))
    assert decision.variant == "legacy"
    assert turnout.failures.count("config") == 1  # checked once, not on every decision
    (logged,) = [entry for entry in logs if entry["event"] == "turnout.failure"]
    assert "engines.workflow.fallback" in logged["error"]


def test_a_reload_once_engines_are_known_rejects_a_fallback_to_a_missing_engine() -> None:
    turnout = Turnout(FILE)
    turnout.add_engine("workflow", lambda message: message)
    turnout.add_engine("legacy", lambda message: message)
    turnout.decide("coordinator", RoutingContext("u1"))
    bad = {**FILE, "engines": {"workflow": {"fallback": "langgraph"}}}
    with pytest.raises(ConfigError) as caught:
        turnout.reload(bad)
    assert [(i.path, i.value) for i in caught.value.issues] == [("engines.workflow.fallback", "langgraph")]
    assert turnout.config.engines["workflow"].fallback == "legacy"


def test_fallback_issues_check_against_the_engines_there_are() -> None:
    config = validate_config(FILE)
    assert [i.path for i in fallback_issues(config, ["workflow"])] == ["engines.workflow.fallback"]
    assert fallback_issues(config, ["workflow", "legacy"]) == []


async def test_a_fallback_to_an_engine_declared_without_a_target_must_still_be_registered() -> None:
    declared = {**FILE, "engines": {**FILE["engines"], "legacy": {"timeout_ms": 500}}}
    turnout = Turnout(declared)
    turnout.add_engine("workflow", lambda message: message)
    with pytest.raises(ConfigError) as caught:
        await turnout.start()
    assert [(i.path, i.value) for i in caught.value.issues] == [("engines.workflow.fallback", "legacy")]


def test_variant_issues_list_the_variants_without_an_engine_once_per_flag() -> None:
    config = validate_config(
        {
            "flags": {
                "coordinator": {"variants": ["legacy", "workflow", "langgraph"], "default": "legacy"},
                "tone": {"kind": "value", "variants": ["formal"], "default": "formal"},
            }
        }
    )
    (issue,) = variant_issues(config, ["legacy"])
    assert (issue.path, issue.value) == ("flags.coordinator.variants", ["workflow", "langgraph"])


def rule(when: dict[str, Any], **sections: Any) -> dict[str, Any]:
    flag = {"variants": ["a", "b"], "default": "a", "rules": [{"name": "r", "when": when, "serve": "b"}]}
    return {"flags": {"f": flag}, **sections}


@pytest.mark.parametrize(
    ("data", "unprovided"),
    [
        (rule({"plan": "premium"}), ["plan"]),
        (rule({"plan": "premium"}, http={"attribute_headers": {"X-Plan": "plan"}}), []),
        (rule({"plan": "premium"}, routing={"attributes": ["plan"]}), []),
        (rule({"intent": "refund", "intent_confidence": {"$gt": 0.8}}), []),
        (rule({"$or": [{"plan": "a"}, {"country.code": "de"}]}), ["country", "plan"]),
    ],
)
def test_attributes_no_request_can_carry_are_named(data: dict[str, Any], unprovided: list[str]) -> None:
    found = attribute_issues(validate_config(data))
    assert [issue.value for issue in found] == unprovided
    assert all(issue.path == f"flags.f.rules[0].when.{issue.value}" for issue in found)


def test_loading_a_rule_on_an_unprovided_attribute_logs_a_warning() -> None:
    with capture_logs() as logs:
        Turnout(rule({"plan": "premium"}))
    (warning,) = [entry for entry in logs if entry["event"] == "turnout.attribute_unprovided"]
    assert warning["log_level"] == "warning"
    assert warning["setting"] == "flags.f.rules[0].when.plan"
    assert "attribute_headers" in warning["note"]
