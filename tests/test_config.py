"""Config loading and validation: every error names its path and bad value, all at once."""

from __future__ import annotations

import copy
import json
import math
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from turnout import ConfigError, Reason, RoutingContext, Turnout
from turnout.config import TurnoutConfig, load_file, validate_config
from turnout.types import NoOpClassifier

ARCHITECTURE_TOML = """
[engines.legacy]
target = "{module}:legacy"
[engines.workflow]
target = "{module}:workflow"
version = "2.0"
fallback = "legacy"
timeout_ms = 3000

[intent]
enabled = true
model = "models/intent.bin"
min_confidence = 0.6

[flags.coordinator]
variants = ["legacy", "workflow", "langgraph"]
default = "legacy"
hash_by = "user_id"

  [[flags.coordinator.rules]]
  name = "premium"
  when = {{ plan = {{ "$in" = ["premium", "enterprise"] }} }}
  serve = "langgraph"

  [[flags.coordinator.rules]]
  name = "refunds"
  when = {{ intent = "refund" }}
  serve = "workflow"

  [[flags.coordinator.rules]]
  name = "canary"
  experiment = "workflow-canary"
  split = {{ legacy = 90, workflow = 10 }}
  rollout = {{ steps = [10, 25, 50, 100], every = "1d", start = 2026-12-01T09:00:00Z }}
  guardrails = {{ p99_ms = 3000, min_success_rate = 0.95, min_samples = 100, action = "rollback" }}

[telemetry]
snapshot_interval_s = 10
exporters = ["jsonl"]
jsonl_path = "logs/metrics.jsonl"

[events]
sink = "sqlite:///turnout_events.db"
"""

ENGINES_MODULE = """
def legacy(message):
    return "legacy:" + message


async def workflow(message):
    return "workflow:" + message
"""

BASE: dict[str, Any] = {
    "engines": {"legacy": {}, "workflow": {"fallback": "legacy"}},
    "flags": {
        "coordinator": {
            "variants": ["legacy", "workflow", "langgraph"],
            "default": "legacy",
            "rules": [
                {"name": "premium", "when": {"plan": "premium"}, "serve": "langgraph"},
                {"name": "canary", "split": {"legacy": 90, "workflow": 10}},
            ],
        }
    },
}


def with_changes(*changes: tuple[str, Any]) -> dict[str, Any]:
    """BASE with each dotted path set to a value (`rules.0` indexes a list)."""
    data = copy.deepcopy(BASE)
    for path, value in changes:
        *parents, last = path.split(".")
        node: Any = data
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return data


def issues_of(data: Any) -> list[tuple[str, Any]]:
    with pytest.raises(ConfigError) as caught:
        validate_config(data)
    assert caught.value.issues, "a ConfigError must list at least one issue"
    return [(issue.path, issue.value) for issue in caught.value.issues]


@pytest.fixture
def engines_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    name = "turnout_test_config_engines"
    (tmp_path / f"{name}.py").write_text(ENGINES_MODULE, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, name, raising=False)
    return name


# --- a valid configuration ------------------------------------------------------------


def test_base_config_is_valid() -> None:
    config = validate_config(BASE)
    assert isinstance(config, TurnoutConfig)
    assert [rule.name for rule in config.flags["coordinator"].rules] == ["premium", "canary"]


def test_architecture_example_loads_from_toml(tmp_path: Path, engines_module: str) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(ARCHITECTURE_TOML.format(module=engines_module), encoding="utf-8")

    turnout = Turnout.from_file(path, env={}, classifier=NoOpClassifier())

    config = turnout.config
    assert config.engines["workflow"].version == "2.0"
    assert config.engines["workflow"].fallback == "legacy"
    assert config.engines["workflow"].timeout_ms == 3000
    assert config.intent.enabled is True
    assert config.intent.min_confidence == 0.6
    flag = config.flags["coordinator"]
    assert flag.variants == ["legacy", "workflow", "langgraph"]
    assert flag.hash_by == "user_id"
    assert [rule.name for rule in flag.rules] == ["premium", "refunds", "canary"]
    canary = flag.rules[2]
    assert canary.experiment == "workflow-canary"
    assert canary.split == {"legacy": 90, "workflow": 10}
    assert canary.rollout is not None
    assert canary.rollout.steps == [10, 25, 50, 100]
    assert canary.rollout.every == 86400.0
    assert canary.guardrails is not None
    assert canary.guardrails.action == "rollback"
    assert canary.guardrails.p99_ms == 3000
    assert config.telemetry.snapshot_interval_s == 10
    assert config.events.sink == "sqlite:///turnout_events.db"
    assert set(turnout.engines) == {"legacy", "workflow"}
    assert turnout.engines["workflow"].version == "2.0"

    premium = turnout.decide("coordinator", RoutingContext("u1", {"plan": "enterprise"}))
    assert (premium.variant, premium.reason, premium.rule) == ("langgraph", Reason.TARGETING_MATCH, "premium")


def test_same_config_loads_from_json(tmp_path: Path, engines_module: str) -> None:
    toml_path = tmp_path / "turnout.toml"
    toml_path.write_text(ARCHITECTURE_TOML.format(module=engines_module), encoding="utf-8")
    json_path = tmp_path / "turnout.json"
    json_path.write_text(json.dumps(load_file(toml_path), default=str), encoding="utf-8")  # TOML datetimes

    from_json = Turnout.from_file(json_path, env={}, classifier=NoOpClassifier())
    from_toml = Turnout.from_file(toml_path, env={}, classifier=NoOpClassifier())

    assert from_json.config == from_toml.config


def test_turnout_accepts_a_mapping_or_a_model() -> None:
    assert Turnout(BASE).config == Turnout(validate_config(BASE)).config


def test_durations_accept_units_and_numbers() -> None:
    config = validate_config(
        {
            "telemetry": {"snapshot_interval_s": "500ms", "exporter_timeout_s": 2},
            "events": {"flush_interval_s": "5m", "shutdown_timeout_s": "1.5h"},
            "engines": {"a": {"circuit_breaker": {"reset_s": "1w"}}},
        }
    )
    assert config.telemetry.snapshot_interval_s == 0.5
    assert config.telemetry.exporter_timeout_s == 2.0
    assert config.events.flush_interval_s == 300.0
    assert config.events.shutdown_timeout_s == 5400.0
    assert config.engines["a"].circuit_breaker.reset_s == 604800.0


def test_split_weights_may_carry_rounding() -> None:
    data = with_changes(
        ("flags.coordinator.rules.1.split", {"legacy": 33.3, "workflow": 33.3, "langgraph": 33.4})
    )
    assert validate_config(data).flags["coordinator"].rules[1].split is not None


def test_rollout_start_without_zone_is_utc() -> None:
    data = with_changes(
        (
            "flags.coordinator.rules.1.rollout",
            {"steps": [10, 50], "every": "1d", "start": "2026-01-01T00:00:00"},
        )
    )
    rollout = validate_config(data).flags["coordinator"].rules[1].rollout
    assert rollout is not None
    assert rollout.start == datetime(2026, 1, 1, tzinfo=UTC)


# --- every error kind names its path and the bad value --------------------------------


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("defualt", "legacy"),
        ("engines.legacy.timout_ms", 100),
        ("engines.legacy.circuit_breaker.failurs", 3),
        ("flags.coordinator.defualt", "legacy"),
        ("flags.coordinator.rules.0.serv", "legacy"),
        ("flags.coordinator.rules.1.rollout", {"steps": [10], "every": "1d", "evry": "2d"}),
        ("flags.coordinator.rules.1.guardrails", {"p99": 100}),
        ("intent.enable", True),
        ("routing.attribute_rule", False),
        ("telemetry.snapshot_interval", 5),
        ("telemetry.thresholds.p99_ms_warn", 100),
        ("events.sinkk", "jsonl"),
        ("http.user_headr", "X-Id"),
    ],
)
def test_unknown_keys_are_errors_at_every_level(path: str, value: Any) -> None:
    found = dict(issues_of(with_changes((path, value))))

    typo_path = path.replace(".rules.0.", ".rules[0].").replace(".rules.1.", ".rules[1].")
    if isinstance(value, dict):
        key, bad = next((k, v) for k, v in value.items() if k in {"evry", "p99"})
        typo_path, value = f"{typo_path}.{key}", bad
    assert found[typo_path] == value


def test_unknown_key_error_suggests_the_closest_key() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config({"flags": {"f": {"variants": ["a"], "defualt": "a"}}})
    messages = {issue.path: issue.message for issue in caught.value.issues}
    assert messages["flags.f.defualt"] == "unknown key; did you mean `default`?"
    assert messages["flags.f.default"] == "required key is missing"
    assert "(got" not in str(caught.value).split("flags.f.default:")[1].splitlines()[0]


def test_an_unknown_key_with_nothing_close_lists_the_valid_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config({"plugins": {"zzz": 1}})
    assert caught.value.issues[0].message == "unknown key; valid keys: autoload, block"


def test_every_problem_is_reported_in_one_run_even_inside_a_broken_flag() -> None:
    data = {
        "engines": {"workflow": {"timeout_ms": "fast", "tiemout": 3}},
        "flags": {
            "coordinator": {
                "variants": ["legacy", "workflow"],
                "defualt": "legacy",
                "rules": [
                    {"name": "premium", "when": {"plan": {"$inn": ["premium"]}}, "serve": "langgraph"},
                    {"name": "canary", "split": {"legacy": 80, "workflow": 10}},
                ],
            }
        },
    }
    with pytest.raises(ConfigError) as caught:
        validate_config(data)
    paths = [issue.path for issue in caught.value.issues]
    assert paths == [
        "engines.workflow.tiemout",
        "engines.workflow.timeout_ms",
        "flags.coordinator.default",
        "flags.coordinator.defualt",
        "flags.coordinator.rules[0].serve",
        "flags.coordinator.rules[0].when.plan.$inn",
        "flags.coordinator.rules[1].split",
    ]


@pytest.mark.parametrize(
    ("when", "path", "value"),
    [
        ({"plan": {"$foo": 1}}, "flags.coordinator.rules[0].when.plan.$foo", 1),
        ({"$xor": [{"plan": "a"}]}, "flags.coordinator.rules[0].when.$xor", [{"plan": "a"}]),
        ({"plan": {"$regex": "("}}, "flags.coordinator.rules[0].when.plan.$regex", "("),
    ],
)
def test_bad_condition_names_the_operator_path(when: dict[str, Any], path: str, value: Any) -> None:
    found = issues_of(with_changes(("flags.coordinator.rules.0.when", when)))
    assert found == [(path, value)]


@pytest.mark.parametrize(
    ("split", "total"),
    [({"legacy": 90, "workflow": 20}, "110"), ({"legacy": 50, "workflow": 40}, "90"), ({"legacy": 0}, "0")],
)
def test_split_must_sum_to_100(split: dict[str, float], total: str) -> None:
    data = with_changes(("flags.coordinator.rules.1.split", split))
    with pytest.raises(ConfigError) as caught:
        validate_config(data)
    (issue,) = caught.value.issues
    assert issue.path == "flags.coordinator.rules[1].split"
    assert issue.value == split
    assert f"sum to {total}" in issue.message


def test_split_weight_out_of_range() -> None:
    found = issues_of(with_changes(("flags.coordinator.rules.1.split", {"legacy": 150, "workflow": -50})))
    assert ("flags.coordinator.rules[1].split.legacy", 150) in found
    assert ("flags.coordinator.rules[1].split.workflow", -50) in found


def test_serve_naming_an_undeclared_variant() -> None:
    found = issues_of(with_changes(("flags.coordinator.rules.0.serve", "rocket")))
    assert found == [("flags.coordinator.rules[0].serve", "rocket")]


def test_split_naming_an_undeclared_variant() -> None:
    found = issues_of(with_changes(("flags.coordinator.rules.1.split", {"legacy": 90, "rocket": 10})))
    assert found == [("flags.coordinator.rules[1].split.rocket", "rocket")]


def test_override_naming_an_undeclared_variant() -> None:
    found = issues_of(with_changes(("flags.coordinator.overrides", {"qa-1": "rocket"})))
    assert found == [("flags.coordinator.overrides.qa-1", "rocket")]


def test_fallback_naming_an_engine_not_in_the_file_is_checked_once_engines_are_known() -> None:
    # It may be registered in code after the file is loaded (see tests/test_references.py).
    config = validate_config(with_changes(("engines.workflow.fallback", "nope")))
    assert config.engines["workflow"].fallback == "nope"


def test_fallback_cycle_of_two() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(with_changes(("engines.legacy.fallback", "workflow")))
    (issue,) = caught.value.issues
    assert issue.path in {"engines.legacy.fallback", "engines.workflow.fallback"}
    assert issue.value in {"legacy", "workflow"}
    assert "cycle" in issue.message
    assert (
        "legacy -> workflow -> legacy" in issue.message or "workflow -> legacy -> workflow" in issue.message
    )


def test_fallback_to_itself() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(with_changes(("engines.legacy.fallback", "legacy")))
    (issue,) = caught.value.issues
    assert (issue.path, issue.value) == ("engines.legacy.fallback", "legacy")
    assert "legacy -> legacy" in issue.message


def test_fallback_cycle_is_named_at_an_engine_inside_it() -> None:
    # `entry` only leads into the cycle; the error must point at the cycle itself.
    data = {"engines": {"entry": {"fallback": "a"}, "a": {"fallback": "b"}, "b": {"fallback": "a"}}}
    with pytest.raises(ConfigError) as caught:
        validate_config(data)
    (issue,) = caught.value.issues
    assert issue.path in {"engines.a.fallback", "engines.b.fallback"}
    assert "entry" not in issue.message


def test_fallback_chain_without_cycle_is_fine() -> None:
    data = {"engines": {"c": {"fallback": "b"}, "b": {"fallback": "a"}, "a": {}}}
    assert validate_config(data).engines["c"].fallback == "b"


def test_duplicate_variants() -> None:
    variants = ["legacy", "workflow", "legacy", "langgraph"]
    found = issues_of(with_changes(("flags.coordinator.variants", variants)))
    assert found == [("flags.coordinator.variants", variants)]


def test_default_not_declared() -> None:
    found = issues_of(with_changes(("flags.coordinator.default", "rocket")))
    assert found == [("flags.coordinator.default", "rocket")]


@pytest.mark.parametrize("duration", ["10 parsecs", "1day", "0s", "-5s", "", -1, 0, True, math.nan, math.inf])
def test_bad_duration(duration: Any) -> None:
    found = issues_of({"telemetry": {"snapshot_interval_s": duration}})
    assert len(found) == 1
    path, value = found[0]
    assert path == "telemetry.snapshot_interval_s"
    assert value == duration or (isinstance(duration, float) and math.isnan(value))


def test_bad_rollout_interval_names_its_path() -> None:
    rollout = {"steps": [10, 50], "every": "daily", "start": "2026-12-01T09:00:00Z"}
    found = issues_of(with_changes(("flags.coordinator.rules.1.rollout", rollout)))
    assert found == [("flags.coordinator.rules[1].rollout.every", "daily")]


def test_rollout_without_split() -> None:
    rollout = {"steps": [10, 50], "every": "1d"}
    with pytest.raises(ConfigError) as caught:
        validate_config(with_changes(("flags.coordinator.rules.0.rollout", rollout)))
    (issue,) = caught.value.issues
    assert issue.path == "flags.coordinator.rules[0].rollout"
    assert issue.value["steps"] == [10, 50]
    assert "split" in issue.message


@pytest.mark.parametrize("steps", [[10, 10], [50, 25], [10, 50, 40, 100]])
def test_rollout_steps_must_increase(steps: list[int]) -> None:
    rollout = {"steps": steps, "every": "1d", "start": "2026-12-01T09:00:00Z"}
    found = issues_of(with_changes(("flags.coordinator.rules.1.rollout", rollout)))
    assert found == [("flags.coordinator.rules[1].rollout.steps", steps)]


def test_rollout_step_over_100() -> None:
    rollout = {"steps": [10, 150], "every": "1d"}
    found = issues_of(with_changes(("flags.coordinator.rules.1.rollout", rollout)))
    assert found == [("flags.coordinator.rules[1].rollout.steps[1]", 150)]


def test_rollout_split_must_include_the_default() -> None:
    data = with_changes(
        ("flags.coordinator.rules.1.split", {"workflow": 50, "langgraph": 50}),
        (
            "flags.coordinator.rules.1.rollout",
            {"steps": [10, 50], "every": "1d", "start": "2026-12-01T09:00:00Z"},
        ),
    )
    found = issues_of(data)
    assert found == [("flags.coordinator.rules[1].split", {"workflow": 50, "langgraph": 50})]


def test_a_rollout_with_no_weight_on_any_treatment_is_rejected() -> None:
    data = with_changes(
        ("flags.coordinator.rules.1.split", {"legacy": 100, "workflow": 0}),
        (
            "flags.coordinator.rules.1.rollout",
            {"steps": [10, 50], "every": "1d", "start": "2026-12-01T09:00:00Z"},
        ),
    )
    assert issues_of(data) == [("flags.coordinator.rules[1].split", {"legacy": 100, "workflow": 0})]


@pytest.mark.parametrize(
    "rule", [{"name": "empty"}, {"name": "both", "serve": "legacy", "split": {"legacy": 100}}]
)
def test_rule_needs_exactly_one_of_serve_or_split(rule: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(with_changes(("flags.coordinator.rules.0", rule)))
    (issue,) = caught.value.issues
    assert issue.path == "flags.coordinator.rules[0]"
    assert issue.value == {"serve": rule.get("serve"), "split": rule.get("split")}


def test_rule_names_must_be_unique() -> None:
    found = issues_of(with_changes(("flags.coordinator.rules.1.name", "premium")))
    assert found == [("flags.coordinator.rules[1].name", "premium")]


def test_wrong_types_name_their_path() -> None:
    found = issues_of(
        with_changes(("engines.workflow.timeout_ms", "fast"), ("flags.coordinator.enabled", "sometimes"))
    )
    assert ("engines.workflow.timeout_ms", "fast") in found
    assert ("flags.coordinator.enabled", "sometimes") in found


def test_engine_target_must_be_module_colon_attribute() -> None:
    found = issues_of(with_changes(("engines.legacy.target", "not a target")))
    assert found == [("engines.legacy.target", "not a target")]


# --- every error is reported at once --------------------------------------------------


def test_several_reference_errors_are_reported_together() -> None:
    data = with_changes(
        ("flags.coordinator.default", "rocket"),
        ("flags.coordinator.rules.0.serve", "jet"),
        ("flags.coordinator.rules.0.when", {"plan": {"$foo": 1}}),
        ("flags.coordinator.rules.1.split", {"legacy": 50, "workflow": 40}),
    )
    found = dict(issues_of(data))
    assert found == {
        "flags.coordinator.default": "rocket",
        "flags.coordinator.rules[0].serve": "jet",
        "flags.coordinator.rules[0].when.plan.$foo": 1,
        "flags.coordinator.rules[1].split": {"legacy": 50, "workflow": 40},
    }


def test_shape_and_reference_errors_are_reported_together() -> None:
    data = with_changes(
        ("telemetry.snapshot_interval_s", "soon"),
        ("intent.enable", True),
        ("engines.legacy.fallback", "legacy"),
        ("flags.coordinator.rules.1.split", {"legacy": 50, "workflow": 40}),
    )
    data["flags"]["broken"] = {"variants": ["a"], "default": "a", "defualt": "a"}
    found = dict(issues_of(data))
    assert found["telemetry.snapshot_interval_s"] == "soon"
    assert found["intent.enable"] is True
    assert found["flags.broken.defualt"] == "a"
    assert found["engines.legacy.fallback"] == "legacy"
    assert found["flags.coordinator.rules[1].split"] == {"legacy": 50, "workflow": 40}


def test_a_broken_engine_is_not_reported_as_unknown_by_its_fallbacks() -> None:
    data = with_changes(("engines.legacy.timeout_ms", -1), ("flags.coordinator.default", "rocket"))
    found = dict(issues_of(data))
    assert found == {"engines.legacy.timeout_ms": -1, "flags.coordinator.default": "rocket"}


def test_error_text_lists_every_path_and_value() -> None:
    data = with_changes(("flags.coordinator.default", "rocket"), ("engines.workflow.timeout_ms", -1))
    with pytest.raises(ConfigError) as caught:
        validate_config(data, source="turnout.toml")
    text = str(caught.value)
    assert text.startswith("2 configuration errors in turnout.toml")
    assert "flags.coordinator.default" in text
    assert "'rocket'" in text
    assert "engines.workflow.timeout_ms" in text
    assert "(got -1)" in text


def test_turnout_raises_the_same_errors(tmp_path: Path) -> None:
    data = with_changes(("flags.coordinator.rules.0.serve", "jet"))
    with pytest.raises(ConfigError) as caught:
        Turnout(data)
    assert [(i.path, i.value) for i in caught.value.issues] == [("flags.coordinator.rules[0].serve", "jet")]

    path = tmp_path / "turnout.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError) as from_file:
        Turnout.from_file(path, env={})
    assert from_file.value.issues == caught.value.issues
    assert from_file.value.source == str(path)


# --- files ----------------------------------------------------------------------------


def test_toml_and_json_files_load_to_the_same_data(tmp_path: Path) -> None:
    toml_path = tmp_path / "c.toml"
    toml_path.write_text('[flags.f]\nvariants = ["a", "b"]\ndefault = "a"\n', encoding="utf-8")
    json_path = tmp_path / "c.JSON"
    json_path.write_text('{"flags": {"f": {"variants": ["a", "b"], "default": "a"}}}', encoding="utf-8")
    assert (
        load_file(toml_path)
        == load_file(json_path)
        == {"flags": {"f": {"variants": ["a", "b"], "default": "a"}}}
    )


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("bad.toml", "[flags.coordinator\nvariants = ["),
        ("bad.toml", 'default = "a"\ndefault = "b"\n'),
        ("bad.json", '{"flags": {'),
        ("bad.json", "{'flags': {}}"),
    ],
)
def test_invalid_file(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        Turnout.from_file(path, env={})
    (issue,) = caught.value.issues
    assert issue.path == str(path)
    assert "not valid" in issue.message


def test_file_that_is_not_text(tmp_path: Path) -> None:
    path = tmp_path / "binary.toml"
    path.write_bytes(b"\xff\xfe\x00[flags]")
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    (issue,) = caught.value.issues
    assert issue.path == str(path)


def test_json_file_must_hold_an_object(tmp_path: Path) -> None:
    path = tmp_path / "list.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_file(path)
    assert [(i.path, i.value) for i in caught.value.issues] == [(str(path), "list")]


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.toml"
    with pytest.raises(ConfigError) as caught:
        Turnout.from_file(path, env={})
    (issue,) = caught.value.issues
    assert issue.path == str(path)
    assert "cannot read" in issue.message


def test_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_file(tmp_path)
    assert caught.value.issues[0].path == str(tmp_path)


def test_errors_in_a_toml_file_name_their_paths(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(
        """
[flags.coordinator]
variants = ["legacy", "workflow"]
default = "legacy"

  [[flags.coordinator.rules]]
  when = { plan = { "$foo" = "x" } }
  serve = "legacy"

  [[flags.coordinator.rules]]
  split = { legacy = 80, workflow = 10 }
""",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        Turnout.from_file(path, env={})
    assert [(i.path, i.value) for i in caught.value.issues] == [
        ("flags.coordinator.rules[0].when.plan.$foo", "x"),
        ("flags.coordinator.rules[1].split", {"legacy": 80, "workflow": 10}),
    ]
