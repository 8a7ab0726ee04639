"""The SQL behind `turnout.events.stats`: one dialect per backend, filters, queries, connections.

Queries are written once with `%s` placeholders; the SQLite dialect turns them into `?`.
Values always travel as parameters. The only text spliced into a query is the table's
name (checked by `quote_table`) and expressions chosen from the fixed tables below.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, cast

from turnout.errors import MissingExtraError, TurnoutError, redact
from turnout.events.sinks import TABLE, SQLiteSink, quote_table

Period = Literal["day", "month"]
Unit = Literal["events", "users", "sessions"]
Scalar = str | int | float | bool

_KEY = re.compile(r"[A-Za-z0-9_.:$ -]{1,200}")  # what event names may hold: no quotes, no backslashes
UNITS = {
    "events": "count(*)",
    "users": "count(DISTINCT distinct_id)",
    "sessions": "count(DISTINCT session_id)",
}
KEYS = {"users": "distinct_id", "sessions": "session_id"}


class EventsUnavailable(TurnoutError):
    """The events database cannot be read (no file, no server, a bad URL)."""


def check_key(key: str) -> str:
    """`key` if the aggregates can look it up in the properties, else ValueError."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise ValueError(f"property key {key!r} must be 1-200 characters of letters, digits and '_.:$ -'")
    return key


def check_unit(unit: str) -> Unit:
    """`unit` if it is one of events, users, sessions, else ValueError."""
    if unit not in UNITS:
        raise ValueError(f"unit must be 'events', 'users' or 'sessions', not {unit!r}")
    return cast(Unit, unit)


class Dialect:
    """A connection and what differs per backend: `bucket` (UTC day YYYY-MM-DD or month YYYY-MM),
    `moment` (a datetime as a parameter), `number` (a property, NULL unless a JSON number),
    `equals` (a property = a value, JSON types included), `text` (a property as text, booleans
    as true/false), `within` (time b ≤ a + N seconds).
    """

    name = "sql"

    def __init__(
        self, connection: Any, table: str, *, owned: bool, reconnect: Callable[[], Any] | None = None
    ):
        self.connection = connection
        self.table = table
        self.quoted = quote_table(table)
        self.owned = owned
        self.reconnect = reconnect
        self.lock = threading.Lock()

    def query(self, text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of one query."""
        with self.lock:
            try:
                rows: list[tuple[Any, ...]] = self.connection.execute(text, params).fetchall()
            except Exception:
                # A server restarted since the last query: reading is safe to try once more.
                if self.reconnect is None or not self.connection.closed:
                    raise
                self.connection = self.reconnect()
                rows = self.connection.execute(text, params).fetchall()
            return rows

    def moment(self, value: datetime) -> Any:
        return value

    def stamp(self, value: Any) -> datetime:
        """A `created_at` read back, as an aware datetime in UTC (PostgreSQL answers in the session's)."""
        return (value if isinstance(value, datetime) else datetime.fromisoformat(value)).astimezone(UTC)

    def close(self) -> None:
        if self.owned:
            self.connection.close()


class SQLiteDialect(Dialect):
    """`created_at` is ISO 8601 UTC text with microseconds; JSON through json_extract."""

    name = "sqlite"

    def query(self, text: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        return super().query(text.replace("%s", "?"), params)

    def exists(self) -> bool:
        name = self.table.rpartition(".")[2]
        return bool(self.query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = %s", [name]))

    def bucket(self, by: Period) -> str:
        return f"substr(created_at, 1, {10 if by == 'day' else 7})"

    def moment(self, value: datetime) -> Any:
        return value.astimezone(UTC).isoformat(timespec="microseconds")

    def number(self, key: str) -> tuple[str, list[Any]]:
        path = f'$."{key}"'  # quoted: dots and dashes belong to the key, they are not path syntax
        text = (
            "CASE WHEN json_type(properties, %s) IN ('integer', 'real') THEN json_extract(properties, %s) END"
        )
        return text, [path, path]

    def equals(self, key: str, value: Scalar) -> tuple[str, list[Any]]:
        path = f'$."{key}"'
        if isinstance(value, bool):
            return "json_type(properties, %s) = %s", [path, "true" if value else "false"]
        kinds = ["integer", "real"] if isinstance(value, int | float) else ["text", "text"]
        text = "json_type(properties, %s) IN (%s, %s) AND json_extract(properties, %s) = %s"
        return text, [path, *kinds, path, value]

    def text(self, key: str) -> tuple[str, list[Any]]:
        path = f'$."{key}"'
        text = (
            "CASE json_type(properties, %s) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'"
            " ELSE CAST(json_extract(properties, %s) AS TEXT) END"
        )
        return text, [path, path]

    def within(self, later: str, earlier: str, seconds: float) -> tuple[str, list[Any]]:
        # julianday() reads milliseconds: windows are exact to the millisecond here.
        return f"julianday({later}) <= julianday({earlier}) + %s", [seconds / 86400.0]


class PostgresDialect(Dialect):
    """`created_at` is TIMESTAMPTZ; properties are JSONB."""

    name = "postgres"

    def exists(self) -> bool:
        return bool(self.query("SELECT to_regclass(%s) IS NOT NULL", [self.quoted])[0][0])

    def bucket(self, by: Period) -> str:
        return f"to_char(created_at AT TIME ZONE 'UTC', '{'YYYY-MM-DD' if by == 'day' else 'YYYY-MM'}')"

    def number(self, key: str) -> tuple[str, list[Any]]:
        text = "CASE WHEN jsonb_typeof(properties -> %s) = 'number' THEN (properties ->> %s)::numeric END"
        return text, [key, key]

    def equals(self, key: str, value: Scalar) -> tuple[str, list[Any]]:
        return "properties -> %s = %s::jsonb", [key, json.dumps(value)]

    def text(self, key: str) -> tuple[str, list[Any]]:
        return "properties ->> %s", [key]

    def within(self, later: str, earlier: str, seconds: float) -> tuple[str, list[Any]]:
        return f"{later} <= {earlier} + make_interval(secs => %s)", [seconds]


AnyDialect = SQLiteDialect | PostgresDialect


class Filters:
    """A WHERE clause: conditions joined by AND, and their parameters in order."""

    def __init__(self) -> None:
        self.conditions: list[str] = []
        self.params: list[Any] = []

    def add(self, condition: str, *params: Any) -> None:
        self.conditions.append(condition)
        self.params.extend(params)

    def sql(self) -> str:
        return " AND ".join(self.conditions) if self.conditions else "1 = 1"


_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def filters(
    dialect: AnyDialect,
    window: tuple[datetime | None, datetime | None],
    events: Iterable[str] | None = None,
    where: Mapping[str, Scalar] | None = None,
) -> Filters:
    """Events in [start, end), with one of the names (if given), whose properties match `where`."""
    found = Filters()
    start, end = window
    if start is not None:
        found.add("created_at >= %s", dialect.moment(start))
    if end is not None:
        found.add("created_at < %s", dialect.moment(end))
    if events is not None:
        names = list(dict.fromkeys([events] if isinstance(events, str) else events))
        found.add(f"event_name IN ({', '.join(['%s'] * len(names))})" if names else "1 = 0", *names)
    for key, value in (where or {}).items():
        if not isinstance(value, str | int | float) or (
            isinstance(value, float) and not math.isfinite(value)
        ):
            raise ValueError(f"where[{key!r}] must be a string, a finite number or a boolean, not {value!r}")
        if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
            # sqlite would raise OverflowError binding it; no stored number can equal it anyway.
            raise ValueError(f"where[{key!r}] must fit in 64 bits, not {value!r}")
        text, params = dialect.equals(check_key(key), value)
        found.add(text, *params)
    return found


def counts_sql(dialect: AnyDialect, by: Period | None, unit: Unit, where: Filters) -> str:
    """Rows (period or NULL, event name, count) ordered by period, then name."""
    period = dialect.bucket(by) if by else "NULL"
    return (
        f"SELECT {period} AS period, event_name, {UNITS[unit]} FROM {dialect.quoted}"
        f" WHERE {where.sql()} GROUP BY period, event_name ORDER BY period, event_name"
    )


def numbers_sql(dialect: AnyDialect, by: Period | None, number: str, where: Filters) -> str:
    """Rows (period or NULL, event name, count, sum, min, max) of a numeric property."""
    period = dialect.bucket(by) if by else "NULL"
    return (
        "SELECT period, event_name, count(value), sum(value), min(value), max(value) FROM"
        f" (SELECT {period} AS period, event_name, {number} AS value FROM {dialect.quoted}"
        f" WHERE {where.sql()}) AS picked"
        " WHERE value IS NOT NULL GROUP BY period, event_name ORDER BY period, event_name"
    )


def funnel_sql(dialect: AnyDialect, key: str, first: Filters, then: Filters) -> str:
    """One row (entered, converted); `then` filters the later events `b` against `f.started`."""
    table = dialect.quoted
    return (
        f"WITH firsts AS (SELECT {key} AS who, min(created_at) AS started FROM {table}"
        f" WHERE {first.sql()} AND {key} IS NOT NULL GROUP BY {key}),"
        f" converted AS (SELECT DISTINCT f.who FROM firsts AS f JOIN {table} AS b ON b.{key} = f.who"
        f" WHERE {then.sql()})"
        " SELECT (SELECT count(*) FROM firsts), (SELECT count(*) FROM converted)"
    )


def open_dialect(source: object, table: str | None) -> AnyDialect:
    """The backend for whatever names the events: URL, path, sink or open connection."""
    postgres, psycopg = sys.modules.get("turnout.events.postgres"), sys.modules.get("psycopg")
    if postgres is not None and isinstance(source, postgres.PostgresSink):
        return _postgres(source.url, table or source.table)
    if isinstance(source, SQLiteSink | os.PathLike):
        return _sqlite(source.path if isinstance(source, SQLiteSink) else os.fspath(source), table)
    if isinstance(source, sqlite3.Connection):
        return SQLiteDialect(source, table or TABLE, owned=False)
    if psycopg is not None and isinstance(source, psycopg.Connection):
        return PostgresDialect(source, table or TABLE, owned=False)
    if not isinstance(source, str):
        raise TypeError(f"cannot read events from a {type(source).__name__}: give a URL, path or sink")
    scheme, sep, rest = source.strip().partition("://")
    if scheme.lower() in ("postgres", "postgresql"):
        return _postgres(source, table)
    if sep and scheme.lower() != "sqlite":
        raise EventsUnavailable(f"cannot read events from {scheme}:// URLs: use sqlite:/// or postgres://")
    # sqlite:///relative.db, sqlite:////absolute.db, or a plain path
    return _sqlite(
        ((rest[1:] if rest.startswith("/") else rest) or "turnout_events.db") if sep else source, table
    )


def _sqlite(path: str, table: str | None) -> SQLiteDialect:
    if path != ":memory:" and not Path(path).is_file():
        raise EventsUnavailable(
            f"no events database at {path} (the sqlite sink creates it on first delivery)"
        )
    try:
        connection = sqlite3.connect(path, timeout=5.0, check_same_thread=False)
    except sqlite3.Error as exc:
        raise EventsUnavailable(f"cannot open {path}: {exc}") from exc
    return SQLiteDialect(connection, table or TABLE, owned=True)


def _postgres(url: str, table: str | None) -> PostgresDialect:
    try:
        import psycopg
    except ImportError as exc:
        raise MissingExtraError("postgres", "psycopg", "events stats on PostgreSQL") from exc
    from turnout.events.postgres import _split_table

    url, from_url = _split_table(url)

    def connect() -> Any:
        return psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="turnout-stats")

    try:
        connection = connect()
    except psycopg.Error as exc:
        raise EventsUnavailable(f"cannot connect to {redact(url)}: {redact(str(exc).strip())}") from exc
    return PostgresDialect(connection, table or from_url or TABLE, owned=True, reconnect=connect)
