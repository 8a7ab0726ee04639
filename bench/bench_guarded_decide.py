"""What guardrails cost a decision: `decide()` on a time-only rollout vs the same rule with guardrails.

A guarded rule reads its step from an in-memory gate the rollouts loop keeps up to date, so the
hot path does no I/O either way; this shows the two cost the same. Interleaved rounds, best of N.

    .venv/bin/python bench/bench_guarded_decide.py            # 50k ids, 9 rounds
    .venv/bin/python bench/bench_guarded_decide.py --quick    # 10k ids, 3 rounds
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from turnout import RoutingContext, Turnout

RULE: dict[str, Any] = {
    "name": "canary",
    "experiment": "wf-canary",
    "split": {"legacy": 90, "workflow": 10},
    "rollout": {"steps": [10, 30, 50, 100], "every": "10m", "start": "2026-12-01T00:00:00Z"},
    "guardrails": {"min_success_rate": 0.95, "p99_ms": 3000},
}


def config(guarded: bool, state_dir: str) -> dict[str, Any]:
    rule = copy.deepcopy(RULE)
    if not guarded:
        del rule["guardrails"]
    return {
        "flags": {"coordinator": {"variants": ["legacy", "workflow"], "default": "legacy", "rules": [rule]}},
        "telemetry": {"exporters": []},
        "events": {"enabled": False},
        "state": {"url": f"sqlite:///{Path(state_dir) / 'state.db'}"},
        "rollouts": {"notifiers": []},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    ids, rounds = (10_000, 3) if args.quick else (50_000, 9)
    contexts = [RoutingContext(f"user-{i}") for i in range(ids)]
    # The rollout's first step for both: the time-only one is read from the clock, the guarded one
    # from its gate.
    start = datetime(2026, 12, 1, 0, 1, tzinfo=UTC).timestamp()
    with tempfile.TemporaryDirectory() as state_dir:
        turnouts = {
            name: Turnout(config(name == "guarded", state_dir), clock=lambda: start, env={})
            for name in ("time-only", "guarded")
        }
        best = dict.fromkeys(turnouts, float("inf"))
        for _ in range(rounds):
            for name, turnout in turnouts.items():
                began = time.perf_counter()
                for context in contexts:
                    turnout.decide("coordinator", context)
                best[name] = min(best[name], (time.perf_counter() - began) / ids * 1e6)
    for name, micros in best.items():
        print(f"{name:<10} {micros:6.2f} µs per decide (best of {rounds} rounds, {ids:,} ids)")


if __name__ == "__main__":
    main()
