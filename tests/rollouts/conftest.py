"""Rollout tests: a canary on a fake clock, traffic through real engines, state in a scratch store."""

from __future__ import annotations

from events.conftest import pg_url, postgres_dsn, postgres_server  # noqa: F401 - the events tests' PostgreSQL
