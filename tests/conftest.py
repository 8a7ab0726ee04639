"""Shared test setup."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def _model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("turnout-cache")


@pytest.fixture(autouse=True)
def _run_in_a_scratch_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, _model_cache: Path) -> None:
    # Defaults such as logs/metrics.jsonl and turnout_events.db are relative to the working
    # directory: keep them out of the checkout. The built-in intent model is trained once per
    # test session, outside the user's cache.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TURNOUT_CACHE_DIR", str(_model_cache))
