"""`turnout shadow report`: how a flag's shadow engines compare with the served ones, per intent."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from turnout.errors import MissingExtraError
from turnout.shadow_report import render_text, shadow_report


def add_shadow_command(commands: Any) -> None:
    """Add `turnout shadow report` to `commands` (the `turnout` command's subparsers)."""
    shadow = commands.add_parser("shadow", help="how shadow engines compare with the served ones")
    subcommands = shadow.add_subparsers(dest="shadow_command", required=True)
    report = subcommands.add_parser(
        "report",
        help="per-intent match rate and latency difference of a flag's shadow engine",
        description="Per intent: match rate with its 95%% interval, latency of both engines and their "
        "difference with its 95%% interval, failures, skipped samples, and the worst mismatches.",
    )
    report.add_argument("flag")
    report.add_argument("path", nargs="?", default="logs/metrics.jsonl", help="metrics file (%(default)s)")
    report.add_argument("--since", help="only the last N (e.g. 30m, 24h, 7d), from per-interval windows")
    report.add_argument("--format", choices=("text", "json"), default="text")
    report.add_argument("--worst", type=int, default=5, help="mismatches to show (%(default)s)")


def run_shadow_command(args: argparse.Namespace) -> int:
    """Run `turnout shadow report`."""
    if not Path(args.path).is_file():
        print(f"{args.path}: no such metrics file (the jsonl exporter writes it)", file=sys.stderr)
        return 2
    try:
        report = shadow_report(args.path, args.flag, since=args.since, worst=args.worst)
    except ValueError as exc:
        print(f"--since {args.since!r}: {exc}", file=sys.stderr)
        return 2
    try:
        text = json.dumps(report.to_dict(), indent=2, ensure_ascii=False) if args.format == "json" else None
        print(text if text is not None else render_text(report))
    except MissingExtraError as exc:
        print(exc, file=sys.stderr)
        return 2
    return 0 if report.rows else 1
