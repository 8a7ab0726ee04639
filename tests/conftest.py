"""Shared test setup."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _run_in_a_scratch_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Defaults such as logs/metrics.jsonl and turnout_events.db are relative to the working
    # directory: keep them out of the checkout.
    monkeypatch.chdir(tmp_path)
