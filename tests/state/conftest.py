"""State stores for the tests: SQLite in a scratch directory, and PostgreSQL in a schema of its own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from events.conftest import pg_url, postgres_server  # noqa: F401 - fixtures shared with the events tests
from turnout.state import StateStore, open_store


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store's URL, once per kind of store."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state' / 'turnout_state.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(store_url: str) -> Iterator[StateStore]:
    """An open store of each kind."""
    opened = open_store(store_url)
    yield opened
    opened.close()
