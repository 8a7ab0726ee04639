"""`turnout report`: an experiment's results per variant with a verdict, as text, JSON or HTML."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from turnout.config import TurnoutConfig, load_file, validate_config
from turnout.errors import ConfigError, TurnoutError

DEFAULT_CONFIG = Path("turnout.toml")


def add_report_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `turnout report` to the command's subparsers."""
    rep = commands.add_parser(
        "report", help="an experiment's results per variant against control, with a verdict"
    )
    rep.add_argument("experiment", nargs="?", help="the `experiment` name of a split rule")
    rep.add_argument("--all", action="store_true", help="every experiment a rule of the config names")
    rep.add_argument(
        "--config", type=Path, help="the turnout config (default: ./turnout.toml if there is one)"
    )
    rep.add_argument("--events", help="the events database, URL or path (default: the config's events sink)")
    rep.add_argument("--metrics", help="metrics.jsonl (default: the config's telemetry.jsonl_path)")
    rep.add_argument("--format", choices=("text", "json", "html"), default="text")
    rep.add_argument("--by", metavar="ATTR", help="break down by intent or any routing attribute")
    rep.add_argument("--correction", choices=("holm", "bh"), help="multiple-testing adjustment")
    rep.add_argument("--sequential", action="store_true", help="always-valid intervals (safe to peek)")
    rep.add_argument("-o", "--output", type=Path, help="write here instead of standard output")


def run_report_command(args: argparse.Namespace) -> int:
    """Run `turnout report` with parsed arguments; exit status 2 for a bad config or request."""
    from turnout.analysis.html import render_html
    from turnout.analysis.render import render_text
    from turnout.analysis.report import report, running_experiments

    try:
        config = _config(args.config)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.all:
        names = running_experiments(config)
        if not names:
            print("no rule of the config names an experiment", file=sys.stderr)
            return 2
    elif args.experiment:
        names = [args.experiment]
    else:
        print("name an experiment, or give --all", file=sys.stderr)
        return 2
    try:
        reports = [
            report(
                name,
                config=config,
                events=args.events,
                metrics_path=args.metrics,
                by=args.by,
                correction=args.correction,
                sequential=args.sequential or None,
            )
            for name in names
        ]
    except (TurnoutError, ValueError) as exc:
        print(f"turnout report: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        data = [r.to_dict() for r in reports]
        text = json.dumps(data if args.all else data[0], indent=2, ensure_ascii=False) + "\n"
    elif args.format == "html":
        text = render_html(reports)
    else:
        # A terminal gets lines that fit it; a file or a pipe gets one table row per metric.
        width = shutil.get_terminal_size().columns if args.output is None and sys.stdout.isatty() else None
        text = "\n".join(render_text(r, width) for r in reports)
    if args.output is not None:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def _config(path: Path | None) -> TurnoutConfig:
    from turnout.environment import apply_environment

    if path is None and not DEFAULT_CONFIG.is_file():
        return validate_config(apply_environment({}, os.environ))
    chosen = path or DEFAULT_CONFIG
    return validate_config(apply_environment(load_file(chosen), os.environ), source=str(chosen))
