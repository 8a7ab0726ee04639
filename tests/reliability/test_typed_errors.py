"""Loading and validation raise only turnout's typed errors, whatever the input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from turnout import ConfigError, Turnout
from turnout.conditions import compile_condition
from turnout.config import load_file, validate_config
from turnout.environment import apply_environment
from turnout.errors import ConditionError
from turnout.events import Event, SQLiteSink
from turnout.events.stats import EventStats
from turnout.limits import MAX_DEPTH

FUZZ = settings.get_profile("fuzz-run")


def rule_when(when: Any) -> dict[str, Any]:
    return {"flags": {"f": {"variants": ["a", "b"], "default": "a", "rules": [{"when": when, "serve": "b"}]}}}


def nested(depth: int, leaf: Any, key: str = "a") -> Any:
    for _ in range(depth):
        leaf = {key: leaf}
    return leaf


@pytest.mark.parametrize(
    ("when", "path", "message"),
    [
        ({"plan": {"$type": ["string"]}}, "when.plan.$type", "$type takes one of"),
        ({"plan": {"$type": {"a": 1}}}, "when.plan.$type", "$type takes one of"),
        ({"plan": {"$regex": "a{4294967296}"}}, "when.plan.$regex", "invalid regular expression"),
        (nested(900, {"plan": "free"}, "$not"), "when" + ".$not" * 50, "levels deep"),
    ],
)
def test_bad_conditions_are_config_errors_with_path_and_value(when: Any, path: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        validate_config(rule_when(when))
    (issue,) = caught.value.issues
    assert issue.path.startswith(f"flags.f.rules[0].{path}")
    assert message in issue.message
    assert str(caught.value)  # printing it does not recurse either


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.json", '{"flags": ' + "[" * 3000 + "]" * 3000 + "}"),
        ("deep.toml", "flags = " + "[" * 3000 + "]" * 3000),
        ("inline.toml", "flags = " + "{a = " * 3000 + "1" + "}" * 3000),
        ("tables.toml", "[" + ".".join(["a"] * 3000) + "]\n"),
    ],
)
def test_documents_nested_thousands_deep_are_config_errors(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ConfigError, match="levels deep"):
        validate_config(load_file(path))
    with pytest.raises(ConfigError, match="levels deep"):
        Turnout.from_file(path, env={})


def test_a_deep_document_built_in_code_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="levels deep") as caught:
        Turnout({"engines": {"e": {"target": "m:f", "options": nested(3000, 1)}}}, env={})
    assert caught.value.issues[0].path.startswith("engines.e.options.a.a")


def test_event_stats_turns_an_integer_sqlite_cannot_hold_into_a_value_error(tmp_path: Path) -> None:
    sink = SQLiteSink(tmp_path / "events.db")
    sink.write_sync([Event("query", "u1", {"n": 2})])
    with EventStats.open(tmp_path / "events.db") as stats:
        assert stats.count("query", where={"n": 2}) == 1
        with pytest.raises(ValueError, match="64 bits"):
            stats.count("query", where={"n": 2**70})


# -- fuzzing ---------------------------------------------------------------------------------

OPERATORS = [
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$all", "$elemMatch", "$size",
    "$exists", "$type", "$regex", "$not", "$and", "$or", "$nor", "$veq", "$vgt", "$vlte", "$bogus",
]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet="ab1.{}()[]*+?|^$\\-v", max_size=12),
    st.sampled_from(["string", "number", "1.2.3", "a{4294967296}", "(a+)+", "v1.0.0-rc.1"]),
)
keys = st.one_of(st.sampled_from(OPERATORS), st.sampled_from(["plan", "a.b", "a..b", "tags", "0", ""]))
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
    max_leaves=8,
)
attribute_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=4,
)


@settings(FUZZ)
@given(
    spec=st.dictionaries(keys, json_values, max_size=3),
    attributes=st.dictionaries(keys, attribute_values, max_size=3),
)
def test_conditions_compile_or_raise_condition_error_and_never_raise_when_called(
    spec: dict[str, Any], attributes: dict[str, Any]
) -> None:
    try:
        condition = compile_condition(spec)
    except ConditionError as exc:
        assert exc.path.startswith("when")
        return
    assert condition(attributes) in (True, False)


SECTIONS = ["engines", "flags", "routing", "intent", "telemetry", "events", "http", "plugins", "bogus"]
FIELDS = [
    "variants", "default", "rules", "when", "serve", "split", "rollout", "steps", "every", "start",
    "target", "fallback", "timeout_ms", "options", "api_key", "exporters", "sink", "sinks",
    "attribute_headers", "user_header", "kind", "overrides", "allow_overrides", "hash", "enabled",
]  # fmt: skip
document_values = st.recursive(
    scalars | st.sampled_from(["legacy", "m:f", "10s", "sqlite:///:memory:", "jsonl"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(FIELDS) | st.sampled_from(["legacy", "f"]) | keys, children, max_size=5
        )
    ),
    max_leaves=12,
)


@settings(FUZZ)
@given(document=st.dictionaries(st.sampled_from(SECTIONS), document_values, max_size=3))
def test_config_documents_validate_or_raise_config_error(document: dict[str, Any]) -> None:
    try:
        validate_config(apply_environment(document, {}))
    except ConfigError as exc:
        assert exc.issues and all(issue.path for issue in exc.issues)
        assert str(exc)


ENV_NAMES = [
    "COORDINATOR_ENGINE", "TURNOUT_DEFAULT_ENGINE", "AB_TESTING_ENABLED", "AB_TRAFFIC_SPLIT",
    "ENABLE_ML_INTENT", "ENABLE_CONTEXT_AWARE", "TURNOUT_FLAG", "TURNOUT_TELEMETRY__SNAPSHOT_INTERVAL_S",
    "TURNOUT_EVENTS__SINKS", "TURNOUT_HTTP__ATTRIBUTE_HEADERS", "TURNOUT_ROUTING__DEFAULT_ENGINE",
    "TURNOUT_BOGUS__X", "TURNOUT_HTTP__", "TURNOUT_INTENT__OPTIONS__A",
]  # fmt: skip
env_values = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["legacy", "true", "0.5", "150%", "[]", "{}", "1e999", "[" * 5000, "nan"]),
    json_values.map(json.dumps),
)


@settings(FUZZ)
@given(env=st.dictionaries(st.sampled_from(ENV_NAMES), env_values, max_size=5))
def test_environment_variables_apply_or_raise_config_error(env: dict[str, str]) -> None:
    base = {"flags": {"coordinator": {"variants": ["legacy", "workflow"], "default": "legacy"}}}
    try:
        validate_config(apply_environment(base, env))
    except ConfigError as exc:
        assert exc.issues and str(exc)


def test_the_fuzz_profile_runs_enough_cases() -> None:
    assert FUZZ.max_examples >= 2000
    assert MAX_DEPTH == 64
