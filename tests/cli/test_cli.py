"""The `turnout` command: validate, and that every sub-command is wired."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from turnout.cli import main

GOOD = """
[engines.legacy]
target = "my_engines:legacy"
[engines.workflow]
target = "my_engines:workflow"
fallback = "legacy"
timeout_ms = 500

[flags.coordinator]
variants = ["legacy", "workflow"]
default = "legacy"
  [[flags.coordinator.rules]]
  name = "canary"
  experiment = "wf"
  split = { legacy = 90, workflow = 10 }
"""

BAD = """
[engines.a]
fallback = "b"
[engines.b]
fallback = "a"
[flags.c]
variants = ["a", "b"]
default = "a"
defualt = "b"
  [[flags.c.rules]]
  when = { plan = { "$foo" = 1 } }
  split = { a = 50, b = 40 }
"""


@pytest.fixture(autouse=True)
def _restore_sys_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))  # main() puts the working directory on it


def test_validate_summarises_a_good_file_importing_targets_from_the_working_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_engines.py").write_text(
        "def legacy(m):\n    return m\n\nasync def workflow(m):\n    return m\n"
    )
    (tmp_path / "turnout.toml").write_text(GOOD)
    assert main(["validate", "turnout.toml"]) == 0
    out = capsys.readouterr().out
    assert "turnout.toml: OK" in out
    assert "my_engines:workflow" in out and "fallback -> legacy" in out
    assert "canary: -> split legacy 90% / workflow 10% [experiment wf]" in out


def test_validate_lists_every_error_and_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.toml").write_text(BAD)
    assert main(["validate", "bad.toml"]) == 1
    err = capsys.readouterr().err
    assert "flags.c.defualt: unknown key" in err
    assert "fallback cycle" in err


IN_CODE = """
[engines.workflow]
fallback = "legacy"
[http]
attribute_headers = { "X-Plan" = "plan" }
[flags.coordinator]
variants = ["legacy", "workflow", "langgraph"]
default = "legacy"
  [[flags.coordinator.rules]]
  when = { plan = "premium", country = "de" }
  serve = "langgraph"
"""

APP = """
from turnout import Turnout
turnout = Turnout.from_file("turnout.toml")

@turnout.engine("legacy")
def legacy(message):
    return message

@turnout.engine("workflow")
def workflow(message):
    return message

def create_turnout():
    return turnout
"""


def test_validate_warns_about_engines_it_cannot_see_and_unprovided_attributes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "turnout.toml").write_text(IN_CODE)
    assert main(["validate", "turnout.toml"]) == 0
    out = capsys.readouterr().out
    assert "turnout.toml: OK" in out
    assert "3 warnings:" in out
    assert "engines.workflow.fallback: no engine of this name in this file: fine if your app registers" in out
    # `workflow` is declared (for an engine from code); `legacy` and `langgraph` are not.
    assert "flags.coordinator.variants: no engine of this name in this file" in out
    assert "(got ['legacy', 'langgraph'])" in out
    assert "flags.coordinator.rules[0].when.country: no request carries this attribute" in out
    assert "turnout.attribute_unprovided" not in out  # the log line is not repeated


def test_validate_with_the_apps_engines_checks_fallbacks_for_real(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "turnout.toml").write_text(IN_CODE)
    (tmp_path / "my_app.py").write_text(APP)
    assert main(["validate", "turnout.toml", "--engines", "my_app:turnout"]) == 0
    out = capsys.readouterr().out
    assert "engines.workflow.fallback" not in out
    assert "(got ['langgraph'])" in out  # the one variant the app does not register

    (tmp_path / "turnout.toml").write_text(IN_CODE.replace('fallback = "legacy"', 'fallback = "legacyy"'))
    assert main(["validate", "turnout.toml", "--engines", "my_app:turnout"]) == 1
    err = capsys.readouterr().err
    assert "engines.workflow.fallback: unknown engine; declared: legacy, workflow (got 'legacyy')" in err

    assert main(["validate", "turnout.toml", "--engines", "my_app:nothing"]) == 1
    assert "--engines my_app:nothing: cannot import it" in capsys.readouterr().err
    assert (
        main(["validate", "turnout.toml", "--engines", "my_app:create_turnout"]) == 1
    )  # a factory works too
    assert "got 'legacyy'" in capsys.readouterr().err


def test_validate_reports_an_unparsable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["validate", "broken.json"]) == 1
    assert "broken.json" in capsys.readouterr().err


def test_dashboard_and_events_summary_are_wired(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["dashboard", str(tmp_path / "missing.jsonl")]) == 1
    assert "No metrics file" in capsys.readouterr().out
    line = {
        "timestamp": "2026-01-29T12:00:00Z", "interval_s": 10, "process": "h:1",
        "components": {"engine.legacy": {"total_requests": 10, "success_rate": 1.0,
                                         "latency_ms": {"mean": 1, "p50": 1, "p95": 2, "p99": 3, "max": 4}}},
    }  # fmt: skip
    (tmp_path / "m.jsonl").write_text(json.dumps(line) + "\n")
    assert main(["dashboard", str(tmp_path / "m.jsonl")]) == 0
    assert "engine.legacy" in capsys.readouterr().out
    assert main(["events", "summary", f"sqlite:///{tmp_path / 'none.db'}"]) == 1


def test_intent_commands_are_wired(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["intent", "train", "--help"])
    assert exited.value.code == 0
    assert "--output" in capsys.readouterr().out


def test_plugins_with_none_installed_says_how_to_get_them(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("turnout.plugins.installed_plugins", list)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "No turnout plugins installed." in out
    assert "pip install turnout-langgraph turnout-posthog" in out


def test_validate_reports_a_bad_target_together_with_schema_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "t.toml").write_text(
        '[engines.legacy]\ntarget = "nowhere_at_all:legacy"\n'
        '[flags.coordinator]\nvariants = ["legacy"]\ndefualt = "legacy"\n'
    )
    assert main(["validate", "t.toml"]) == 1
    err = capsys.readouterr().err
    assert "t.toml: 3 errors" in err
    assert "flags.coordinator.defualt: unknown key; did you mean `default`?" in err
    assert "engines.legacy.target: cannot import engine target 'nowhere_at_all:legacy'" in err
