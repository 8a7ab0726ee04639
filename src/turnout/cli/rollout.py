"""`turnout rollout status|promote|pause|resume|abort FLAG`: see and steer a guarded rollout.

The command reads and writes the state store the config names; running processes pick the
change up within one guardrail interval.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from turnout.config import TurnoutConfig, load_file, validate_config
from turnout.errors import ConfigError, TurnoutError
from turnout.failures import Failures
from turnout.rollouts.controller import Rollouts
from turnout.telemetry.metrics import MetricsRegistry

ACTIONS = ("status", "promote", "pause", "resume", "abort")


def add_rollout_command(subparsers: Any) -> None:
    """Add `turnout rollout ACTION FLAG` to the top-level `subparsers`."""
    rollout = subparsers.add_parser(
        "rollout",
        help="show or steer a guarded rollout: status, promote, pause, resume, abort",
        description="Show where a guarded rollout stands, or change it (recorded with who, when and why).",
    )
    rollout.add_argument("action", choices=ACTIONS)
    rollout.add_argument("flag")
    rollout.add_argument("--rule", help="the guarded rule, when the flag has several")
    rollout.add_argument("--reason", default="", help="why (kept in the audit log)")
    rollout.add_argument("--full", action="store_true", help="promote: go straight to the last step")
    rollout.add_argument(
        "--config",
        type=Path,
        default=None,
        help="the app's config file (default: $TURNOUT_CONFIG, else turnout.toml)",
    )
    rollout.add_argument("--json", action="store_true", help="print the status as JSON")


def run_rollout_command(args: argparse.Namespace) -> int:
    """Run `turnout rollout`; 0 on success, 1 when the action does not apply, 2 for a bad config."""
    path = args.config or Path(os.environ.get("TURNOUT_CONFIG") or "turnout.toml")
    try:
        config = validate_config(load_file(path), source=str(path))
        rollouts = rollouts_of(config, notify=args.action != "status")
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    try:
        if args.action == "status":
            status = rollouts.status(args.flag, rule=args.rule)
        elif args.action == "promote":
            status = rollouts.promote(args.flag, reason=args.reason, rule=args.rule, full=args.full)
        else:
            status = getattr(rollouts, args.action)(args.flag, reason=args.reason, rule=args.rule)
    except TurnoutError as exc:
        print(f"turnout rollout {args.action}: {exc}", file=sys.stderr)
        return 1
    finally:
        rollouts.close()
    print(json.dumps(_json(status), indent=2) if args.json else status.text())
    return 0


def rollouts_of(config: TurnoutConfig, *, notify: bool = False) -> Rollouts:
    """`config`'s guarded rollouts, outside the app: no checks loop; notifiers only with `notify`."""
    return Rollouts(
        {},
        lambda: config,
        MetricsRegistry(),
        clock=time.time,
        failures=Failures(),
        notifiers=None if notify else [],
    )


def _json(status: Any) -> dict[str, Any]:
    data = asdict(status)
    data["checks"] = [check.to_dict() for check in status.checks]
    return data
