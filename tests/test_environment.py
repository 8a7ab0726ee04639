"""The environment switches and `TURNOUT_*` settings; env overrides files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from turnout import ConfigError, Reason, RoutingContext, Turnout
from turnout.environment import SWITCH_ENGINES

USERS = [f"user-{i}" for i in range(20_000)]

COORDINATOR_FILE = {
    "intent": {"enabled": False},
    "telemetry": {"snapshot_interval_s": 10},
    "flags": {
        "coordinator": {
            "variants": ["legacy", "workflow", "langgraph"],
            "default": "legacy",
            "rules": [
                {"name": "premium", "when": {"plan": "premium"}, "serve": "langgraph"},
                {"name": "refunds", "when": {"intent": "refund"}, "serve": "workflow"},
            ],
        }
    },
}


def engines_for(turnout: Turnout, users: list[str] = USERS) -> dict[str, str | None]:
    return {user: turnout.decide("coordinator", RoutingContext(user)).engine for user in users}


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "turnout.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def env_issues(env: dict[str, str], config: dict[str, Any] | None = None) -> list[tuple[str, Any]]:
    with pytest.raises(ConfigError) as caught:
        Turnout(config or {}, env=env)
    return [(issue.path, issue.value) for issue in caught.value.issues]


# --- COORDINATOR_ENGINE ---------------------------------------------------------------


@pytest.mark.parametrize("engine", ["legacy", "workflow", "langgraph"])
def test_coordinator_engine_is_served_to_everyone(engine: str) -> None:
    turnout = Turnout.from_env(env={"COORDINATOR_ENGINE": engine})
    decisions = [turnout.decide("coordinator", RoutingContext(user)) for user in USERS[:500]]
    assert {(d.variant, d.engine) for d in decisions} == {(engine, engine)}
    assert turnout.config.flags["coordinator"].variants == ["legacy", "workflow", "langgraph"]


def test_full_migration_serves_langgraph_to_everyone() -> None:
    env = {
        "COORDINATOR_ENGINE": "langgraph",
        "ENABLE_ML_INTENT": "true",
        "ENABLE_CONTEXT_AWARE": "true",
        "AB_TESTING_ENABLED": "false",
    }
    turnout = Turnout.from_env(env=env, classifier=RefundClassifier())
    assert set(engines_for(turnout, USERS[:2000]).values()) == {"langgraph"}


def test_coordinator_engine_value_is_trimmed_and_empty_means_unset() -> None:
    turnout = Turnout.from_env(env={"COORDINATOR_ENGINE": " workflow "})
    assert turnout.decide("coordinator", RoutingContext("u")).engine == "workflow"
    assert "coordinator" not in Turnout.from_env(env={"COORDINATOR_ENGINE": ""}).config.flags


def test_turnout_default_engine_alone_sets_the_default() -> None:
    turnout = Turnout.from_env(env={"TURNOUT_DEFAULT_ENGINE": "workflow"})
    decision = turnout.decide("coordinator", RoutingContext("u"))
    assert (decision.engine, decision.reason) == ("workflow", Reason.DEFAULT)


def test_explicit_env_ignores_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COORDINATOR_ENGINE", "langgraph")
    monkeypatch.setenv("AB_TRAFFIC_SPLIT", "not a number")
    turnout = Turnout.from_env(env={"COORDINATOR_ENGINE": "workflow"})
    assert turnout.decide("coordinator", RoutingContext("u")).engine == "workflow"
    assert Turnout({}).config.flags == {}


# --- AB_TESTING_ENABLED / AB_TRAFFIC_SPLIT --------------------------------------------


def ab_env(split: str = "0.1", engine: str = "workflow", **extra: str) -> dict[str, str]:
    return {"COORDINATOR_ENGINE": engine, "AB_TESTING_ENABLED": "true", "AB_TRAFFIC_SPLIT": split, **extra}


def test_ab_split_sends_a_tenth_to_coordinator_engine_and_the_rest_to_legacy() -> None:
    turnout = Turnout.from_env(env=ab_env("0.1"))
    counts = Counter(engines_for(turnout).values())
    assert set(counts) == {"legacy", "workflow"}
    assert abs(counts["workflow"] / len(USERS) - 0.10) < 0.01


def test_ab_split_decisions_say_split_with_an_experiment() -> None:
    turnout = Turnout.from_env(env=ab_env("0.1"))
    decisions = [turnout.decide("coordinator", RoutingContext(user)) for user in USERS[:300]]
    assert {d.reason for d in decisions} == {Reason.SPLIT}
    assert len({d.experiment for d in decisions}) == 1
    assert decisions[0].experiment
    assert all(d.bucket is not None and 0 <= d.bucket < 1 for d in decisions)


def test_ab_split_rest_goes_to_turnout_default_engine() -> None:
    turnout = Turnout.from_env(env=ab_env("0.1", engine="langgraph", TURNOUT_DEFAULT_ENGINE="workflow"))
    counts = Counter(engines_for(turnout).values())
    assert set(counts) == {"workflow", "langgraph"}
    assert abs(counts["langgraph"] / len(USERS) - 0.10) < 0.01


def test_ab_split_is_sticky_across_separately_built_objects() -> None:
    first = engines_for(Turnout.from_env(env=ab_env("0.1")))
    second = engines_for(Turnout.from_env(env=ab_env("0.1")))
    assert first == second


def test_raising_the_split_keeps_every_treated_user_treated() -> None:
    at_10 = engines_for(Turnout.from_env(env=ab_env("0.1")))
    at_50 = engines_for(Turnout.from_env(env=ab_env("0.5")))
    at_100 = engines_for(Turnout.from_env(env=ab_env("1.0")))
    treated_10 = {user for user, engine in at_10.items() if engine == "workflow"}
    treated_50 = {user for user, engine in at_50.items() if engine == "workflow"}
    assert treated_10 <= treated_50
    assert abs(len(treated_50) / len(USERS) - 0.5) < 0.015
    assert set(at_100.values()) == {"workflow"}


@pytest.mark.parametrize("split", ["0", "0.0"])
def test_zero_split_keeps_everyone_on_the_default(split: str) -> None:
    turnout = Turnout.from_env(env=ab_env(split))
    assert set(engines_for(turnout, USERS[:2000]).values()) == {"legacy"}


def test_split_may_be_written_as_a_percentage() -> None:
    assert engines_for(Turnout.from_env(env=ab_env("10%"))) == engines_for(
        Turnout.from_env(env=ab_env("0.1"))
    )


def test_ab_testing_without_a_split_uses_ten_percent() -> None:
    env = {"COORDINATOR_ENGINE": "workflow", "AB_TESTING_ENABLED": "true"}
    assert engines_for(Turnout.from_env(env=env)) == engines_for(Turnout.from_env(env=ab_env("0.1")))


@pytest.mark.parametrize("disabled", [{}, {"AB_TESTING_ENABLED": "false"}])
def test_split_is_ignored_while_ab_testing_is_off(disabled: dict[str, str]) -> None:
    env = {"COORDINATOR_ENGINE": "workflow", "AB_TRAFFIC_SPLIT": "0.1", **disabled}
    assert set(engines_for(Turnout.from_env(env=env), USERS[:2000]).values()) == {"workflow"}


@pytest.mark.parametrize("word", ["true", "TRUE", "1", "yes", "on", " True "])
def test_boolean_spellings(word: str) -> None:
    turnout = Turnout.from_env(env=ab_env("0.5", AB_TESTING_ENABLED=word))
    assert set(engines_for(turnout, USERS[:500]).values()) == {"legacy", "workflow"}


def test_ab_testing_replaces_a_file_split_and_keeps_its_targeting(tmp_path: Path) -> None:
    data = json.loads(json.dumps(COORDINATOR_FILE))
    data["flags"]["coordinator"]["rules"].append({"name": "canary", "split": {"legacy": 50, "langgraph": 50}})
    turnout = Turnout.from_file(write_config(tmp_path, data), env=ab_env("0.1"))

    counts = Counter(engines_for(turnout).values())
    assert set(counts) == {"legacy", "workflow"}
    assert abs(counts["workflow"] / len(USERS) - 0.10) < 0.01
    premium = turnout.decide("coordinator", RoutingContext("u1", {"plan": "premium"}))
    assert (premium.engine, premium.rule) == ("langgraph", "premium")


def test_ab_testing_off_switches_file_splits_off() -> None:
    data = {
        "flags": {
            "coordinator": {
                "variants": ["legacy", "workflow"],
                "default": "legacy",
                "rules": [{"split": {"legacy": 50, "workflow": 50}}],
            }
        }
    }
    assert set(engines_for(Turnout(data), USERS[:500]).values()) == {"legacy", "workflow"}
    off = Turnout(data, env={"AB_TESTING_ENABLED": "false"})
    assert set(engines_for(off, USERS[:500]).values()) == {"legacy"}


# --- ENABLE_ML_INTENT / ENABLE_CONTEXT_AWARE ------------------------------------------


@pytest.mark.parametrize(("word", "enabled"), [("true", True), ("false", False), ("0", False), ("on", True)])
def test_enable_ml_intent_toggles_intent(word: str, enabled: bool) -> None:
    classifier = RefundClassifier()
    assert (
        Turnout.from_env(env={"ENABLE_ML_INTENT": word}, classifier=classifier).config.intent.enabled
        is enabled
    )
    # It overrides the file either way.
    config = {"intent": {"enabled": not enabled}}
    assert (
        Turnout(config, env={"ENABLE_ML_INTENT": word}, classifier=classifier).config.intent.enabled
        is enabled
    )


def test_intent_stays_as_configured_without_the_switch() -> None:
    assert Turnout({"intent": {"enabled": True}}, classifier=RefundClassifier()).config.intent.enabled
    assert Turnout.from_env(env={}).config.intent.enabled is False


async def test_the_environment_only_canary_starts_with_the_built_in_intent_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TURNOUT_CACHE_DIR", str(tmp_path / "cache"))
    env = {
        "COORDINATOR_ENGINE": "workflow",
        "ENABLE_ML_INTENT": "true",
        "ENABLE_CONTEXT_AWARE": "true",
        "AB_TESTING_ENABLED": "true",
        "AB_TRAFFIC_SPLIT": "0.1",
    }
    turnout = Turnout.from_env(env=env)
    for name in SWITCH_ENGINES:
        turnout.add_engine(name, lambda message: message)
    await turnout.start()
    try:
        assert turnout.config.intent.model is None
        assert turnout.classify("我要转人工").label == "human_agent"  # the shipped model
        assert list((tmp_path / "cache").glob("customer_service-*.bin"))
    finally:
        await turnout.stop()


class RefundClassifier:
    def predict(self, text: str) -> Any:
        from turnout import Intent

        return Intent("refund", 0.99)


def test_enable_ml_intent_switches_intent_rules(tmp_path: Path) -> None:
    path = write_config(tmp_path, COORDINATOR_FILE)
    context = {"text": "I want my money back"}

    on = Turnout.from_file(path, env={"ENABLE_ML_INTENT": "true"}, classifier=RefundClassifier())
    off = Turnout.from_file(path, env={"ENABLE_ML_INTENT": "false"}, classifier=RefundClassifier())

    assert on.decide("coordinator", RoutingContext("u1", **context)).rule == "refunds"
    assert off.decide("coordinator", RoutingContext("u1", **context)).reason == Reason.DEFAULT


def test_enable_context_aware_switches_attribute_rules(tmp_path: Path) -> None:
    path = write_config(tmp_path, COORDINATOR_FILE)
    premium = RoutingContext("u1", {"plan": "premium"})

    default = Turnout.from_file(path, env={}).decide("coordinator", premium)
    on = Turnout.from_file(path, env={"ENABLE_CONTEXT_AWARE": "true"}).decide("coordinator", premium)
    off = Turnout.from_file(path, env={"ENABLE_CONTEXT_AWARE": "false"}).decide("coordinator", premium)

    assert (default.engine, default.rule) == ("langgraph", "premium")
    assert (on.engine, on.rule) == ("langgraph", "premium")
    assert (off.engine, off.reason) == ("legacy", Reason.DEFAULT)


def test_context_aware_off_keeps_intent_rules(tmp_path: Path) -> None:
    path = write_config(tmp_path, COORDINATOR_FILE)
    env = {"ENABLE_CONTEXT_AWARE": "false", "ENABLE_ML_INTENT": "true"}
    turnout = Turnout.from_file(path, env=env, classifier=RefundClassifier())
    decision = turnout.decide("coordinator", RoutingContext("u1", {"plan": "premium"}, text="refund please"))
    assert (decision.engine, decision.rule) == ("workflow", "refunds")


# --- env overrides a file -------------------------------------------------------------


def test_coordinator_engine_overrides_the_file_default(tmp_path: Path) -> None:
    path = write_config(tmp_path, COORDINATOR_FILE)
    turnout = Turnout.from_file(path, env={"COORDINATOR_ENGINE": "workflow"})
    assert turnout.decide("coordinator", RoutingContext("u1")).engine == "workflow"
    # The file's targeting still applies on top of the new default.
    assert turnout.decide("coordinator", RoutingContext("u1", {"plan": "premium"})).engine == "langgraph"


def test_turnout_config_names_the_file_for_from_env(tmp_path: Path) -> None:
    path = write_config(tmp_path, COORDINATOR_FILE)
    env = {"TURNOUT_CONFIG": str(path), "TURNOUT_TELEMETRY__SNAPSHOT_INTERVAL_S": "5"}
    turnout = Turnout.from_env(env=env)
    assert turnout.config.flags["coordinator"].rules[0].name == "premium"
    assert turnout.config.telemetry.snapshot_interval_s == 5


def test_settings_override_the_file(tmp_path: Path) -> None:
    path = write_config(tmp_path, COORDINATOR_FILE)
    turnout = Turnout.from_file(path, env={"TURNOUT_TELEMETRY__SNAPSHOT_INTERVAL_S": "5"})
    assert turnout.config.telemetry.snapshot_interval_s == 5
    assert Turnout.from_file(path, env={}).config.telemetry.snapshot_interval_s == 10


def test_reload_applies_the_environment_again(tmp_path: Path) -> None:
    path = write_config(tmp_path, COORDINATOR_FILE)
    turnout = Turnout.from_file(path, env={"COORDINATOR_ENGINE": "workflow"})
    turnout.reload(path)
    assert turnout.decide("coordinator", RoutingContext("u1")).engine == "workflow"


# --- TURNOUT_* settings ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "raw", "read"),
    [
        ("TURNOUT_TELEMETRY__SNAPSHOT_INTERVAL_S", "5", lambda c: c.telemetry.snapshot_interval_s == 5),
        ("TURNOUT_TELEMETRY__SNAPSHOT_INTERVAL_S", "2m", lambda c: c.telemetry.snapshot_interval_s == 120),
        ("TURNOUT_TELEMETRY__JSONL_PATH", "var/m.jsonl", lambda c: c.telemetry.jsonl_path == "var/m.jsonl"),
        (
            "TURNOUT_TELEMETRY__EXPORTERS",
            '["jsonl", "logging"]',
            lambda c: c.telemetry.exporters == ["jsonl", "logging"],
        ),
        (
            "TURNOUT_TELEMETRY__THRESHOLDS__P99_MS_WARNING",
            "150",
            lambda c: c.telemetry.thresholds.p99_ms_warning == 150,
        ),
        ("TURNOUT_EVENTS__ENABLED", "false", lambda c: c.events.enabled is False),
        ("TURNOUT_EVENTS__SINK", "jsonl:///tmp/e.jsonl", lambda c: c.events.sink == "jsonl:///tmp/e.jsonl"),
        ("TURNOUT_INTENT__MIN_CONFIDENCE", "0.8", lambda c: c.intent.min_confidence == 0.8),
        ("TURNOUT_HTTP__USER_HEADER", "X-Account", lambda c: c.http.user_header == "X-Account"),
        ("TURNOUT_ROUTING__SPLIT_RULES", "false", lambda c: c.routing.split_rules is False),
        ("turnout_telemetry__log_format", "json", lambda c: c.telemetry.log_format == "console"),
    ],
)
def test_turnout_settings(name: str, raw: str, read: Any) -> None:
    assert read(Turnout.from_env(env={name: raw}).config)


def test_variables_outside_the_turnout_namespace_are_ignored() -> None:
    env = {"PATH": "/usr/bin", "TURNOUT_FLAG": "coordinator", "HOME": "/root", "TURNOUTX__Y": "1"}
    assert Turnout.from_env(env=env).config == Turnout.from_env(env={}).config


def test_turnout_flag_names_the_flag_the_switches_drive() -> None:
    turnout = Turnout.from_env(env={"TURNOUT_FLAG": "orchestrator", "COORDINATOR_ENGINE": "workflow"})
    assert set(turnout.config.flags) == {"orchestrator"}
    assert turnout.decide("orchestrator", RoutingContext("u")).engine == "workflow"


# --- bad values name the variable and the value ---------------------------------------


@pytest.mark.parametrize(
    ("env", "issue"),
    [
        (ab_env("abc"), ("env.AB_TRAFFIC_SPLIT", "abc")),
        (ab_env("1.5"), ("env.AB_TRAFFIC_SPLIT", "1.5")),
        (ab_env("-0.1"), ("env.AB_TRAFFIC_SPLIT", "-0.1")),
        (ab_env("nan"), ("env.AB_TRAFFIC_SPLIT", "nan")),
        (ab_env("150%"), ("env.AB_TRAFFIC_SPLIT", "150%")),
        ({"AB_TRAFFIC_SPLIT": "abc"}, ("env.AB_TRAFFIC_SPLIT", "abc")),
        ({"ENABLE_ML_INTENT": "maybe"}, ("env.ENABLE_ML_INTENT", "maybe")),
        ({"ENABLE_CONTEXT_AWARE": "sometimes"}, ("env.ENABLE_CONTEXT_AWARE", "sometimes")),
        ({"AB_TESTING_ENABLED": "yep"}, ("env.AB_TESTING_ENABLED", "yep")),
        ({"COORDINATOR_ENGINE": "rocket"}, ("env.COORDINATOR_ENGINE", "rocket")),
        ({"TURNOUT_DEFAULT_ENGINE": "rocket"}, ("env.TURNOUT_DEFAULT_ENGINE", "rocket")),
        (ab_env("0.1", engine="rocket"), ("env.COORDINATOR_ENGINE", "rocket")),
        ({"TURNOUT_FOO__BAR": "1"}, ("env.TURNOUT_FOO__BAR", "1")),
        ({"TURNOUT_TELEMETRY__": "1"}, ("env.TURNOUT_TELEMETRY__", "1")),
        ({"TURNOUT_TELEMETRY__JSONL_PATH__X": "1"}, ("env.TURNOUT_TELEMETRY__JSONL_PATH__X", "1")),
    ],
)
def test_bad_environment_values(env: dict[str, str], issue: tuple[str, str]) -> None:
    assert env_issues(env) == [issue]


def test_several_bad_variables_are_reported_together() -> None:
    env = {
        "AB_TESTING_ENABLED": "true",
        "AB_TRAFFIC_SPLIT": "abc",
        "ENABLE_ML_INTENT": "maybe",
        "TURNOUT_FOO__BAR": "1",
    }
    assert sorted(env_issues(env)) == [
        ("env.AB_TRAFFIC_SPLIT", "abc"),
        ("env.ENABLE_ML_INTENT", "maybe"),
        ("env.TURNOUT_FOO__BAR", "1"),
    ]


def test_environment_errors_say_where_they_come_from() -> None:
    with pytest.raises(ConfigError) as caught:
        Turnout.from_env(env={"COORDINATOR_ENGINE": "rocket"})
    assert caught.value.source == "environment"
    assert "env.COORDINATOR_ENGINE" in str(caught.value)
    assert "'rocket'" in str(caught.value)
    assert "langgraph" in caught.value.issues[0].message


def test_coordinator_engine_must_be_a_variant_of_the_file_flag(tmp_path: Path) -> None:
    data = {"flags": {"coordinator": {"variants": ["legacy", "workflow"], "default": "legacy"}}}
    path = write_config(tmp_path, data)
    with pytest.raises(ConfigError) as caught:
        Turnout.from_file(path, env={"COORDINATOR_ENGINE": "langgraph"})
    assert [(i.path, i.value) for i in caught.value.issues] == [("env.COORDINATOR_ENGINE", "langgraph")]


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("TURNOUT_TELEMETRY__SNAPSHOT_INTERVAL_S", "soon"),
        ("TURNOUT_TELEMETRY__SNAPSHOT_INTERVAL_S", "0"),
        ("TURNOUT_TELEMETRY__SNAPSHOT_INTERVAL", "5"),
        ("TURNOUT_EVENTS__ENABLED", "maybe"),
        ("TURNOUT_INTENT__MIN_CONFIDENCE", "2"),
        ("TURNOUT_TELEMETRY__LOG_FORMAT", "xml"),
    ],
)
def test_a_bad_setting_is_reported_at_its_variable(name: str, raw: str) -> None:
    assert env_issues({name: raw}) == [(f"env.{name}", raw)]


def test_a_setting_typo_names_the_closest_setting() -> None:
    with pytest.raises(ConfigError) as caught:
        Turnout.from_env(
            env={
                "TURNOUT_TELEMETRY__SNAPSHOT_INTERVAL": "5",
                "TURNOUT_TELEMETRI__X": "1",
                "TURNOUT_EVENTS__ZZZ": "x",
            }
        )
    messages = {issue.path: issue.message for issue in caught.value.issues}
    assert messages["env.TURNOUT_TELEMETRY__SNAPSHOT_INTERVAL"] == (
        "unknown setting; did you mean TURNOUT_TELEMETRY__SNAPSHOT_INTERVAL_S?"
    )
    assert messages["env.TURNOUT_TELEMETRI__X"] == "unknown setting; did you mean TURNOUT_TELEMETRY__…?"
    assert messages["env.TURNOUT_EVENTS__ZZZ"] == "unknown setting (check for a typo)"


def test_setting_text_that_looks_like_json_stays_text_where_text_is_expected() -> None:
    config = Turnout.from_env(
        env={"TURNOUT_HTTP__USER_HEADER": "123", "TURNOUT_HTTP__VARIANT_HEADER": "null"}
    ).config
    assert config.http.user_header == "123"
    assert config.http.variant_header is None


def test_a_misshapen_file_section_is_reported_not_crashed_on() -> None:
    config = {"intent": "yes", "flags": {"coordinator": "workflow"}}
    issues = dict(env_issues({"ENABLE_ML_INTENT": "true", "COORDINATOR_ENGINE": "workflow"}, config))
    assert issues["intent"] == "yes"
    assert issues["flags.coordinator"] == "workflow"


def test_coordinator_engine_alone_rolls_back_a_canary_from_the_file() -> None:
    canary = json.loads(json.dumps(COORDINATOR_FILE))
    canary["flags"]["coordinator"]["rules"].append(
        {"name": "canary", "experiment": "wf", "split": {"legacy": 50, "workflow": 50}}
    )
    before = Turnout(canary)
    assert "workflow" in set(engines_for(before, USERS[:500]).values())
    rolled_back = Turnout(canary, env={"COORDINATOR_ENGINE": "legacy"})
    assert set(engines_for(rolled_back, USERS[:500]).values()) == {"legacy"}
    premium = rolled_back.decide("coordinator", RoutingContext("u1", {"plan": "premium"}))
    assert premium.reason is Reason.TARGETING_MATCH  # targeting rules stay (ENABLE_CONTEXT_AWARE)


def test_engine_options_holding_live_objects_are_not_copied() -> None:
    marker = object()
    data = {
        "engines": {"legacy": {"options": {"live": marker}}},
        "flags": {"coordinator": {"variants": ["legacy"], "default": "legacy"}},
    }
    turnout = Turnout(data, env={"COORDINATOR_ENGINE": "legacy"})
    assert turnout.config.engines["legacy"].options["live"] is marker


def test_secrets_in_bad_settings_are_masked_in_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        Turnout.from_env(env={"TURNOUT_EVENTS__SINKS": "postgres://app:S3cretPw@db.internal/analytics"})
    assert "S3cretPw" not in str(caught.value)
    assert caught.value.issues[0].path == "env.TURNOUT_EVENTS__SINKS"
