"""`turnout validate`: every error of a config file in one run, or a summary of what it routes."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from turnout.config import FlagConfig, RuleConfig, ShadowConfig, TurnoutConfig, load_file, validate_config
from turnout.errors import ConfigError, ConfigIssue, TurnoutError
from turnout.references import attribute_issues, fallback_issues, shadow_issues, variant_issues


def validate(path: Path, *, use_env: bool, engines: str | None = None) -> int:
    from structlog.testing import capture_logs

    try:
        # What loading logs (attribute warnings, the app's own start-up) is printed below instead.
        with capture_logs():
            config, declared, in_code = _load_for_validate(path, use_env=use_env, engines=engines)
    except ConfigError as exc:
        print(f"{path}: {len(exc.issues)} error{'s' if len(exc.issues) != 1 else ''}", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    except TurnoutError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    print(summary(config, str(path)))
    if in_code is not None:
        warnings = variant_issues(config, declared | in_code)
    else:
        # Without the app, an engine declared under [engines] with no target is taken to be
        # registered in code; anything else named is reported as something to check.
        known = declared | set(config.engines)
        unknown = fallback_issues(config, known) + shadow_issues(config, known)
        warnings = [_in_code(issue) for issue in unknown]
        warnings += [_in_code(issue) for issue in variant_issues(config, known)]
    warnings += attribute_issues(config)
    if warnings:
        print(f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}:")
        for issue in warnings:
            print(f"  {issue}")
    return 0


def _load_for_validate(
    path: Path, *, use_env: bool, engines: str | None
) -> tuple[TurnoutConfig, set[str], set[str] | None]:
    """The config, the engines it builds, and those registered in code (None: not asked)."""
    import os

    from turnout.environment import apply_environment
    from turnout.router import Turnout

    data = apply_environment(load_file(path), os.environ if use_env else {})
    try:
        config = validate_config(data, source=str(path))
    except ConfigError as exc:
        # Engine targets are imported only once the file validates: try them now as well, so
        # one run reports every problem.
        reported = {issue.path for issue in exc.issues}
        targets = [issue for issue in _target_issues(data) if issue.path not in reported]
        raise ConfigError([*exc.issues, *targets], source=exc.source) from None
    declared = set(Turnout(config).engines)  # imports engine targets: a bad `target` is reported here
    in_code = _code_engines(engines) if engines is not None else None
    known = declared | in_code if in_code is not None else declared
    if in_code is not None and (missing := fallback_issues(config, known) + shadow_issues(config, known)):
        raise ConfigError(missing, source=str(path))
    return config, declared, in_code


def _target_issues(data: dict[str, Any]) -> list[ConfigIssue]:
    """Engine `target`s of raw config data that do not import."""
    from turnout.engines import import_target

    engines = data.get("engines")
    issues = []
    for name, engine in engines.items() if isinstance(engines, dict) else ():
        target = engine.get("target") if isinstance(engine, dict) else None
        if isinstance(target, str):
            try:
                import_target(target)
            except TurnoutError as exc:
                issues.append(ConfigIssue(f"engines.{name}.target", target, str(exc)))
    return issues


def _in_code(issue: ConfigIssue) -> ConfigIssue:
    message = (
        "no engine of this name in this file: fine if your app registers it in code (check with --engines)"
    )
    return ConfigIssue(issue.path, issue.value, message)


def _code_engines(spec: str) -> set[str]:
    """Engine names from `module:attr`: a Turnout (or a function returning one), a mapping of
    engines, or a list of names."""
    from turnout.imports import ImportTargetError, resolve

    try:
        found = resolve(spec)
    except ImportTargetError as exc:
        raise TurnoutError(f"--engines {spec}: cannot import it: {exc}") from None
    if callable(found):
        found = found()
    names = getattr(found, "engines", found)
    if isinstance(names, str) or not isinstance(names, Iterable):
        raise TurnoutError(f"--engines {spec}: expected a Turnout, a mapping or a list of engine names")
    return {str(name) for name in names}


def summary(config: TurnoutConfig, source: str) -> str:
    """A one-screen description of engines, flags and their rules."""
    lines = [f"{source}: OK"]
    if config.engines:
        lines.append("engines:")
        for name, engine in config.engines.items():
            where = engine.target or (f"plugin {engine.plugin}" if engine.plugin else "registered in code")
            extras = [f"v{engine.version}"] if engine.version else []
            extras += [f"timeout {engine.timeout_ms:g} ms"] if engine.timeout_ms else []
            extras += [f"fallback -> {engine.fallback}"] if engine.fallback else []
            lines.append(f"  {name:<12} {where}" + (f"  ({', '.join(extras)})" if extras else ""))
    lines.append("flags:")
    for key, flag in config.flags.items():
        lines.extend(_flag_lines(key, flag))
    switches = [
        f"intent {'on' if config.intent.enabled else 'off'}",
        f"attribute rules {'on' if config.routing.attribute_rules else 'off'}",
        f"split rules {'on' if config.routing.split_rules else 'off'}",
    ]
    lines.append("switches: " + ", ".join(switches))
    return "\n".join(lines)


def _flag_lines(key: str, flag: FlagConfig) -> list[str]:
    state = "" if flag.enabled else "  [DISABLED: serves the default]"
    lines = [f"  {key}: {' | '.join(flag.variants)}  default={flag.default}{state}"]
    if flag.overrides:
        lines.append(f"    overrides: {len(flag.overrides)} targeting keys")
    for index, rule in enumerate(flag.rules):
        lines.append(f"    {index + 1}. {_rule_text(index, rule)}")
    lines.append(f"    else -> {flag.default}")
    if flag.shadow is not None:
        lines.append(f"    {_shadow_text(flag.shadow)}")
    return lines


def _shadow_text(shadow: ShadowConfig) -> str:
    return (
        f"shadow: {shadow.engine} beside the served engine for {shadow.sample:.0%} of users, "
        f"compared by {shadow.comparator}, never served"
    )


def _rule_text(index: int, rule: RuleConfig) -> str:
    name = rule.name or f"rule-{index}"
    when = f" when {rule.when}" if rule.when else ""
    if rule.serve is not None:
        action = f"serve {rule.serve}"
    else:
        action = "split " + " / ".join(f"{v} {w:g}%" for v, w in (rule.split or {}).items())
        if rule.coverage < 1:
            action += f", coverage {rule.coverage:.4g}"
    if rule.rollout is not None:
        steps = " -> ".join(f"{s:g}%" for s in rule.rollout.steps)
        action += f", rollout {steps} every {rule.rollout.every:g}s"
    if rule.guardrails is not None:
        from turnout.rollouts.checks import describe

        checks = ", ".join(describe(check) for check in rule.guardrails.all_checks())
        action += f", guarded by {checks} ({rule.guardrails.action} after "
        action += f"{rule.guardrails.failure_threshold} failed {rule.guardrails.interval:g}s intervals)"
    experiment = f" [experiment {rule.experiment}]" if rule.experiment else ""
    disabled = " (disabled)" if not rule.enabled else ""
    shadow = f"; {_shadow_text(rule.shadow)}" if rule.shadow is not None else ""
    return f"{name}:{when} -> {action}{experiment}{shadow}{disabled}"
