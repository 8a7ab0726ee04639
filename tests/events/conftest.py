"""A real PostgreSQL for the events tests: one throwaway server per session, one schema per test.

The server comes from `tests/pg_server.py`, which installs Debian's `postgresql` first when
the server programs are missing (as root, with apt-get). If it cannot be had the PostgreSQL
tests are skipped with the reason, unless TURNOUT_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

import pg_server


def _unavailable(why: str) -> Any:
    if os.environ.get("TURNOUT_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (TURNOUT_REQUIRE_POSTGRES=1) but unavailable: {why}")
    pytest.skip(f"PostgreSQL unavailable: {why}")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[pg_server.PostgresServer]:
    """A running throwaway server; tests may `stop()` and `start()` it (same port, same data)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable('psycopg is not installed: pip install "turnout[postgres]"')
    try:
        server = pg_server.PostgresServer()
        server.start()
    except pg_server.PostgresUnavailable as exc:
        _unavailable(str(exc))
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def postgres_dsn(postgres_server: pg_server.PostgresServer) -> str:
    """The URL of the session's test database (`postgresql://postgres@127.0.0.1:PORT/turnout_test`)."""
    return postgres_server.dsn


@pytest.fixture
def pg_url(postgres_server: pg_server.PostgresServer) -> Iterator[str]:
    """The test database seen through a fresh schema of this test's own (dropped afterwards)."""
    import psycopg

    schema = f"test_{secrets.token_hex(6)}"
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    yield f"{postgres_server.dsn}?options=-csearch_path%3D{schema}"
    if not postgres_server.running:  # a test that stopped the server and failed before restarting it
        postgres_server.start()
    with psycopg.connect(postgres_server.dsn, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")
