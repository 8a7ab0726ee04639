"""Value flags, split coverage, and evaluation in OpenFeature's terms."""

from __future__ import annotations

from typing import Any

import pytest

from turnout import ConfigError, Reason, RoutingContext, Turnout
from turnout.evaluation import ContextError, evaluate, parse_context

IDS = [f"user-{i}" for i in range(4000)]


def issues(config: dict[str, Any]) -> list[tuple[str, Any, str]]:
    with pytest.raises(ConfigError) as caught:
        Turnout(config)
    return [(issue.path, issue.value, issue.message) for issue in caught.value.issues]


def value_flag(**fields: Any) -> dict[str, Any]:
    return {"flags": {"theme": {"kind": "value", "default": "light", **fields}}}


def test_values_name_the_variants() -> None:
    t = Turnout(value_flag(values={"light": {"bg": "#fff"}, "dark": {"bg": "#000"}}))
    assert t.config.flags["theme"].variants == ["light", "dark"]
    result = evaluate(t, "theme", "u1", {})
    assert (result.value, result.variant, result.reason, result.type) == (
        {"bg": "#fff"},
        "light",
        "DEFAULT",
        "object",
    )


@pytest.mark.parametrize(
    ("fields", "path", "value"),
    [
        ({"values": {"light": 1, "dark": "2"}}, "flags.theme.values.dark", "2"),
        ({"values": {"light": True, "dark": None}}, "flags.theme.values.dark", None),
        ({"variants": ["light", "dark"], "values": {"light": 1}}, "flags.theme.values", {"light": 1}),
        ({"variants": ["light"], "values": {"light": 1, "dim": 2}}, "flags.theme.values.dim", 2),
        (
            {"kind": "engine", "variants": ["light"], "values": {"light": 1}},
            "flags.theme.values",
            {"light": 1},
        ),
        (
            {"variants": ["light"], "rules": [{"serve": "light", "coverage": 0.5}]},
            "flags.theme.rules[0].coverage",
            0.5,
        ),
        ({"variants": ["light", ""]}, "flags.theme.variants", ["light", ""]),
    ],
)
def test_bad_values_name_their_path_and_value(fields: dict[str, Any], path: str, value: Any) -> None:
    found = issues(value_flag(**fields))
    assert [(p, v) for p, v, _ in found] == [(path, value)]


def test_integers_and_floats_make_a_float_flag() -> None:
    t = Turnout(value_flag(values={"light": 0.5, "dark": 2}, overrides={"qa": "dark"}))
    assert evaluate(t, "theme", "u1", {}).value == 0.5
    dark = evaluate(t, "theme", "qa", {})
    assert (dark.value, type(dark.value), dark.type) == (2.0, float, "float")


def test_a_value_flag_without_values_serves_variant_names() -> None:
    t = Turnout(value_flag(variants=["light", "dark"], rules=[{"when": {"plan": "pro"}, "serve": "dark"}]))
    result = evaluate(t, "theme", "u1", {"plan": "pro"})
    assert (result.value, result.reason, result.metadata["rule"]) == ("dark", "TARGETING_MATCH", "rule-0")


@pytest.mark.parametrize("hash_name", ["murmur3", "growthbook-v1", "growthbook-v2"])
def test_coverage_takes_in_its_share_and_the_rest_fall_through(hash_name: str) -> None:
    rules = [
        {"name": "test", "split": {"light": 50, "dark": 50}, "coverage": 0.3},
        {"name": "everyone", "serve": "light"},
    ]
    t = Turnout(value_flag(variants=["light", "dark"], hash=hash_name, rules=rules))
    decisions = [t.decide("theme", RoutingContext(user)) for user in IDS]
    covered = [d for d in decisions if d.rule == "test"]
    assert 0.25 < len(covered) / len(IDS) < 0.35
    assert {d.reason for d in covered} == {Reason.SPLIT}
    assert {d.variant for d in covered} == {"light", "dark"}
    rest = [d for d in decisions if d.rule != "test"]
    assert {(d.rule, d.variant, d.reason) for d in rest} == {("everyone", "light", Reason.TARGETING_MATCH)}


def test_raising_coverage_keeps_covered_users_in_their_variant() -> None:
    def assigned(coverage: float) -> dict[str, str]:
        rules = [{"name": "test", "split": {"light": 50, "dark": 50}, "coverage": coverage}]
        t = Turnout(value_flag(variants=["light", "dark"], rules=rules))
        return {
            user: d.variant for user in IDS if (d := t.decide("theme", RoutingContext(user))).rule == "test"
        }

    small, large = assigned(0.2), assigned(0.6)
    assert small.items() <= large.items()
    assert len(large) > 2 * len(small)


def test_reasons_map_to_openfeature() -> None:
    config = value_flag(
        variants=["light", "dark"],
        overrides={"qa": "dark"},
        rules=[{"name": "ab", "experiment": "theme-test", "split": {"light": 50, "dark": 50}}],
    )
    t = Turnout(config)
    split = evaluate(t, "theme", "u1", {})
    assert (split.reason, split.metadata) == (
        "SPLIT",
        {"turnoutReason": "SPLIT", "rule": "ab", "experiment": "theme-test"},
    )
    assert split.variant == t.decide("theme", RoutingContext("u1")).variant
    forced = evaluate(t, "theme", "qa", {})
    assert (forced.variant, forced.reason, forced.metadata["turnoutReason"]) == (
        "dark",
        "TARGETING_MATCH",
        "OVERRIDE",
    )
    t.reload({**config, "flags": {"theme": {**config["flags"]["theme"], "enabled": False}}})
    off = evaluate(t, "theme", "u1", {})
    assert (off.variant, off.reason, off.error_code) == ("light", "DISABLED", None)


def test_engine_flags_give_the_engine_name() -> None:
    t = Turnout({"flags": {"coordinator": {"variants": ["legacy", "workflow"], "default": "legacy"}}})
    result = evaluate(t, "coordinator", "u1", {})
    assert (result.value, result.metadata["engine"]) == ("legacy", "legacy")


def test_errors_carry_openfeature_codes() -> None:
    t = Turnout(value_flag(variants=["light", "dark"], rules=[{"split": {"light": 50, "dark": 50}}]))
    missing = evaluate(t, "nope", "u1", {})
    assert (missing.error_code, missing.reason, missing.value) == ("FLAG_NOT_FOUND", "ERROR", None)
    keyless = evaluate(t, "theme", None, {})
    assert keyless.error_code == "TARGETING_KEY_MISSING"


def test_a_hash_by_attribute_stands_in_for_the_targeting_key() -> None:
    rules = [{"split": {"light": 50, "dark": 50}}]
    t = Turnout(value_flag(variants=["light", "dark"], hash_by="company", rules=rules))
    result = evaluate(t, "theme", None, {"company": "acme"})
    assert result.error_code is None
    assert result.variant == t.decide("theme", RoutingContext("x", {"company": "acme"})).variant


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        (None, (None, {})),
        ({"targetingKey": "u1", "plan": "pro"}, ("u1", {"plan": "pro"})),
        ({"targetingKey": "", "plan": "pro"}, (None, {"plan": "pro"})),
    ],
)
def test_parse_context(context: Any, expected: Any) -> None:
    assert parse_context(context) == expected


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(depth):
        value = {"x": value}
    return value


@pytest.mark.parametrize("context", [[1, 2], "u1", {"targetingKey": 7}, {"a": _nested(100)}])
def test_parse_context_refuses_what_it_cannot_use(context: Any) -> None:
    with pytest.raises(ContextError) as caught:
        parse_context(context)
    assert caught.value.code == "INVALID_CONTEXT"


def test_reload_listeners_hear_every_successful_reload() -> None:
    t = Turnout(value_flag(variants=["light"]))
    heard: list[list[str]] = []
    remove = t.on_reload(lambda config: heard.append(config.flags["theme"].variants))

    def broken(config: Any) -> None:
        raise RuntimeError("listener bug")

    t.on_reload(broken)
    t.reload(value_flag(variants=["light", "dark"]))
    with pytest.raises(ConfigError):
        t.reload(value_flag(variants=["dark"]))
    remove()
    t.reload(value_flag(variants=["light"]))
    assert heard == [["light", "dark"]]
    assert t.failures.count("reload.listener") == 2
