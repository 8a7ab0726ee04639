"""The PostgreSQL event sink: batches COPYed into `analytics_events` with psycopg 3.

One blocking connection per sink, made on first write and used from the sink's own thread (a
lane writes one batch at a time: a pool would idle; COPY's work stays off the event loop). A
batch is one COPY; a batch meeting an id already
stored (a retry after a lost acknowledgement) goes through a temporary table and `ON CONFLICT
(id) DO NOTHING`, so writes are idempotent. Connection errors raise (the lane retries with
backoff); the next write reconnects. Rows PostgreSQL refuses for good (a CHECK someone added)
are isolated by halving the batch, logged, counted in `rejected` and skipped. NUL, refused in
text and JSONB, is removed. The schema comes from numbered `MIGRATIONS`, recorded in
`turnout_schema_migrations` and applied under an advisory lock.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import structlog

from turnout.errors import MissingExtraError, TurnoutError, redact
from turnout.events.model import Event
from turnout.events.sinks import TABLE, ThreadedSink, _rows, quote_table

try:
    import psycopg
    from psycopg import sql
except ModuleNotFoundError as exc:  # pragma: no cover - the extra is installed wherever tests run
    raise MissingExtraError("postgres", "psycopg", "the postgres event sink") from exc

__all__ = ["MIGRATIONS", "PostgresSink"]

_log = structlog.get_logger("turnout")
_LOCK = 0x7475726E6F7574  # "turnout": the advisory lock held while migrating
COLUMNS = ("id", "kind", "event_name", "distinct_id", "session_id", "properties", "created_at")
_REFUSED = (psycopg.DataError, psycopg.IntegrityError)  # the data, not the connection: retrying cannot help

MIGRATIONS: tuple[tuple[int, str, tuple[str, ...]], ...] = (
    (
        1,
        "analytics_events table and indexes",
        (
            """CREATE TABLE IF NOT EXISTS {table} (
                id TEXT COLLATE "C" PRIMARY KEY, kind TEXT NOT NULL DEFAULT 'track',
                event_name TEXT COLLATE "C" NOT NULL, distinct_id TEXT COLLATE "C" NOT NULL,
                session_id TEXT COLLATE "C", properties JSONB NOT NULL DEFAULT '{{}}'::jsonb,
                created_at TIMESTAMPTZ NOT NULL DEFAULT now())""",
            "CREATE INDEX IF NOT EXISTS {idx_name_created} ON {table} (event_name, created_at)",
            "CREATE INDEX IF NOT EXISTS {idx_distinct_id} ON {table} (distinct_id)",
            "CREATE INDEX IF NOT EXISTS {idx_session} ON {table} (session_id)",
            "CREATE INDEX IF NOT EXISTS {idx_created} ON {table} (created_at)",
        ),
    ),
    (
        2,
        "index of exposures by experiment, for experiment reports",
        (
            "CREATE INDEX IF NOT EXISTS {idx_exposure} ON {table}"
            " ((properties ->> 'experiment'), distinct_id) WHERE event_name = '$exposure'",
        ),
    ),
)
"""(version, what, statements with `{table}`/`{idx_*}` identifiers): append new ones, never edit one."""

_JSON_ESCAPE = re.compile(r"\\(u0000|.)", re.S)  # escape by escape: an escaped backslash + "u0000" stays
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r", "\x00": None})


class PostgresSink(ThreadedSink):
    """Writes batches into a PostgreSQL table (`analytics_events` by default) with psycopg 3."""

    name = "postgres"

    def __init__(
        self, url: str, *, table: str | None = None, connect_timeout_s: int = 10, **connect: Any
    ) -> None:
        super().__init__()
        self.url, from_url = _split_table(url)
        if table is not None and from_url is not None and table != from_url:
            raise TurnoutError(f"postgres sink: table {table!r} given, but the URL names {from_url!r}")
        self.table = table or from_url or TABLE
        try:
            quote_table(self.table)
        except ValueError as exc:
            raise TurnoutError(f"postgres sink: {exc}") from None
        try:  # a bad URL fails at load, not at every write; what the URL sets, it keeps
            given = psycopg.conninfo.conninfo_to_dict(self.url)
        except psycopg.Error as exc:
            raise TurnoutError(f"invalid postgres URL {redact(self.url)!r}: {redact(str(exc))}") from None
        defaults: dict[str, Any] = {
            "application_name": "turnout-events",
            "connect_timeout": connect_timeout_s,
        }
        defaults = {key: value for key, value in defaults.items() if key not in given}
        self._connect = {**defaults, "autocommit": True, **connect}
        self._sql = _Statements(self.table.split("."))
        self.rejected = 0
        """Rows PostgreSQL refused for good (logged, then skipped)."""
        self._conn: psycopg.Connection[Any] | None = None

    def __repr__(self) -> str:
        return f"PostgresSink({redact(self.url)!r}, table={self.table!r})"

    def write_blocking(self, batch: Sequence[Event]) -> None:
        if batch:
            self._write(_lines(batch))

    def _write(self, lines: list[str]) -> None:
        conn = self._connection()
        try:
            try:
                _copy(conn, self._sql.copy, lines)
            except psycopg.errors.UniqueViolation:
                with conn.transaction():
                    conn.execute(self._sql.create_stage)
                    _copy(conn, self._sql.copy_stage, lines)
                    conn.execute(self._sql.merge)
        except _REFUSED as exc:
            for part in self._halves(lines, exc):
                self._write(part)
        except BaseException:
            self._conn = None
            conn.close()
            raise

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is None or conn.closed:
            self.migrate()
            conn = self._conn = psycopg.Connection.connect(self.url, **self._connect)
        return conn

    def migrate(self) -> None:
        """Create or update the table now (writes do it when they connect): apply pending migrations."""
        with psycopg.Connection.connect(self.url, **self._connect) as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            conn.execute(self._sql.create_migrations)
            found = {row[0] for row in conn.execute(self._sql.columns, (self._sql.regclass,)).fetchall()}
            if found and (missing := [column for column in COLUMNS if column not in found]):
                raise TurnoutError(
                    f"postgres sink: table {self.table!r} exists without the columns {', '.join(missing)} "
                    "(made by hand?): give the sink another table (table= or ?table=NAME)"
                )
            applied = {row[0] for row in conn.execute(self._sql.applied, (self.table,)).fetchall()}
            for version, what, statements in self._sql.migrations:
                if version in applied:
                    continue
                for statement in statements:
                    conn.execute(statement)
                conn.execute(self._sql.record, (self.table, version, what))

    def _halves(self, lines: list[str], exc: Exception) -> list[list[str]]:
        """A refused batch in two halves to try apart; a refused single row is logged and skipped."""
        if len(lines) > 1:
            return [lines[: len(lines) // 2], lines[len(lines) // 2 :]]
        self.rejected += 1
        event_id = lines[0].partition("\t")[0] if lines else None
        _log.warning("turnout.events.rejected", sink=self.name, event_id=event_id, error=repr(exc)[:500])
        return []

    def forked(self) -> None:
        # A forked child must never talk on, nor close, its parent's socket: its copy of the
        # descriptor is pointed at /dev/null first, where libpq's goodbye is lost.
        conn, self._conn = self._conn, None
        with contextlib.suppress(Exception):
            if conn is not None:
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, conn.pgconn.socket)
                os.close(null)
                conn.pgconn.finish()

    def close_blocking(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class _Statements:
    """Every statement the sink runs, composed once with the table's quoted name."""

    def __init__(self, parts: list[str]) -> None:
        names: dict[str, sql.Composable] = {
            "table": sql.Identifier(*parts),
            "columns": sql.SQL(", ").join(map(sql.Identifier, COLUMNS)),
            "migrations": sql.Identifier(*parts[:-1], "turnout_schema_migrations"),
        }
        for index in ("name_created", "distinct_id", "session", "created", "exposure"):
            names[f"idx_{index}"] = sql.Identifier(f"idx_{parts[-1]}_{index}")

        def compose(*text: str) -> sql.Composed:
            return sql.SQL("".join(text)).format(**names)

        self.regclass = ".".join(f'"{part}"' for part in parts)
        self.copy = compose("COPY {table} ({columns}) FROM STDIN")
        self.create_stage = compose(
            "CREATE TEMP TABLE IF NOT EXISTS turnout_stage (LIKE {table} INCLUDING DEFAULTS)",
            " ON COMMIT DELETE ROWS",
        )
        self.copy_stage = compose("COPY turnout_stage ({columns}) FROM STDIN")
        self.merge = compose(
            "INSERT INTO {table} ({columns}) SELECT {columns} FROM turnout_stage",
            " ON CONFLICT (id) DO NOTHING",
        )
        self.create_migrations = compose(
            "CREATE TABLE IF NOT EXISTS {migrations} (table_name TEXT NOT NULL, version INTEGER NOT NULL,",
            " name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),",
            " PRIMARY KEY (table_name, version))",
        )
        self.applied = compose("SELECT version FROM {migrations} WHERE table_name = %s")
        self.record = compose("INSERT INTO {migrations} (table_name, version, name) VALUES (%s, %s, %s)")
        self.columns = compose(
            "SELECT attname FROM pg_attribute",
            " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped",
        )
        self.migrations = [(v, what, [compose(text) for text in texts]) for v, what, texts in MIGRATIONS]


def _lines(batch: Sequence[Event]) -> list[str]:
    """One COPY text-format line per event: tab-separated, backslash-escaped, NUL removed."""
    lines: list[str] = []
    append = lines.append
    for event_id, kind, name, distinct_id, session_id, properties, created in _rows(batch):
        session = "\\N" if session_id is None else _field(session_id)
        props = properties or "{}"
        if "\\u0000" in props:  # JSON's escape for NUL, which JSONB refuses
            props = _JSON_ESCAPE.sub(lambda m: "" if m[1] == "u0000" else m[0], props)
        head = f"{_field(event_id or '')}\t{_field(kind or '')}\t{_field(name or '')}"
        append(f"{head}\t{_field(distinct_id or '')}\t{session}\t{_field(props)}\t{created}\n")
    return lines


def _field(text: str) -> str:
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text or "\x00" in text:
        return text.translate(_ESCAPES)
    return text


def _copy(conn: psycopg.Connection[Any], statement: sql.Composed, lines: list[str]) -> None:
    with conn.cursor() as cursor, cursor.copy(statement) as copy:
        copy.write("".join(lines).encode(errors="replace"))


def _split_table(url: str) -> tuple[str, str | None]:
    """(URL for libpq, the `table` query parameter if any): libpq refuses parameters it does not know."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    tables = [value for key, value in query if key == "table"]
    if not tables:
        return url, None
    rest = urlencode([(key, value) for key, value in query if key != "table"])
    return urlunsplit(parts._replace(query=rest)), tables[-1]
