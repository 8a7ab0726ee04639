"""The `turnout` command: check a config, watch the metrics and events, train intent models, run the demo."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from turnout.config import load_file, validate_config
from turnout.errors import ConfigError


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `turnout` console script."""
    args = _parser().parse_args(argv)
    # Like uvicorn's --app-dir default: engine targets and plugin options name modules of the
    # project the command runs in.
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    return _run(args)


def _parser() -> argparse.ArgumentParser:
    # Each command group's module is imported when the command runs, so `turnout validate`
    # does not pay for fastText, rich or the admin app.
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

    from turnout.cli.intent import add_intent_commands

    intent = commands.add_parser("intent", help="train and evaluate the fastText intent classifier")
    add_intent_commands(intent.add_subparsers(required=True))

    _add_events_command(commands)

    from turnout.cli.shadow import add_shadow_command

    add_shadow_command(commands)

    dash = commands.add_parser("dashboard", help="per-engine and per-variant metrics from metrics.jsonl")
    dash.add_argument("path", nargs="?", default="logs/metrics.jsonl")
    dash.add_argument("--since", help="only the last N (e.g. 30m, 24h, 7d), from per-interval windows")
    dash.add_argument("--watch", action="store_true", help="refresh until Ctrl-C")
    dash.add_argument("--interval", type=float, default=2.0, help="seconds between refreshes with --watch")
    dash.add_argument("--config", type=Path, help="a turnout config whose health thresholds to use")

    from turnout.cli.growthbook import add_import_command

    add_import_command(commands)

    from turnout.cli.rollout import add_rollout_command

    add_rollout_command(commands)
    from turnout.cli.report import add_report_command

    add_report_command(commands)
    from turnout.cli.admin import add_admin_commands

    add_admin_commands(commands)
    return parser


def _run(args: argparse.Namespace) -> int:
    if args.command == "validate":
        from turnout.cli.validate import validate

        return validate(args.file, use_env=args.env, engines=args.engines)
    if args.command == "plugins":
        return _plugins()
    if args.command == "dashboard":
        return _dashboard(args)
    if args.command == "events":
        from turnout.cli.events import summary_main

        return summary_main(args.url, args.since)
    if args.command == "import":
        from turnout.cli.growthbook import import_growthbook

        return import_growthbook(args.file, args.output)
    if args.command == "shadow":
        from turnout.cli.shadow import run_shadow_command

        return run_shadow_command(args)
    if args.command == "rollout":
        from turnout.cli.rollout import run_rollout_command

        return run_rollout_command(args)
    if args.command == "report":
        from turnout.cli.report import run_report_command

        return run_report_command(args)
    if args.command in ("serve", "config", "registry"):
        from turnout.cli.admin import run_admin_command

        return run_admin_command(args)
    if args.command == "intent":
        from turnout.cli.intent import run_intent_command

        return run_intent_command(args)
    if args.scenario == "bad-canary":
        from turnout.cli.canary_demo import run_bad_canary

        return run_bad_canary(seed=args.seed)
    from turnout.cli.demo import run_demo

    return run_demo(users=args.users, seed=args.seed, serve=args.serve, port=args.port)


def _add_events_command(commands: Any) -> None:
    events = commands.add_parser("events", help="aggregates of tracked events").add_subparsers(
        dest="events_command", required=True
    )
    summary_cmd = events.add_parser("summary", help="events per day, top events, support-bot rates")
    summary_cmd.add_argument("url", nargs="?", default="sqlite:///turnout_events.db")
    summary_cmd.add_argument("--since", default="30d", help="e.g. 7d, 30d, 24h")


def _dashboard(args: argparse.Namespace) -> int:
    from turnout.cli.dashboard import dashboard_main
    from turnout.cli.rollout import rollouts_of

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
