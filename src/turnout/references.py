"""What a configuration names outside its own file: engines registered in code, request attributes.

A file may name an engine that the app registers in code (`@turnout.engine("legacy")`) after
the file is loaded, so such references are checked once the engines are known: when the app
starts, on reload, or at the first decision. Rule attributes are checked when the config
loads. `turnout validate` reports both as warnings.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator

from turnout.conditions import compile_condition
from turnout.config import TurnoutConfig, shadow_settings, unknown_message
from turnout.errors import ConditionError, ConfigIssue
from turnout.flags import INTENT_ATTRIBUTES


def fallback_issues(config: TurnoutConfig, engines: Collection[str]) -> list[ConfigIssue]:
    """Fallbacks that name an engine not in `engines` (the engines there are, by name)."""
    return [
        ConfigIssue(f"engines.{name}.fallback", engine.fallback, unknown_message("engine", engines))
        for name, engine in config.engines.items()
        if engine.fallback is not None and engine.fallback not in engines
    ]


def shadow_issues(config: TurnoutConfig, engines: Collection[str]) -> list[ConfigIssue]:
    """Shadows that name an engine neither declared in the config nor in `engines`."""
    known = {*config.engines, *engines}
    return [
        ConfigIssue(f"{path}.engine", shadow.engine, unknown_message("engine", known))
        for path, _, _, shadow in shadow_settings(config)
        if shadow.engine not in known
    ]


def variant_issues(config: TurnoutConfig, engines: Collection[str]) -> list[ConfigIssue]:
    """Engine flags with variants that no engine in `engines` serves (one issue per flag)."""
    issues = []
    for key, flag in config.flags.items():
        missing = [variant for variant in flag.variants if variant not in engines]
        if flag.kind == "engine" and missing:
            issues.append(
                ConfigIssue(
                    f"flags.{key}.variants",
                    missing,
                    "no engine of this name (declare it under [engines] or register it in code); "
                    "requests for it are served by the default engine",
                )
            )
    return issues


def attribute_issues(config: TurnoutConfig) -> list[ConfigIssue]:
    """Rule conditions naming an attribute that no request can carry."""
    provided = {*config.http.attribute_headers.values(), *config.routing.attributes, *INTENT_ATTRIBUTES}
    return list(_unprovided(config, provided))


def _unprovided(config: TurnoutConfig, provided: set[str]) -> Iterator[ConfigIssue]:
    for key, flag in config.flags.items():
        for index, rule in enumerate(flag.rules):
            if not rule.when:
                continue
            path = f"flags.{key}.rules[{index}].when"
            try:
                condition = compile_condition(rule.when, path=path)
            except ConditionError:
                continue  # reported as an error by validation
            for name in sorted(condition.attributes - provided):
                yield ConfigIssue(
                    f"{path}.{name}",
                    name,
                    "no request carries this attribute: map a header to it in [http] attribute_headers, "
                    "or list it in [routing] attributes if your code sets it",
                )
