"""The `turnout` command: check a config, watch the metrics and events, train intent models, run the demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from turnout.config import FlagConfig, RuleConfig, ShadowConfig, TurnoutConfig, load_file, validate_config
from turnout.errors import ConfigError, ConfigIssue, TurnoutError
from turnout.references import attribute_issues, fallback_issues, shadow_issues, variant_issues


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `turnout` console script."""
    parser = argparse.ArgumentParser(prog="turnout", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    validate = commands.add_parser("validate", help="check a config file; print every error or a summary")
    validate.add_argument("file", type=Path, help="a TOML or JSON config file")
    validate.add_argument("--env", action="store_true", help="apply the environment's overrides too")
    validate.add_argument(
        "--engines",
        metavar="MODULE:ATTR",
        help="your app's Turnout (or a function returning it): its engines registered in code count",
    )

    _add_demo_command(commands)

    commands.add_parser("plugins", help="list installed plugins: group, name, distribution, version")

    from turnout.intent.cli import add_intent_commands

    intent = commands.add_parser("intent", help="train and evaluate the fastText intent classifier")
    add_intent_commands(intent.add_subparsers(required=True))

    _add_events_command(commands)

    from turnout.shadow_report import add_shadow_command

    add_shadow_command(commands)

    dash = commands.add_parser("dashboard", help="per-engine and per-variant metrics from metrics.jsonl")
    dash.add_argument("path", nargs="?", default="logs/metrics.jsonl")
    dash.add_argument("--since", help="only the last N (e.g. 30m, 24h, 7d), from per-interval windows")
    dash.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    dash.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes with --watch")
    dash.add_argument("--config", type=Path, help="a turnout config whose health thresholds to use")

    _add_import_command(commands)

    from turnout.rollouts.cli import add_rollout_command

    add_rollout_command(commands)
    from turnout.analysis.cli import add_report_command

    add_report_command(commands)
    from turnout.admin.cli import add_admin_commands

    add_admin_commands(commands)

    args = parser.parse_args(argv)
    # Like uvicorn's --app-dir default: engine targets and plugin options name modules of the
    # project the command runs in.
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    if args.command == "validate":
        return _validate(args.file, use_env=args.env, engines=args.engines)
    if args.command == "plugins":
        return _plugins()
    if args.command == "dashboard":
        return _dashboard(args)
    if args.command == "events":
        from turnout.events.summary import summary_main

        return summary_main(args.url, args.since)
    if args.command == "import":
        return _import_growthbook(args.file, args.output)
    if args.command == "shadow":
        from turnout.shadow_report import run_shadow_command

        return run_shadow_command(args)
    if args.command == "rollout":
        from turnout.rollouts.cli import run_rollout_command

        return run_rollout_command(args)
    if args.command == "report":
        from turnout.analysis.cli import run_report_command

        return run_report_command(args)
    if args.command in ("serve", "config", "registry"):
        from turnout.admin.cli import run_admin_command

        return run_admin_command(args)
    if args.command == "intent":
        from turnout.intent.cli import run_intent_command

        return run_intent_command(args)
    if args.scenario == "bad-canary":
        from turnout.canary_demo import run_bad_canary

        return run_bad_canary(seed=args.seed)
    from turnout.demo import run_demo

    return run_demo(users=args.users, seed=args.seed, serve=args.serve, port=args.port)


def _add_events_command(commands: Any) -> None:
    events = commands.add_parser("events", help="aggregates of tracked events").add_subparsers(
        dest="events_command", required=True
    )
    summary_cmd = events.add_parser("summary", help="events per day, top events, support-bot rates")
    summary_cmd.add_argument("url", nargs="?", default="sqlite:///turnout_events.db")
    summary_cmd.add_argument("--since", default="30d", help="e.g. 7d, 30d, 24h")


def _add_import_command(commands: Any) -> None:
    imports = commands.add_parser("import", help="convert another tool's flags to turnout config")
    sources = imports.add_subparsers(dest="import_source", required=True)
    growthbook = sources.add_parser("growthbook", help="GrowthBook features (SDK payload JSON) to TOML")
    growthbook.add_argument("file", type=Path, help="features.json, or the SDK payload with `features`")
    growthbook.add_argument("-o", "--output", type=Path, help="write the TOML here (default: print it)")


def _import_growthbook(path: Path, output: Path | None) -> int:
    import json

    from turnout.growthbook import GrowthBookImportError, import_features

    try:
        import tomli_w
    except ImportError:
        print('writing TOML needs tomli-w: pip install "turnout[cli]"', file=sys.stderr)
        return 1
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object of features")
        config = import_features(payload)
        validate_config(config, source=str(path))
    except OSError as exc:
        print(f"{path}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except ConfigError as exc:
        print(f"{path}: the converted flags do not validate: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"{path}: not JSON features: {exc}", file=sys.stderr)
        return 1
    except GrowthBookImportError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 1
    text = tomli_w.dumps(config)
    if output is None:
        print(text, end="")
    else:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {len(config['flags'])} flags to {output}", file=sys.stderr)
    return 0


def _validate(path: Path, *, use_env: bool, engines: str | None = None) -> int:
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


def _dashboard(args: argparse.Namespace) -> int:
    from turnout.dashboard import dashboard_main
    from turnout.rollouts.cli import rollouts_of

    telemetry = rollouts = None
    if args.config is not None:
        try:
            config = validate_config(load_file(args.config), source=str(args.config))
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        telemetry = config.telemetry
        rollouts = rollouts_of(config)
    try:
        return dashboard_main(
            args.path,
            args.since,
            args.watch,
            args.interval,
            telemetry=telemetry,
            rollouts=rollouts.texts if rollouts is not None else None,
        )
    finally:
        if rollouts is not None:
            rollouts.close()


def _plugins() -> int:
    from turnout.plugins import DISABLE_ENV, GROUPS, autoload_enabled, installed_plugins

    infos = installed_plugins()
    if not infos:
        print("No turnout plugins installed.")
        print("The first-party ones: pip install turnout-langgraph turnout-posthog")
        print("(LangGraph engines; the PostHog exporter and event sink). Others register under the")
        print("entry-point groups " + ", ".join(GROUPS) + ".")
        return 0
    header = ("group", "name", "distribution", "version", "loads")
    rows = [
        (i.group, i.name, i.distribution, i.version, "yes" if i.loads else f"NO: {i.error}") for i in infos
    ]
    widths = [max(len(str(row[c])) for row in [header, *rows]) for c in range(4)]
    for row in [header, *rows]:
        print(
            "  ".join(str(cell).ljust(width) for cell, width in zip(row[:4], widths, strict=True))
            + "  "
            + row[4]
        )
    if not autoload_enabled():
        print(f"\nnote: {DISABLE_ENV}=1 — configs cannot use these by name")
    return 0 if all(i.loads for i in infos) else 1


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


def _add_demo_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser("demo", help="route synthetic traffic through three engines")
    demo.add_argument("--users", type=int, default=2000, help="synthetic users (%(default)s)")
    demo.add_argument("--seed", type=int, default=7, help="for the users, their messages and the fake LLM")
    demo.add_argument(
        "--scenario",
        choices=["chat", "bad-canary"],
        default="chat",
        help="chat: the example app under traffic; bad-canary: a failing canary rolled back on its own",
    )
    demo.add_argument(
        "--serve",
        action="store_true",
        help="then keep serving the example app and its web dashboard (on this machine only) until Ctrl-C",
    )
    demo.add_argument("--port", type=int, default=8000, help="the port --serve listens on (%(default)s)")


if __name__ == "__main__":
    raise SystemExit(main())
