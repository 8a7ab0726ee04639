"""A canary app for the rollout tests: `legacy` always works, `workflow` fails while told to."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from turnout import RoutingContext, Turnout
from turnout.rollouts import Notice

START = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
INTERVAL = 30.0
USERS = [f"user-{i}" for i in range(1000)]

CANARY: dict[str, Any] = {
    "name": "canary",
    "experiment": "wf-canary",
    "split": {"legacy": 90, "workflow": 10},
    "rollout": {"steps": [10, 30, 50, 100], "every": "2m", "start": "2026-12-01T00:00:00Z"},
    "guardrails": {
        "interval": "30s",
        "failure_threshold": 3,
        "min_samples": 50,
        "action": "rollback",
        "min_success_rate": 0.95,
        "p99_ms": 3000,
    },
}


def canary_config(state_url: str, **guardrails: Any) -> dict[str, Any]:
    """The canary flag; keyword arguments change its guardrails."""
    rule = copy.deepcopy(CANARY)
    rule["guardrails"].update(guardrails)
    return {
        "engines": {"legacy": {}, "workflow": {"fallback": "legacy"}},
        "flags": {"coordinator": {"variants": ["legacy", "workflow"], "default": "legacy", "rules": [rule]}},
        "telemetry": {"exporters": []},
        "events": {"enabled": False},
        "state": {"url": state_url},
        "rollouts": {"notifiers": []},
    }


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Canary:
    """A Turnout serving the canary, with a switch that makes `workflow` fail."""

    def __init__(self, state_url: str, clock: FakeClock, **guardrails: Any) -> None:
        self.clock = clock
        self.failing = False
        self.notices: list[Notice] = []
        self.turnout = Turnout(canary_config(state_url, **guardrails), clock=clock, env={})
        self.turnout.add_engine("legacy", lambda message: f"legacy:{message}")
        self.turnout.add_engine("workflow", self._workflow)
        self.turnout.rollouts._notifiers.append(self)

    def _workflow(self, message: str) -> str:
        if self.failing:
            raise RuntimeError("workflow broke")
        return f"workflow:{message}"

    def notify(self, notice: Notice) -> None:
        self.notices.append(notice)

    async def traffic(self, users: list[str] = USERS) -> None:
        for user in users:
            await self.turnout.run("coordinator", "hi", context=RoutingContext(user))

    def treated(self, users: list[str] = USERS) -> set[str]:
        return {
            u for u in users if self.turnout.decide("coordinator", RoutingContext(u)).variant == "workflow"
        }

    async def interval(self, users: list[str] = USERS) -> str:
        """One interval of traffic, then the checks; the rollout's state afterwards."""
        await self.traffic(users)
        self.clock.now += INTERVAL
        await self.turnout.rollouts.tick()
        return self.turnout.rollouts.status("coordinator").state
