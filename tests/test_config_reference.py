"""docs/config-reference.md is generated from the configuration models and must not drift."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from turnout.config import TurnoutConfig
from turnout.config_reference import MissingMeaning, keys_without_meaning, main, render

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "config-reference.md"


def test_the_reference_in_docs_is_the_one_the_models_generate() -> None:
    assert REFERENCE.read_text(encoding="utf-8") == render(), (
        "docs/config-reference.md is out of date: run `make docs` (python -m turnout.config_reference)"
    )


def test_every_key_has_a_meaning() -> None:
    assert keys_without_meaning() == []


def test_a_key_without_a_docstring_is_found() -> None:
    class Inner(BaseModel):
        model_config = ConfigDict(use_attribute_docstrings=True)
        explained: int = 1
        """What it is."""
        bare: int = 2

    class Outer(BaseModel):
        model_config = ConfigDict(use_attribute_docstrings=True)
        inner: Inner = Inner()
        """A table."""

    assert keys_without_meaning(Outer) == ["inner.bare"]


def test_every_section_and_key_is_listed() -> None:
    text = render()
    for section in (
        "engines.NAME",
        "flags.KEY",
        "routing",
        "intent",
        "telemetry",
        "events",
        "http",
        "plugins",
    ):
        assert f"## `[{section}]`" in text
    assert "## `[[flags.KEY.rules]]`" in text
    assert "## `rollout` in `[[flags.KEY.rules]]`" in text
    assert '| `snapshot_interval_s` | duration | `"10s"` |' in text
    assert "| `variants` | list of string | required |" in text
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) >= sum(1 for _ in TurnoutConfig.model_fields)


def test_check_mode_reports_drift_and_write_mode_fixes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reference.md"
    out.write_text("stale\n", encoding="utf-8")
    assert main(["--check", "--output", str(out)]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(["--output", str(out)]) == 0
    assert main(["--check", "--output", str(out)]) == 0


def test_render_refuses_a_key_without_a_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("turnout.config_reference.keys_without_meaning", lambda: ["intent.model"])
    with pytest.raises(MissingMeaning, match=r"intent\.model"):
        render()
