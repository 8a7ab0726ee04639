"""Event sinks: where batches of events go — SQLite (the default), JSON lines, memory, plugins.

A sink receives whole batches through `await write(batch)`; raising means "not delivered,
try again later": the tracker keeps the batch and retries it with backoff, so a write
must be safe to repeat (the SQLite sink inserts with `OR IGNORE` on the event id). No
thread at construction: connections and threads are made on first use (anew after fork).

URLs (`EventsConfig.sink` / `sinks`) name a sink:

    sqlite:///turnout_events.db     relative path (sqlite:////var/db/events.db is absolute)
    jsonl:///events.jsonl           the same path convention
    memory://                       in-memory, for tests
    postgres://user@host/db         PostgreSQL (`pip install "turnout[postgres]"`)
    NAME or NAME://...              the `turnout.sinks` plugin NAME: factory() or factory(url=...)
    package.module:factory          a factory named directly (no plugin discovery needed)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import importlib
import json
import os
import re
import sqlite3
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from turnout.errors import TurnoutError
from turnout.events.model import Event

T = TypeVar("T")

TABLE = "analytics_events"
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


def quote_table(table: str) -> str:
    """`"name"` or `"schema"."name"` for SQL; ValueError for anything else (the one table-name check)."""
    parts = table.split(".")
    if len(parts) > 2 or not all(_IDENT.fullmatch(part) for part in parts):
        raise ValueError(f"table {table!r} must be NAME or SCHEMA.NAME of letters, digits and _")
    return ".".join(f'"{part}"' for part in parts)


SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {TABLE} (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT 'track',
    event_name TEXT NOT NULL,
    distinct_id TEXT NOT NULL,
    session_id TEXT,
    properties TEXT NOT NULL DEFAULT '{{}}',
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_{TABLE}_name_created ON {TABLE} (event_name, created_at);
CREATE INDEX IF NOT EXISTS idx_{TABLE}_distinct_id ON {TABLE} (distinct_id);
CREATE INDEX IF NOT EXISTS idx_{TABLE}_created ON {TABLE} (created_at);
CREATE INDEX IF NOT EXISTS idx_{TABLE}_exposure
    ON {TABLE} (json_extract(properties, '$."experiment"'), distinct_id) WHERE event_name = '$exposure';
"""
"""The SQLite schema (the usual `analytics_events` shape); `created_at` is ISO 8601 UTC text."""

INSERT = (
    f"INSERT OR IGNORE INTO {TABLE} (id, kind, event_name, distinct_id, session_id, properties, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)

CHUNK_ROWS = 100
"""Rows per INSERT statement of the SQLite sink (700 parameters, far below SQLite's limit).

Why not `executemany`: Python's sqlite3 releases the GIL around every `sqlite3_step`, and
`executemany` steps once per row, so a 500-row batch written from the sink's thread asks for
the GIL back 500 times while the event loop is serving requests; each of those hand-offs is
a context switch the loop pays for. One multi-row statement steps once per chunk.
"""


def _insert_many(rows: int) -> str:
    """An INSERT of `rows` rows (SQLite caches the prepared statement by its text)."""
    return INSERT + ", (?, ?, ?, ?, ?, ?, ?)" * (rows - 1)


class EventSink:
    """Base sink: a sink implements `async write(batch)`; every other method has a default.

    Code with no running event loop (`EventTracker.flush()` from a script) delivers through
    `write_sync`, an adapter over `write`: sinks implement the one write only. A sink whose
    work blocks derives from `ThreadedSink` and implements `write_blocking` instead.
    """

    name = "sink"

    async def write(self, batch: Sequence[Event]) -> None:
        """Deliver `batch`; raise to have it retried."""

    def write_sync(self, batch: Sequence[Event]) -> None:
        """`write` for code with no running event loop: runs it to completion on a loop of its own.

        Sinks need not override it; one that does (the older, two-method interface) is still
        called here, but that override is deprecated.
        """
        asyncio.run(self.write(batch))

    async def flush(self) -> None:
        """Push out anything the sink itself buffers."""

    async def close(self) -> None:
        """Release resources; the tracker calls it once on stop."""


class ThreadedSink(EventSink):
    """A sink whose blocking work runs in one worker thread of its own, made on first use.

    Implement `write_blocking(batch)` (and `flush_blocking` / `close_blocking` when there is
    something to flush or release): the async `write` runs it in the sink's thread, and the
    sync path (`write_sync`) runs the very same body in the caller's thread. One lock keeps
    the two from overlapping; a forked child starts with a fresh thread and lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pid = os.getpid()

    def write_blocking(self, batch: Sequence[Event]) -> None:
        """Deliver `batch`, blocking (in the sink's thread, or the caller's); raise to have it retried."""

    def flush_blocking(self) -> None:
        """Push out anything the sink itself buffers, blocking."""

    def close_blocking(self) -> None:
        """Release what the sink holds, blocking."""

    async def write(self, batch: Sequence[Event]) -> None:
        await self._in_thread(self.write_blocking, batch)

    def write_sync(self, batch: Sequence[Event]) -> None:
        self._after_fork()
        with self._lock:
            self.write_blocking(batch)

    async def flush(self) -> None:
        await self._in_thread(self.flush_blocking)

    async def _in_thread(self, func: Callable[..., T], *args: Any) -> T:
        if self._pool is None or self._pid != os.getpid():
            self._after_fork()
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"turnout-{self.name}")
        return await asyncio.get_running_loop().run_in_executor(self._pool, self._locked, func, args)

    def _locked(self, func: Callable[..., T], args: tuple[Any, ...]) -> T:
        with self._lock:
            return func(*args)

    def _after_fork(self) -> None:
        if self._pid != os.getpid():
            # The parent's thread does not exist here and its lock may be held: start afresh.
            self._pid, self._pool, self._lock = os.getpid(), None, threading.Lock()
            self.forked()

    def forked(self) -> None:
        """Forget what was inherited from the parent process (never use or close it here)."""

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            await asyncio.get_running_loop().run_in_executor(pool, self._locked, self.close_blocking, ())
            pool.shutdown(wait=False)
        else:
            self._after_fork()
            with self._lock:
                self.close_blocking()


class SQLiteSink(ThreadedSink):
    """Writes batches into the `analytics_events` table of a SQLite file (WAL mode)."""

    name = "sqlite"

    def __init__(self, path: str | os.PathLike[str] = "turnout_events.db", *, busy_timeout_s: float = 5.0):
        super().__init__()
        self.path = str(path)
        self.busy_timeout_s = busy_timeout_s
        self._db: sqlite3.Connection | None = None

    def forked(self) -> None:
        self._db = None  # never use (or close) a connection inherited across fork

    def connect(self) -> sqlite3.Connection:
        """A new connection to the file, with the schema in place."""
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
        )
        db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives an application crash; only an OS crash may lose the last commits.
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(SCHEMA)
        return db

    def write_blocking(self, batch: Sequence[Event]) -> None:
        rows = _rows(batch)
        db = self._db
        if db is None:
            db = self._db = self.connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            for start in range(0, len(rows), CHUNK_ROWS):
                chunk = rows[start : start + CHUNK_ROWS]
                db.execute(_insert_many(len(chunk)), [value for row in chunk for value in row])
            db.execute("COMMIT")
        except BaseException:
            # Start the retry from a fresh connection: no transaction left open, and a
            # file that was removed or replaced meanwhile is opened (and set up) anew.
            self._db = None
            with contextlib.suppress(sqlite3.Error):
                db.close()
            raise

    def close_blocking(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()


def _rows(batch: Sequence[Event]) -> list[tuple[str | None, ...]]:
    """SQLite rows; `created_at` is `isoformat()` in UTC with microseconds."""
    return [
        (
            event.id,
            event.kind,
            event.name,
            event.distinct_id,
            event.session_id,
            event.properties_text(),
            event.created_text(),
        )
        for event in batch
    ]


class JsonlSink(ThreadedSink):
    """Appends one JSON object per event to a file."""

    name = "jsonl"

    def __init__(self, path: str | os.PathLike[str] = "turnout_events.jsonl") -> None:
        super().__init__()
        self.path = Path(path)

    def write_blocking(self, batch: Sequence[Event]) -> None:
        text = _lines(batch)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as file:
            file.write(text)


def _lines(batch: Sequence[Event]) -> str:
    lines = []
    for event in batch:
        record = event.as_record()
        del record["properties"]
        # Splice in the properties already serialised (and checked) by the tracker.
        lines.append(
            f'{json.dumps(record, ensure_ascii=False)[:-1]}, "properties": {event.properties_text()}}}\n'
        )
    return "".join(lines)


class MemorySink(EventSink):
    """Keeps every event in memory (`events`, `batches`): the sink for tests."""

    name = "memory"

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.batches: list[list[Event]] = []
        self.closed = False

    async def write(self, batch: Sequence[Event]) -> None:
        self.batches.append(list(batch))
        self.events.extend(batch)

    async def close(self) -> None:
        self.closed = True

    def names(self) -> list[str]:
        """The names of the events received, in order."""
        return [event.name for event in self.events]


def _path(rest: str, default: str) -> str:
    # SQLAlchemy's convention: "sqlite:///rel.db" is relative, "sqlite:////abs.db" absolute.
    path = rest[1:] if rest.startswith("/") else rest
    return path or default


def _postgres(url: str, **options: Any) -> EventSink:
    try:  # `turnout.events.postgres.PostgresSink(url)`; that module imports psycopg
        module = importlib.import_module("turnout.events.postgres")
    except ModuleNotFoundError as exc:
        why = (
            "is not available in this version of turnout yet; use sqlite:///turnout_events.db meanwhile"
            if exc.name == "turnout.events.postgres"
            else f'needs psycopg: pip install "turnout[postgres]" ({exc})'
        )
        raise TurnoutError(f"the postgres event sink {why}") from exc
    sink: EventSink = module.PostgresSink(url, **options)
    return sink


def sink_from_url(url: str, *, block: Iterable[str] = (), autoload: bool = True, **options: Any) -> EventSink:
    """The sink a config URL (or plugin name) names; one clear `TurnoutError` if it cannot be made."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    kind = scheme.lower()
    if kind == "sqlite":
        return SQLiteSink(_path(rest, "turnout_events.db"), **options)
    if kind == "jsonl":
        return JsonlSink(_path(rest, "turnout_events.jsonl"), **options)
    if kind == "memory":
        return MemorySink()
    if kind in ("postgres", "postgresql"):
        return _postgres(text, **options)
    if not scheme:
        raise TurnoutError(f"empty event sink URL {url!r}")
    from turnout.plugins import build_plugin

    # A plugin (or a "package.module:factory" target) is called with url= only when one is given.
    sink = build_plugin(
        "turnout.sinks", scheme, {**options, "url": text} if sep else options, block=block, autoload=autoload
    )
    if not isinstance(sink, EventSink):
        raise TurnoutError(f"event sink plugin {scheme!r} returned {type(sink).__name__}, not an EventSink")
    return sink
