"""Aggregates over the events table — the same API and the same numbers on SQLite and PostgreSQL.

    stats = EventStats.open("sqlite:///turnout_events.db")     # a postgres:// URL, a sink, a connection
    stats.counts(by="day", since="30d")                        # events per day and name
    stats.rate("session.escalate", "session.start", month="2025-12")
    stats.rate("query.order", "query.order", where={"success": True})
    stats.numbers("response_time_ms", events=["session.message"], by="month")
    stats.funnel("session.start", "ticket.created", within="1d")

Every method takes the same period filters: `since` (inclusive) and `until` (exclusive) as
datetimes (naive means UTC), dates, ISO text, or a duration back from now ("30d", "12h");
`month="YYYY-MM"` for one calendar month. Days and months are UTC. A table not created yet
reads as empty. The methods block: in async code, `await asyncio.to_thread(stats.rate, ...)`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import overload

from turnout.config import parse_duration
from turnout.events.stats_sql import (
    KEYS,
    UNITS,
    AnyDialect,
    EventsUnavailable,
    Filters,
    Period,
    Scalar,
    Unit,
    check_key,
    check_unit,
    counts_sql,
    filters,
    funnel_sql,
    numbers_sql,
    open_dialect,
)

__all__ = ["Count", "EventStats", "EventsUnavailable", "Funnel", "Numbers", "Rate"]

Moment = datetime | date | str | None


@dataclass(frozen=True, slots=True)
class Count:
    """How many events (or users, or sessions) of one name in one period (None: the whole range)."""

    period: str | None
    event: str
    count: int


@dataclass(frozen=True, slots=True)
class Rate:
    """numerator / denominator; `value` is None when the denominator is 0."""

    numerator: int
    denominator: int

    @property
    def value(self) -> float | None:
        """The ratio, or None with nothing to divide by."""
        return self.numerator / self.denominator if self.denominator else None


@dataclass(frozen=True, slots=True)
class Numbers:
    """A numeric property over one event name and period: how many values, their sum and range."""

    period: str | None
    event: str
    count: int
    total: float
    minimum: float
    maximum: float

    @property
    def mean(self) -> float:
        """The average value."""
        return self.total / self.count


@dataclass(frozen=True, slots=True)
class Funnel:
    """Of those who did `first` in the period, how many did `then` within the window after it."""

    first: str
    then: str
    entered: int
    converted: int

    @property
    def rate(self) -> float | None:
        """converted / entered, or None when nobody entered."""
        return self.converted / self.entered if self.entered else None


class EventStats:
    """Read-only aggregates over an events table (SQLite or PostgreSQL)."""

    def __init__(self, dialect: AnyDialect, *, now: Callable[[], datetime] | None = None) -> None:
        self._sql = dialect
        self._now = now or (lambda: datetime.now(UTC))
        self._exists = False

    @classmethod
    def open(
        cls, source: object, *, table: str | None = None, now: Callable[[], datetime] | None = None
    ) -> EventStats:
        """Stats over a URL (`sqlite:///…`, `postgres://…`), a path, a sink, or an open connection."""
        return cls(open_dialect(source, table), now=now)

    @property
    def backend(self) -> str:
        """`sqlite` or `postgres`."""
        return self._sql.name

    @property
    def table(self) -> str:
        """The table read."""
        return self._sql.table

    def exists(self) -> bool:
        """Whether the table exists: a sink creates it when it first delivers."""
        if not self._exists:
            self._exists = self._sql.exists()
        return self._exists

    def counts(
        self,
        *,
        by: Period | None = "day",
        events: Iterable[str] | None = None,
        unit: Unit = "events",
        since: Moment = None,
        until: Moment = None,
        month: str | None = None,
    ) -> list[Count]:
        """Events (or distinct users or sessions) per period and name, ordered by period then name."""
        found = filters(self._sql, self._window(since, until, month), events)
        text = counts_sql(self._sql, _period(by), check_unit(unit), found)
        if not self.exists():
            return []
        return [Count(period, event, int(n)) for period, event, n in self._sql.query(text, found.params)]

    def count(
        self,
        event: str | None = None,
        *,
        where: Mapping[str, Scalar] | None = None,
        unit: Unit = "events",
        since: Moment = None,
        until: Moment = None,
        month: str | None = None,
    ) -> int:
        """Events named `event` (any name if None), or their users or sessions, matching `where`."""
        names = None if event is None else [event]
        found = filters(self._sql, self._window(since, until, month), names, where)
        text = f"SELECT {UNITS[check_unit(unit)]} FROM {self._sql.quoted} WHERE {found.sql()}"
        return int(self._sql.query(text, found.params)[0][0]) if self.exists() else 0

    @overload
    def rate(
        self,
        numerator: str,
        denominator: str,
        *,
        where: Mapping[str, Scalar] | None = None,
        segment: Mapping[str, Scalar] | None = None,
        by: None = None,
        unit: Unit = "events",
        since: Moment = None,
        until: Moment = None,
        month: str | None = None,
    ) -> Rate: ...

    @overload
    def rate(
        self,
        numerator: str,
        denominator: str,
        *,
        where: Mapping[str, Scalar] | None = None,
        segment: Mapping[str, Scalar] | None = None,
        by: str,
        unit: Unit = "events",
        since: Moment = None,
        until: Moment = None,
        month: str | None = None,
    ) -> dict[str | None, Rate]: ...

    def rate(
        self,
        numerator: str,
        denominator: str,
        *,
        where: Mapping[str, Scalar] | None = None,
        segment: Mapping[str, Scalar] | None = None,
        by: str | None = None,
        unit: Unit = "events",
        since: Moment = None,
        until: Moment = None,
        month: str | None = None,
    ) -> Rate | dict[str | None, Rate]:
        """count(numerator) / count(denominator) over the period.

        `where` filters the numerator only, `segment` both; `by` names a property to group
        both by, giving a `Rate` per value (None: events without it). With `unit="sessions"`
        (or `"users"`) the numerator counts only sessions that are also in the denominator,
        so a rate never exceeds 100%: the escalation rate is
        `rate("session.escalate", "session.start", unit="sessions")`, a query success rate
        `rate("query.order", "query.order", where={"success": True})`, and per variant
        `rate("session.escalate", "session.start", unit="sessions", by="variant")`.
        """
        window = self._window(since, until, month)
        unit = check_unit(unit)
        below = filters(self._sql, window, [denominator], segment)
        above = filters(self._sql, window, [numerator], {**(segment or {}), **(where or {})})
        if unit != "events":
            key = KEYS[unit]
            above.add(f"{key} IN (SELECT {key} FROM {self._sql.quoted} WHERE {below.sql()})", *below.params)
        tops, bottoms = self._tally(above, unit, by), self._tally(below, unit, by)
        if by is None:
            return Rate(tops.get(None, 0), bottoms.get(None, 0))
        groups = sorted({*tops, *bottoms}, key=lambda group: (group is None, group or ""))
        return {group: Rate(tops.get(group, 0), bottoms.get(group, 0)) for group in groups}

    def _tally(self, found: Filters, unit: Unit, by: str | None) -> dict[str | None, int]:
        """Counts of the matching events (or their users or sessions), per value of property `by`."""
        group, params = self._sql.text(check_key(by)) if by is not None else ("NULL", [])
        text = (
            f"SELECT {group} AS grp, {UNITS[unit]} FROM {self._sql.quoted} WHERE {found.sql()} GROUP BY grp"
        )
        if not self.exists():
            return {}
        return {group: int(n) for group, n in self._sql.query(text, [*params, *found.params])}

    def numbers(
        self,
        key: str,
        *,
        events: Iterable[str] | None = None,
        by: Period | None = None,
        since: Moment = None,
        until: Moment = None,
        month: str | None = None,
    ) -> list[Numbers]:
        """Count, sum, mean, min and max of the numeric property `key` per event name (and period).

        Only JSON numbers count: a string "120" or a boolean is left out, on both backends.
        """
        number, params = self._sql.number(check_key(key))
        found = filters(self._sql, self._window(since, until, month), events)
        text = numbers_sql(self._sql, _period(by), number, found)
        if not self.exists():
            return []
        return [
            Numbers(period, event, int(n), float(total), float(low), float(high))
            for period, event, n, total, low, high in self._sql.query(text, [*params, *found.params])
        ]

    def funnel(
        self,
        first: str,
        then: str,
        *,
        within: float | str = "1d",
        unit: Unit = "users",
        since: Moment = None,
        until: Moment = None,
        month: str | None = None,
    ) -> Funnel:
        """Users (or sessions) whose first `first` in the period was followed by `then` within `within`.

        `within` is seconds or a duration ("30m", "1d"); `then` may fall after the period's end.
        On SQLite the window is exact to the millisecond.
        """
        if unit not in KEYS:
            raise ValueError(f"a funnel follows users or sessions, not {unit!r}")
        seconds = parse_duration(within)
        window = self._window(since, until, month)
        entered = filters(self._sql, window, [first])
        followed = Filters()
        followed.add("b.event_name = %s", then)
        followed.add("b.created_at > f.started" if then == first else "b.created_at >= f.started")
        text, params = self._sql.within("b.created_at", "f.started", seconds)
        followed.add(text, *params)
        if window[0] is not None:  # implied by the join; said outright so that an index serves it
            followed.add("b.created_at >= %s", self._sql.moment(window[0]))
        if not self.exists():
            return Funnel(first, then, 0, 0)
        query = funnel_sql(self._sql, KEYS[unit], entered, followed)
        [(count, converted)] = self._sql.query(query, [*entered.params, *followed.params])
        return Funnel(first, then, int(count), int(converted))

    def span(
        self, *, since: Moment = None, until: Moment = None, month: str | None = None
    ) -> tuple[datetime, datetime] | None:
        """(oldest, newest) event time in the period, or None when there is none."""
        found = filters(self._sql, self._window(since, until, month))
        if not self.exists():
            return None
        text = f"SELECT min(created_at), max(created_at) FROM {self._sql.quoted} WHERE {found.sql()}"
        [(oldest, newest)] = self._sql.query(text, found.params)
        return None if oldest is None else (self._sql.stamp(oldest), self._sql.stamp(newest))

    def close(self) -> None:
        """Close the connection (unless it was handed in open)."""
        self._sql.close()

    def __enter__(self) -> EventStats:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _window(
        self, since: Moment, until: Moment, month: str | None
    ) -> tuple[datetime | None, datetime | None]:
        start = self._moment(since, "since")
        end = self._moment(until, "until")
        if month is not None:
            first, after = _month(month)
            start = first if start is None else max(start, first)
            end = after if end is None else min(end, after)
        return start, end

    def _moment(self, value: Moment, what: str) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                return self._now() - timedelta(seconds=parse_duration(value))
            with contextlib.suppress(ValueError):
                return self._moment(datetime.fromisoformat(value), what)
        raise ValueError(f"{what}={value!r}: expected a datetime, a date, ISO text or a duration like '30d'")


def _period(by: str | None) -> Period | None:
    if by not in (None, "day", "month"):
        raise ValueError(f"by must be 'day', 'month' or None, not {by!r}")
    return by  # type: ignore[return-value]


def _month(month: str) -> tuple[datetime, datetime]:
    try:
        first = datetime.strptime(month, "%Y-%m").replace(tzinfo=UTC)
    except (TypeError, ValueError):
        raise ValueError(f"month={month!r}: expected YYYY-MM") from None
    return first, (first + timedelta(days=32)).replace(day=1)
