"""What outlives a process and is shared by its replicas: rollout state, the audit log, metric windows.

SQLite by default (one file next to the SQLite events database); PostgreSQL when several hosts
share it (`[state] url = "postgresql://..."`).
"""

from __future__ import annotations

from pathlib import Path

from turnout.config import TurnoutConfig
from turnout.errors import TurnoutError
from turnout.state.store import AuditEntry, LeaderLock, Record, StateStore, Window

__all__ = [
    "AuditEntry",
    "LeaderLock",
    "Record",
    "StateStore",
    "Window",
    "may_hold_state",
    "open_store",
    "state_url",
]

DEFAULT_FILE = "turnout_state.db"


def state_url(config: TurnoutConfig) -> str:
    """`[state] url`, else turnout_state.db in the directory of the SQLite events database."""
    if config.state.url:
        return config.state.url
    sink = config.events.sink
    if sink.startswith("sqlite:///"):
        return f"sqlite:///{Path(sink.removeprefix('sqlite:///')).with_name(DEFAULT_FILE)}"
    return f"sqlite:///{DEFAULT_FILE}"


def may_hold_state(url: str) -> bool:
    """False when `url` is a SQLite file that does not exist yet (so there is nothing to read)."""
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).exists()
    return True


def open_store(url: str) -> StateStore:
    """The store a URL names: `sqlite:///path` or `postgresql://...`."""
    if url.startswith("sqlite:///"):
        from turnout.state.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from turnout.state.postgres import PostgresStore

        return PostgresStore(url)
    raise TurnoutError(f"state store URL {url!r}: expected sqlite:///path or postgresql://...")
