"""`turnout demo --scenario bad-canary`: a canary that turns bad is rolled back on its own, with why.

Simulated time (30 s intervals pass instantly): the workflow engine serves 10% of users well,
the rollout moves to 30%, then the engine starts failing; three failed intervals later the
guardrails roll it back and every user of the rule is served by legacy again.
"""

from __future__ import annotations

import asyncio
import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from turnout.context import RoutingContext
from turnout.rollouts.checks import Outcome
from turnout.rollouts.notifiers import Notice
from turnout.router import Turnout

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
USERS = 2000
HEALTHY_INTERVALS = 5
FAILURE_RATE = 0.4


def _config(state_url: str) -> dict[str, Any]:
    return {
        "engines": {"legacy": {}, "workflow": {"fallback": "legacy", "circuit_breaker": {"enabled": False}}},
        "flags": {
            "coordinator": {
                "variants": ["legacy", "workflow"],
                "default": "legacy",
                "rules": [
                    {
                        "name": "canary",
                        "experiment": "workflow-canary",
                        "split": {"legacy": 90, "workflow": 10},
                        "rollout": {"steps": [10, 30, 50, 100], "every": "2m", "start": START.isoformat()},
                        "guardrails": {
                            "interval": "30s",
                            "failure_threshold": 3,
                            "min_samples": 100,
                            "action": "rollback",
                            "min_success_rate": 0.95,
                            "p99_ms": 3000,
                        },
                    }
                ],
            }
        },
        "telemetry": {"exporters": []},
        "events": {"enabled": False},
        "state": {"url": state_url},
        "rollouts": {"notifiers": []},
    }


class _Clock:
    def __init__(self) -> None:
        self.now = START.timestamp()

    def __call__(self) -> float:
        return self.now


def run_bad_canary(*, seed: int = 7) -> int:
    """Run the scenario and print each interval's checks, the rollback and its reason."""
    from rich.console import Console

    console = Console()
    rng = random.Random(seed)
    clock = _Clock()
    broken = False
    notices: list[Notice] = []

    def workflow(message: str) -> str:
        if broken and rng.random() < FAILURE_RATE:
            raise RuntimeError("workflow engine: upstream model timed out")
        return f"workflow: {message}"

    class _Printer:
        def notify(self, notice: Notice) -> None:
            notices.append(notice)

    with tempfile.TemporaryDirectory(prefix="turnout-demo-") as scratch:
        turnout = Turnout(_config(f"sqlite:///{Path(scratch) / 'turnout_state.db'}"), clock=clock, env={})
        turnout.add_engine("legacy", lambda message: f"legacy: {message}")
        turnout.add_engine("workflow", workflow)
        turnout.rollouts._notifiers.append(_Printer())
        console.print(
            "[bold]bad canary[/]: the workflow engine goes out to 10% of users with guardrails "
            "(success rate ≥ 0.95, P99 ≤ 3 s; 3 failed 30 s intervals in a row roll it back).\n"
            f"After {HEALTHY_INTERVALS} healthy intervals it starts failing {FAILURE_RATE:.0%} "
            "of its requests."
        )

        async def interval() -> None:
            for index in range(USERS):
                await turnout.run(
                    "coordinator", "where is my order?", context=RoutingContext(f"user-{index}")
                )
            clock.now += 30.0
            await turnout.rollouts.tick()

        async def main() -> None:
            nonlocal broken
            number = 0
            while number < 20:
                number += 1
                broken = number > HEALTHY_INTERVALS
                await interval()
                status = turnout.rollouts.status("coordinator")
                when = datetime.fromtimestamp(clock.now, UTC).strftime("%H:%M:%S")
                check = status.checks[0] if status.checks else None
                mark = {Outcome.PASS: "[green]pass[/]", Outcome.FAIL: "[red]FAIL[/]"}.get(
                    check.outcome if check else Outcome.INCONCLUSIVE, "[yellow]inconclusive[/]"
                )
                reason = check.reason if check else "no checks yet"
                console.print(f"{when}  {status.state:<11} {status.step:>4g}%  {mark}  {reason}")
                for notice in notices:
                    colour = "red" if notice.action == "rollback" else "cyan"
                    console.print(f"          [{colour}]{notice.action}[/]: {notice.reason}")
                notices.clear()
                if status.state == "rolled_back":
                    break
            await turnout.stop()

        asyncio.run(main())
        status = turnout.rollouts.status("coordinator")
        treated = sum(
            turnout.decide("coordinator", RoutingContext(f"user-{i}")).variant == "workflow"
            for i in range(USERS)
        )
        console.print(f"\n{status.text()}")
        console.print(
            f"\nusers on workflow now: {treated} of {USERS:,}. In an app, `turnout rollout resume "
            "coordinator` would put the same users back; docs/rollouts.md explains it all."
        )
        turnout.rollouts.close()
    return 0
