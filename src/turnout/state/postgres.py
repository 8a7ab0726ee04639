"""The PostgreSQL state store: for processes on several hosts; the leader holds an advisory lock.

One autocommit connection per store (calls are short and serialised by a lock), remade after a
connection error; the leader lock has its own connection, since PostgreSQL ties an advisory lock
to the session that took it and frees it when that session ends (a holder that dies lets another
process take over).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from turnout.errors import MissingExtraError, redact
from turnout.state.store import AuditEntry, LeaderLock, Record, StateStore, Window

try:
    import psycopg
    from psycopg.types.json import Jsonb
except ModuleNotFoundError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise MissingExtraError("postgres", "psycopg", "the PostgreSQL state store") from exc

T = TypeVar("T")
_SCHEMA_LOCK = 0x7475726E73  # held while creating the tables, so two processes starting at once agree

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS turnout_state (
        namespace TEXT NOT NULL, key TEXT NOT NULL, value JSONB NOT NULL,
        version BIGINT NOT NULL, updated_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (namespace, key))""",
    """CREATE TABLE IF NOT EXISTS turnout_audit (
        id BIGSERIAL PRIMARY KEY, at DOUBLE PRECISION NOT NULL, namespace TEXT NOT NULL,
        key TEXT NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, reason TEXT NOT NULL,
        before JSONB, after JSONB, details JSONB NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS turnout_audit_key ON turnout_audit (namespace, key, id)",
    """CREATE TABLE IF NOT EXISTS turnout_windows (
        scope TEXT NOT NULL, replica TEXT NOT NULL, start DOUBLE PRECISION NOT NULL,
        end_at DOUBLE PRECISION NOT NULL, data JSONB NOT NULL, PRIMARY KEY (scope, replica, end_at))""",
    "CREATE INDEX IF NOT EXISTS turnout_windows_end ON turnout_windows (scope, end_at)",
)


class PostgresStore(StateStore):
    """State in PostgreSQL tables (`turnout_state`, `turnout_audit`, `turnout_windows`)."""

    def __init__(self, url: str, *, connect_timeout_s: int = 10) -> None:
        self.url = url
        self._connect_timeout_s = connect_timeout_s
        self._lock = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._call(self._create_schema)

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=self._connect_timeout_s)
        except psycopg.OperationalError as exc:
            raise psycopg.OperationalError(redact(f"cannot connect to {self.url}: {exc}")) from None

    def _call(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            try:
                return work(self._conn)
            except psycopg.OperationalError:
                self._conn.close()  # a broken connection is remade by the next call
                self._conn = None
                raise

    @staticmethod
    def _create_schema(conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                conn.execute(statement)

    def get(self, namespace: str, key: str) -> Record | None:
        row = self._call(
            lambda c: c.execute(
                "SELECT value, version, updated_at FROM turnout_state WHERE namespace = %s AND key = %s",
                (namespace, key),
            ).fetchone()
        )
        return None if row is None else Record(dict(row[0]), int(row[1]), float(row[2]))

    def items(self, namespace: str) -> dict[str, Record]:
        rows = self._call(
            lambda c: c.execute(
                "SELECT key, value, version, updated_at FROM turnout_state WHERE namespace = %s", (namespace,)
            ).fetchall()
        )
        return {key: Record(dict(value), int(version), float(at)) for key, value, version, at in rows}

    def put(
        self, namespace: str, key: str, value: dict[str, Any], *, at: float, expect: int | None = None
    ) -> bool:
        def write(conn: psycopg.Connection[Any]) -> bool:
            if expect is None:
                conn.execute(
                    """INSERT INTO turnout_state (namespace, key, value, version, updated_at)
                       VALUES (%s, %s, %s, 1, %s) ON CONFLICT (namespace, key) DO UPDATE
                       SET value = excluded.value, version = turnout_state.version + 1,
                           updated_at = excluded.updated_at""",
                    (namespace, key, Jsonb(value), at),
                )
                return True
            if expect == 0:
                cursor = conn.execute(
                    """INSERT INTO turnout_state (namespace, key, value, version, updated_at)
                       VALUES (%s, %s, %s, 1, %s) ON CONFLICT (namespace, key) DO NOTHING""",
                    (namespace, key, Jsonb(value), at),
                )
            else:
                cursor = conn.execute(
                    """UPDATE turnout_state SET value = %s, version = version + 1, updated_at = %s
                       WHERE namespace = %s AND key = %s AND version = %s""",
                    (Jsonb(value), at, namespace, key, expect),
                )
            return cursor.rowcount == 1

        return self._call(write)

    def audit(self, entry: AuditEntry) -> None:
        self._call(
            lambda c: c.execute(
                """INSERT INTO turnout_audit
                   (at, namespace, key, actor, action, reason, before, after, details)
                   VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
                (
                    entry.at,
                    entry.namespace,
                    entry.key,
                    entry.actor,
                    entry.action,
                    entry.reason,
                    None if entry.before is None else Jsonb(entry.before),
                    None if entry.after is None else Jsonb(entry.after),
                    Jsonb(entry.details),
                ),
            )
        )

    def history(self, namespace: str, key: str | None = None, *, limit: int = 50) -> list[AuditEntry]:
        query = (
            "SELECT at, namespace, key, actor, action, reason, before, after, details FROM turnout_audit "
            "WHERE namespace = %s AND (%s::text IS NULL OR key = %s) ORDER BY id DESC LIMIT %s"
        )
        rows = self._call(lambda c: c.execute(query, (namespace, key, key, limit)).fetchall())
        return [
            AuditEntry(float(at), ns, k, actor, action, reason, before, after, dict(details))
            for at, ns, k, actor, action, reason, before, after, details in reversed(rows)
        ]

    def add_window(self, window: Window) -> None:
        self._call(
            lambda c: c.execute(
                """INSERT INTO turnout_windows (scope, replica, start, end_at, data)
                   VALUES (%s, %s, %s, %s, %s) ON CONFLICT (scope, replica, end_at)
                   DO UPDATE SET start = excluded.start, data = excluded.data""",
                (window.scope, window.replica, window.start, window.end, Jsonb(window.data)),
            )
        )

    def windows(self, scope: str, *, since: float) -> list[Window]:
        rows = self._call(
            lambda c: c.execute(
                "SELECT replica, start, end_at, data FROM turnout_windows WHERE scope = %s AND end_at > %s "
                "ORDER BY end_at, replica",
                (scope, since),
            ).fetchall()
        )
        return [
            Window(scope, replica, float(start), float(end), dict(data)) for replica, start, end, data in rows
        ]

    def prune_windows(self, *, before: float) -> int:
        return self._call(
            lambda c: c.execute("DELETE FROM turnout_windows WHERE end_at < %s", (before,)).rowcount
        )

    def leader_lock(self, name: str) -> LeaderLock:
        schema = self._call(lambda c: c.execute("SELECT current_schema()").fetchone())
        return AdvisoryLock(self, f"{schema[0] if schema else ''}:{name}")

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class AdvisoryLock(LeaderLock):
    """A session-level advisory lock on a connection of its own."""

    def __init__(self, store: PostgresStore, name: str) -> None:
        self._store = store
        digest = hashlib.blake2b(f"turnout-leader:{name}".encode(), digest_size=8).digest()
        self.key = int.from_bytes(digest, "big", signed=True)
        self._conn: psycopg.Connection[Any] | None = None

    def acquire(self) -> bool:
        if self._conn is not None:
            try:
                self._conn.execute("SELECT 1")
                return True
            except psycopg.Error:
                self._drop()  # the session died, and with it the lock: try to take it again
        conn = self._store._connect()
        try:
            row = conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        except psycopg.Error:
            conn.close()
            raise
        if row is None or not row[0]:
            conn.close()
            return False
        self._conn = conn
        return True

    def release(self) -> None:
        self._drop()

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()  # ending the session frees the lock
