"""The SQLite state store: one file (WAL mode) for every process of one host, a file lock for the leader."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from turnout.state.store import AuditEntry, LeaderLock, Record, StateStore, Window

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS turnout_state (
        namespace TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
        version INTEGER NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (namespace, key))""",
    """CREATE TABLE IF NOT EXISTS turnout_audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT, at REAL NOT NULL, namespace TEXT NOT NULL,
        key TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL,
        before TEXT, after TEXT, details TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS turnout_audit_key ON turnout_audit (namespace, key, id)",
    """CREATE TABLE IF NOT EXISTS turnout_windows (
        scope TEXT NOT NULL, replica TEXT NOT NULL, start REAL NOT NULL, end_at REAL NOT NULL,
        data TEXT NOT NULL, PRIMARY KEY (scope, replica, end_at))""",
    "CREATE INDEX IF NOT EXISTS turnout_windows_end ON turnout_windows (scope, end_at)",
)


class SqliteStore(StateStore):
    """State in one SQLite file; processes on one host share it, the leader holds `<file>.lock`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.url = f"sqlite:///{self.path}"
        if self.path.parent != Path():
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                self._db.execute(statement)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def get(self, namespace: str, key: str) -> Record | None:
        with self._lock:
            row = self._db.execute(
                "SELECT value, version, updated_at FROM turnout_state WHERE namespace = ? AND key = ?",
                (namespace, key),
            ).fetchone()
        return None if row is None else Record(json.loads(row[0]), row[1], row[2])

    def items(self, namespace: str) -> dict[str, Record]:
        with self._lock:
            rows = self._db.execute(
                "SELECT key, value, version, updated_at FROM turnout_state WHERE namespace = ?", (namespace,)
            ).fetchall()
        return {key: Record(json.loads(value), version, at) for key, value, version, at in rows}

    def put(
        self, namespace: str, key: str, value: dict[str, Any], *, at: float, expect: int | None = None
    ) -> bool:
        text = json.dumps(value, sort_keys=True)
        with self._transaction() as db:
            row = db.execute(
                "SELECT version FROM turnout_state WHERE namespace = ? AND key = ?", (namespace, key)
            ).fetchone()
            current = 0 if row is None else int(row[0])
            if expect is not None and expect != current:
                return False
            db.execute(
                """INSERT INTO turnout_state (namespace, key, value, version, updated_at)
                   VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace, key)
                   DO UPDATE SET value = excluded.value, version = excluded.version,
                                 updated_at = excluded.updated_at""",
                (namespace, key, text, current + 1, at),
            )
        return True

    def audit(self, entry: AuditEntry) -> None:
        with self._transaction() as db:
            db.execute(
                """INSERT INTO turnout_audit
                   (at, namespace, key, actor, action, reason, before, after, details)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (
                    entry.at,
                    entry.namespace,
                    entry.key,
                    entry.actor,
                    entry.action,
                    entry.reason,
                    _dump(entry.before),
                    _dump(entry.after),
                    json.dumps(entry.details, sort_keys=True),
                ),
            )

    def history(self, namespace: str, key: str | None = None, *, limit: int = 50) -> list[AuditEntry]:
        where, args = (
            ("namespace = ?", [namespace]) if key is None else ("namespace = ? AND key = ?", [namespace, key])
        )
        with self._lock:
            rows = self._db.execute(
                "SELECT at, namespace, key, actor, action, reason, before, after, details "
                f"FROM turnout_audit WHERE {where} ORDER BY id DESC LIMIT ?",
                (*args, limit),
            ).fetchall()
        return [
            AuditEntry(at, ns, k, actor, action, reason, _load(before), _load(after), json.loads(details))
            for at, ns, k, actor, action, reason, before, after, details in reversed(rows)
        ]

    def add_window(self, window: Window) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO turnout_windows (scope, replica, start, end_at, data) "
                "VALUES (?, ?, ?, ?, ?)",
                (window.scope, window.replica, window.start, window.end, json.dumps(window.data)),
            )

    def windows(self, scope: str, *, since: float) -> list[Window]:
        with self._lock:
            rows = self._db.execute(
                "SELECT replica, start, end_at, data FROM turnout_windows WHERE scope = ? AND end_at > ? "
                "ORDER BY end_at, replica",
                (scope, since),
            ).fetchall()
        return [Window(scope, replica, start, end, json.loads(data)) for replica, start, end, data in rows]

    def prune_windows(self, *, before: float) -> int:
        with self._transaction() as db:
            return db.execute("DELETE FROM turnout_windows WHERE end_at < ?", (before,)).rowcount

    def leader_lock(self, name: str) -> LeaderLock:
        return FileLock(self.path.with_name(f"{self.path.name}.{name}.lock"))

    def close(self) -> None:
        with self._lock:
            self._db.close()


class FileLock(LeaderLock):
    """An exclusive `flock` on a file: the kernel drops it when the holding process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = None

    def acquire(self) -> bool:
        if self._file is not None:
            return True
        handle = self.path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n".encode())
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        handle, self._file = self._file, None
        if handle is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
            handle.close()


def _dump(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True)


def _load(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(json.loads(text))
