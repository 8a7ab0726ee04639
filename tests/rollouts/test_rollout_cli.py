"""`turnout rollout status|promote|pause|resume|abort FLAG` on the config a user writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from turnout.cli import main

CONFIG = """
[flags.coordinator]
variants = ["legacy", "workflow"]
default = "legacy"

[[flags.coordinator.rules]]
name = "canary"
experiment = "wf-canary"
split = { legacy = 90, workflow = 10 }
rollout = { steps = [10, 30, 50, 100], every = "10m", start = "2026-12-01T00:00:00Z" }
  [flags.coordinator.rules.guardrails]
  interval = "30s"          # how often checks run (default 30s)
  failure_threshold = 3     # consecutive failed intervals before the action
  min_samples = 100         # fewer observations in the window = inconclusive
  action = "rollback"       # alert | pause | rollback
  min_success_rate = 0.95   # shorthand checks, as today
  p99_ms = 3000
  checks = [
    { metric = "cost_usd", max = 0.02 },
    { metric = "success_rate", no_worse_than_control_by = 0.02 },
  ]

[state]
url = "sqlite:///state/turnout_state.db"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "turnout.toml"
    path.write_text(CONFIG)
    return path


def test_status_pause_resume_abort_promote_from_the_command_line(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollout", "status", "coordinator", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "coordinator / canary: running at 10%   steps [10%] → 30% → 50% → 100%" in out
    assert "failed intervals in a row: 0 of 3 (then: rollback)" in out
    assert "next: moves to 30% once 10% has been held 10 min and an interval passes every check" in out

    assert (
        main(
            [
                "rollout",
                "pause",
                "coordinator",
                "--reason",
                "waiting for the release",
                "--config",
                str(config),
            ]
        )
        == 0
    )
    assert "paused at 10%" in capsys.readouterr().out
    assert main(["rollout", "resume", "coordinator", "--config", str(config)]) == 0
    assert main(["rollout", "promote", "coordinator", "--reason", "manual ok", "--config", str(config)]) == 0
    assert "running at 30%" in capsys.readouterr().out
    assert main(["rollout", "abort", "coordinator", "--reason", "tickets", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "rolled back at 30%" in out
    assert (
        "next: everyone the rule covers gets legacy; resume puts the same users back on workflow at 30%"
        in out
    )

    assert main(["rollout", "status", "coordinator", "--json", "--config", str(config)]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["state"], status["step"]) == ("rolled_back", 30)
    history = status["history"]
    assert [(e["action"], e["reason"]) for e in history] == [
        ("pause", "waiting for the release"),
        ("resume", ""),
        ("promote", "manual ok"),
        ("abort", "tickets"),
    ]
    assert all("@" in e["actor"] for e in history)


def test_an_action_that_does_not_apply_exits_1_with_why(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollout", "resume", "coordinator", "--config", str(config)]) == 1
    assert (
        "cannot resume a rollout that is running (only when paused or rolled_back)" in capsys.readouterr().err
    )
    assert main(["rollout", "status", "nope", "--config", str(config)]) == 1
    assert "flag 'nope': no rule with guardrails" in capsys.readouterr().err


def test_a_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(CONFIG.replace('action = "rollback"', 'action = "explode"'))
    assert main(["rollout", "status", "coordinator", "--config", str(bad)]) == 2
    assert "flags.coordinator.rules[0].guardrails.action" in capsys.readouterr().err


def test_the_bad_canary_demo_shows_a_rollback_and_why(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--scenario", "bad-canary"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # rich wraps long lines
    assert "advance: 30% after it held 10% for 2 min and passed" in out
    assert "rollback: workflow success rate 0." in out
    assert "< 0.95 over 602 requests in 3 consecutive 30 s intervals" in out
    assert "coordinator / canary: rolled back at 30%" in out
    assert "users on workflow now: 0 of 2,000" in out


def test_the_dashboard_shows_the_rollouts_of_its_config(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollout", "pause", "coordinator", "--reason", "checking", "--config", str(config)]) == 0
    capsys.readouterr()
    main(["dashboard", "logs/metrics.jsonl", "--config", str(config)])
    out = capsys.readouterr().out
    assert "🚦 ROLLOUTS" in out
    assert "coordinator / canary: paused at 10%" in out
    assert "next: frozen at 10% until resumed" in out
