"""Configuration from environment variables: the environment switches and `TURNOUT_*` settings.

Hand-written feature flags commonly use `COORDINATOR_ENGINE`, `ENABLE_ML_INTENT`,
`ENABLE_CONTEXT_AWARE`, `AB_TESTING_ENABLED` and `AB_TRAFFIC_SPLIT`; they keep working
unchanged and override whatever a config file says. See docs/configuration.md.
"""

from __future__ import annotations

import copy
import difflib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from turnout.config import TurnoutConfig, closest_key
from turnout.errors import ConfigError, ConfigIssue
from turnout.limits import depth_message, too_deep

SWITCH_ENGINES = ("legacy", "workflow", "langgraph")
DEFAULT_AB_SPLIT = 0.1
_SECTIONS = ("routing", "intent", "telemetry", "events", "http", "privacy", "plugins")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def apply_environment(data: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Return a copy of raw config `data` with the environment's settings applied on top."""
    deep = too_deep(data, "")
    if deep is not None:  # before deepcopy, which recurses
        raise ConfigError([ConfigIssue(deep, "...", depth_message())])
    result: dict[str, Any] = copy.deepcopy(dict(data), memo=_shared_options(data))
    issues: list[ConfigIssue] = []
    _apply_settings(result, env, issues)
    _apply_switches(result, env, issues)
    if issues:
        raise ConfigError(issues, source="environment")
    return result


def _apply_settings(data: dict[str, Any], env: Mapping[str, str], issues: list[ConfigIssue]) -> None:
    """`TURNOUT_TELEMETRY__SNAPSHOT_INTERVAL_S=5` sets `telemetry.snapshot_interval_s`."""
    for name in sorted(env):
        if not name.startswith("TURNOUT_") or "__" not in name:
            continue
        parts = [part.lower() for part in name[len("TURNOUT_") :].split("__")]
        if parts[0] not in _SECTIONS or not all(parts):
            close = difflib.get_close_matches(parts[0], _SECTIONS, n=1)
            hint = (
                f"did you mean TURNOUT_{close[0].upper()}__…?"
                if close
                else f"sections: {', '.join(_SECTIONS)}"
            )
            issues.append(ConfigIssue(f"env.{name}", env[name], f"unknown setting; {hint}"))
            continue
        value, problem = _setting(parts, env[name])
        if problem is not None:
            issues.append(ConfigIssue(f"env.{name}", env[name], problem))
            continue
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                issues.append(ConfigIssue(f"env.{name}", env[name], f"{part} is not a table"))
                break
            node = child
        else:
            node[parts[-1]] = value


def _apply_switches(data: dict[str, Any], env: Mapping[str, str], issues: list[ConfigIssue]) -> None:
    ml_intent = _flag(env, "ENABLE_ML_INTENT", issues)
    context_aware = _flag(env, "ENABLE_CONTEXT_AWARE", issues)
    ab_testing = _flag(env, "AB_TESTING_ENABLED", issues)
    # Checked even while A/B testing is off: a typo must not wait for the day it is switched on.
    share = _split(env, issues)
    if ml_intent is not None:
        _table(data, "intent")["enabled"] = ml_intent
    if context_aware is not None:
        _table(data, "routing")["attribute_rules"] = context_aware
    if ab_testing is False:
        _table(data, "routing")["split_rules"] = False
    if not ab_testing:
        share = None

    engine = env.get("COORDINATOR_ENGINE", "").strip() or None
    default = env.get("TURNOUT_DEFAULT_ENGINE", "").strip() or None
    if engine is None and default is None and share is None:
        return
    key = env.get("TURNOUT_FLAG", "").strip() or "coordinator"
    flags = _table(data, "flags")
    flag = flags.setdefault(key, {"variants": list(SWITCH_ENGINES), "default": "legacy"})
    if not (_is_list(flag, "variants") and _is_list(flag, "rules")):
        return  # the file's own shape error is reported by validation
    variants = flag.setdefault("variants", list(SWITCH_ENGINES))
    for name, value in (("COORDINATOR_ENGINE", engine), ("TURNOUT_DEFAULT_ENGINE", default)):
        if value is not None and value not in variants:
            issues.append(
                ConfigIssue(
                    f"env.{name}", value, f"not a variant of flag {key!r}: {', '.join(map(str, variants))}"
                )
            )
            return
    baseline = default or flag.get("default") or "legacy"
    # Either way the environment owns this flag's splits: as with hand-written switches, COORDINATOR_ENGINE
    # alone means "this engine", so it also rolls back a canary that a file defines.
    rules = [rule for rule in flag.get("rules", []) if not isinstance(rule, dict) or "split" not in rule]
    if not ab_testing:
        flag["default"] = engine or baseline
        if engine is not None:
            flag["rules"] = rules
        return
    flag["default"] = baseline
    treatment = engine or baseline
    percent = round((share if share is not None else DEFAULT_AB_SPLIT) * 100, 6)
    split = {baseline: 100.0} if treatment == baseline else {baseline: 100 - percent, treatment: percent}
    rules.append({"name": "ab-test", "experiment": f"{key}-ab", "split": split})
    flag["rules"] = rules


def _shared_options(data: Mapping[str, Any]) -> dict[int, Any]:
    """A deepcopy memo that keeps engine `options` by reference: they may hold live objects
    (a compiled graph, a tracer provider) that must not be copied, and no switch rewrites them."""
    engines = data.get("engines")
    if not isinstance(engines, Mapping):
        return {}
    return {
        id(options): options
        for engine in engines.values()
        if isinstance(engine, Mapping) and isinstance(options := engine.get("options"), Mapping)
    }


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    """`data[key]` as a table to write into; a scratch one if the file put something else there."""
    table = data.setdefault(key, {})
    return table if isinstance(table, dict) else {}


def _is_list(flag: Any, key: str) -> bool:
    return isinstance(flag, dict) and isinstance(flag.get(key, []), list)


def _flag(env: Mapping[str, str], name: str, issues: list[ConfigIssue]) -> bool | None:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    issues.append(ConfigIssue(f"env.{name}", raw, "expected true/false (1/0, yes/no, on/off)"))
    return None


def _split(env: Mapping[str, str], issues: list[ConfigIssue]) -> float | None:
    raw = env.get("AB_TRAFFIC_SPLIT")
    if raw is None or not raw.strip():
        return None
    try:
        share = float(raw.strip().rstrip("%")) / (100 if raw.strip().endswith("%") else 1)
    except ValueError:
        share = -1.0
    if not 0.0 <= share <= 1.0:
        issues.append(
            ConfigIssue("env.AB_TRAFFIC_SPLIT", raw, "expected a fraction between 0 and 1, e.g. 0.1")
        )
        return None
    return share


def _unknown(error: Any) -> str:
    """ "unknown setting; did you mean TURNOUT_TELEMETRY__SNAPSHOT_INTERVAL_S?" where one is close."""
    loc = tuple(error["loc"])
    close = closest_key(loc)
    if close is None:
        return "unknown setting (check for a typo)"
    setting = "__".join(str(part).upper() for part in (*loc[:-1], close))
    return f"unknown setting; did you mean TURNOUT_{setting}?"


def _setting(parts: list[str], raw: str) -> tuple[Any, str | None]:
    """The value a setting holds (JSON if it parses, else the text) or why it is invalid.

    Checked on its own, so a bad value is reported at its variable, not at a config path
    the user will not find in any file.
    """
    try:
        candidates = [json.loads(raw), raw]
    except (ValueError, RecursionError):
        candidates = [raw]
    if too_deep(candidates[0], "") is not None:
        return None, depth_message()
    problem: str | None = None
    for value in candidates:
        tree: Any = value
        for part in reversed(parts):
            tree = {part: tree}
        try:
            TurnoutConfig.model_validate(tree)
        except ValidationError as exc:
            error = exc.errors()[0]
            problem = problem or (_unknown(error) if error["type"] == "extra_forbidden" else error["msg"])
            continue
        return value, None
    return None, problem
