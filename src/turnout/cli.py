"""The `turnout` command: validate a config, run the demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from turnout.config import FlagConfig, RuleConfig, TurnoutConfig, load_file, validate_config
from turnout.errors import ConfigError, TurnoutError


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `turnout` console script."""
    parser = argparse.ArgumentParser(prog="turnout", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check a config file; print every error or a summary")
    validate.add_argument("file", type=Path)
    validate.add_argument("--env", action="store_true", help="apply the environment's overrides too")

    demo = commands.add_parser("demo", help="route synthetic traffic through three engines")
    demo.add_argument("--users", type=int, default=2000)
    demo.add_argument("--seed", type=int, default=7)

    args = parser.parse_args(argv)
    if args.command == "validate":
        return _validate(args.file, use_env=args.env)
    from turnout.demo import run_demo

    return run_demo(users=args.users, seed=args.seed)


def _validate(path: Path, *, use_env: bool) -> int:
    import os

    from turnout.environment import apply_environment
    from turnout.router import Turnout

    try:
        data = load_file(path)
        config = validate_config(apply_environment(data, os.environ if use_env else {}), source=str(path))
        Turnout(config)  # imports engine targets, so a bad `target` is reported here too
    except ConfigError as exc:
        print(f"{path}: {len(exc.issues)} error{'s' if len(exc.issues) != 1 else ''}", file=sys.stderr)
        for issue in exc.issues:
            print(f"  {issue}", file=sys.stderr)
        return 1
    except TurnoutError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    print(summary(config, str(path)))
    return 0


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
    return lines


def _rule_text(index: int, rule: RuleConfig) -> str:
    name = rule.name or f"rule-{index}"
    when = f" when {rule.when}" if rule.when else ""
    if rule.serve is not None:
        action = f"serve {rule.serve}"
    else:
        action = "split " + " / ".join(f"{v} {w:g}%" for v, w in (rule.split or {}).items())
    if rule.rollout is not None:
        steps = " -> ".join(f"{s:g}%" for s in rule.rollout.steps)
        action += f", rollout {steps} every {rule.rollout.every:g}s"
    experiment = f" [experiment {rule.experiment}]" if rule.experiment else ""
    disabled = " (disabled)" if not rule.enabled else ""
    return f"{name}:{when} -> {action}{experiment}{disabled}"


if __name__ == "__main__":
    raise SystemExit(main())
