"""A live app for the dashboard tests: a guarded canary with traffic, metrics windows and exposures.

`build_scene` runs real requests through a Turnout and writes one metrics line per simulated
interval (the telemetry's own snapshot, stamped `interval_s` apart, ending now), so every page
has figures, charts have several points, and the rollout has checks and history.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from turnout.context import RoutingContext
from turnout.router import Turnout

READ_TOKEN = "read-token-for-tests"
WRITE_TOKEN = "write-token-for-tests"
INTERVALS = 8
# The rollout started a few minutes ago, so its first step holds while the tests run.
_START = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
USERS = 300


def tokens() -> dict[str, str]:
    """The digests of the tests' tokens, with their roles (as `[admin] tokens` holds them)."""
    return {
        hashlib.sha256(READ_TOKEN.encode()).hexdigest(): "read",
        hashlib.sha256(WRITE_TOKEN.encode()).hexdigest(): "write",
    }


def scene_config(root: Path) -> dict[str, Any]:
    """Two flags: a guarded canary of the workflow engine, and a plain split with a VIP rule."""
    return {
        "engines": {"legacy": {}, "workflow": {"fallback": "legacy"}},
        "flags": {
            "coordinator": {
                "variants": ["legacy", "workflow"],
                "default": "legacy",
                "rules": [
                    {"name": "staff", "when": {"plan": "staff"}, "serve": "workflow"},
                    {
                        "name": "canary",
                        "experiment": "workflow-canary",
                        "split": {"legacy": 80, "workflow": 20},
                        "guardrails": {
                            "interval": "30s",
                            "failure_threshold": 3,
                            "min_samples": 20,
                            "action": "rollback",
                            "min_success_rate": 0.9,
                        },
                        "rollout": {"steps": [20, 50, 100], "every": "1h", "start": _START},
                    },
                ],
            },
            "summaries": {
                "variants": ["legacy", "workflow"],
                "default": "legacy",
                "rules": [{"name": "everyone", "split": {"legacy": 50, "workflow": 50}}],
            },
        },
        # The scene writes its own metrics lines, stamped 10 s apart; no snapshot loop adds to them.
        "telemetry": {"exporters": [], "jsonl_path": str(root / "metrics.jsonl")},
        "events": {"sink": f"sqlite:///{root / 'events.db'}", "flush_interval_s": 0.05},
        "state": {"url": f"sqlite:///{root / 'state.db'}"},
        "rollouts": {"notifiers": []},
    }


@dataclass
class Scene:
    """The Turnout and where its files are."""

    turnout: Turnout
    root: Path

    def served(self, flag: str, users: int = 200) -> Mapping[str, int]:
        """How many of `users` users each variant of `flag` is served to now."""
        counts: dict[str, int] = {}
        for index in range(users):
            variant = self.turnout.decide(flag, RoutingContext(f"user-{index}")).variant
            counts[variant] = counts.get(variant, 0) + 1
        return counts


def make_turnout(root: Path, *, seed: int = 3) -> Turnout:
    """The scene's Turnout with its two engines (the workflow engine fails 3% of its requests)."""
    rng = random.Random(seed)
    turnout = Turnout(scene_config(root), env={})
    turnout.add_engine("legacy", lambda message: f"legacy: {message}")

    def workflow(message: str) -> str:
        if rng.random() < 0.03:
            raise RuntimeError("upstream model timed out")
        return f"workflow: {message}"

    turnout.add_engine("workflow", workflow, version="2.1.0")
    return turnout


async def drive(turnout: Turnout, *, seed: int = 3) -> None:
    """Start `turnout`, send traffic over `INTERVALS` intervals and write their metrics lines."""
    rng = random.Random(seed)
    await turnout.start()
    end = datetime.now(UTC)
    interval = timedelta(seconds=10)
    path = Path(turnout.config.telemetry.jsonl_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as out:
        for number in range(INTERVALS):
            for index in range(USERS):
                context = RoutingContext(
                    f"user-{index}", attributes={"intent": rng.choice(["order", "refund"])}
                )
                await turnout.run("coordinator", "where is my order?", context=context)
                await turnout.run("summaries", "summarise this", context=context)
            snapshot = turnout.telemetry.take()
            stamp = end - interval * (INTERVALS - 1 - number)
            out.write(snapshot.model_copy(update={"timestamp": stamp}).model_dump_json() + "\n")
    turnout.registry.register("workflow", "2.1.0", description="linear workflow, prompt v7", actor="tests")
    turnout.registry.promote("workflow", "2.1.0", "validated", actor="tests")
    await turnout.rollouts.tick()
    turnout.rollouts.pause("coordinator", reason="looking at the numbers", actor="tests")
    turnout.rollouts.resume("coordinator", reason="numbers look fine", actor="tests")
    await turnout.events.aflush()


async def build_scene(root: Path) -> Scene:
    """A started Turnout with the scene's traffic behind it."""
    turnout = make_turnout(root)
    await drive(turnout)
    return Scene(turnout, root)
