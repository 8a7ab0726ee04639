"""`turnout report`: text, JSON, HTML, --all, --by, and errors that name the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_report import simulate  # the synthetic experiment of the report tests, same directory

from turnout.cli import main

CONFIG = """
[flags.coordinator]
variants = ["legacy", "workflow"]
default = "legacy"
  [[flags.coordinator.rules]]
  name = "canary"
  experiment = "wf"
  split = { legacy = 50, workflow = 50 }

[metrics.resolved]
type = "proportion"
event = "session.resolved"
where = { success = true }

[metrics.cost_usd]
type = "mean"
direction = "decrease"

[experiments.wf]
primary = "resolved"
guardrails = ["cost_usd"]

[events]
sink = "sqlite:///events.db"
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "turnout.toml").write_text(CONFIG)
    simulate(
        tmp_path,
        users={"legacy": 1500, "workflow": 1500},
        resolve={"legacy": {"refund": 0.3, "order_status": 0.4, "chitchat": 0.4}, "workflow": 0.5},
        cost={"legacy": 0.010, "workflow": 0.010},
    )
    return tmp_path


def test_text_report_from_the_project_config(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "wf"]) == 0
    out = capsys.readouterr().out
    assert "experiment wf (flag coordinator): workflow against control legacy" in out
    assert "workflow: SHIP" in out
    assert "no snapshot" in out or "cannot read" in out  # no metrics.jsonl in this project


def test_json_all_and_html(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--all", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [r["experiment"] for r in data] == ["wf"]
    assert data[0]["variants"][0]["verdict"]["decision"] == "ship"
    assert main(["report", "wf", "--format", "html", "-o", "wf.html", "--by", "intent"]) == 0
    assert "wrote wf.html" in capsys.readouterr().out
    page = (project / "wf.html").read_text()
    assert "<svg" in page and "By intent" in page


def test_by_intent_prints_suggested_rules(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "wf", "--by", "intent", "--correction", "bh"]) == 0
    out = capsys.readouterr().out
    assert "bh adjustment" in out
    assert 'when = { intent = "refund" }' in out


def test_errors_exit_2(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report"]) == 2
    assert "name an experiment" in capsys.readouterr().err
    (project / "bad.toml").write_text('[metrics.x]\ntype = "proportion"\n')
    assert main(["report", "wf", "--config", "bad.toml"]) == 2
    assert "metrics.x.event" in capsys.readouterr().err
    assert main(["report", "wf", "--by", "bad'key"]) == 2
    assert "property key" in capsys.readouterr().err
