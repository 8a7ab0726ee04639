"""An experiment's numbers from the events table, computed in SQL on SQLite and PostgreSQL.

GrowthBook's model: a user enters the experiment at their first exposure to a variant
(`$exposure` events, which turnout tracks by itself); a metric counts the events that user
tracked afterwards, joined by `distinct_id` — events need not carry the variant. Only
per-variant (and per-segment) totals leave the database: a count, a sum and a sum of
squares of the per-user values, which is all a comparison needs.

Exposures are found through an index on (experiment, distinct_id) over `$exposure` rows
that the SQLite and PostgreSQL sinks create (a report adds it to an older SQLite file).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from turnout.analysis.summaries import Means, Proportions, Summary
from turnout.config import MetricConfig
from turnout.events.model import EXPOSURE, RECORD
from turnout.events.stats_sql import AnyDialect, Filters, SQLiteDialect, check_key, filters, open_dialect

Key = tuple[str, str | None]
"""(variant, segment value or None)."""


@dataclass(frozen=True, slots=True)
class Metric:
    """A metric as the queries need it (from `[metrics.NAME]`)."""

    name: str
    type: Literal["proportion", "mean"]
    event: str
    where: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    value: str | None = None
    per_user: Literal["sum", "mean"] = "sum"
    capping: float | None = None
    direction: Literal["increase", "decrease"] = "increase"
    window_s: float | None = None

    @classmethod
    def from_config(cls, name: str, config: MetricConfig) -> Metric:
        """The metric `[metrics.NAME]` defines; a mean without `event` reads `turnout.record` values."""
        return cls(
            name=name,
            type=config.type,
            event=config.event or RECORD,
            where=dict(config.where),
            value=(config.value or name) if config.type == "mean" else None,
            per_user=config.per_user,
            capping=config.capping,
            direction=config.direction,
            window_s=config.window,
        )


class ExperimentData:
    """One experiment's exposures and metrics in an events database (URL, path, sink, connection).

    The work is done once, on first use, in two passes over the table: the first exposure of
    each (user, variant) with its segment (`by`) into a temporary table, then each user's
    value of every metric in `metrics` from the events they tracked after it (one join on
    `distinct_id` for all metrics) into another. Everything else reads those small tables.
    """

    def __init__(
        self,
        source: object,
        experiment: str,
        *,
        metrics: Sequence[Metric] = (),
        by: str | None = None,
        table: str | None = None,
    ) -> None:
        self.dialect: AnyDialect = open_dialect(source, table)
        self.experiment = experiment
        self.metrics = {metric.name: metric for metric in metrics}
        self.by = by
        if by is not None:
            check_key(by)
        suffix = secrets.token_hex(4)
        self._users, self._values = f"turnout_users_{suffix}", f"turnout_values_{suffix}"
        self._columns = {name: f"m{index}" for index, name in enumerate(self.metrics)}
        self._state: bool | None = None  # None: not loaded yet; False: no events table

    def close(self) -> None:
        """Drop the temporary tables and close the connection if this object opened it."""
        if self._state and not self.dialect.owned:
            for name in (self._users, self._values):
                with contextlib.suppress(Exception):
                    self._execute(f"DROP TABLE IF EXISTS {name}", [])
        self.dialect.close()

    def __enter__(self) -> ExperimentData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def users(self, *, segmented: bool = False) -> dict[Key, int]:
        """Exposed users per variant (and per segment of `by` when `segmented`)."""
        if not self._load():
            return {}
        segment, group = ("segment", "variant, segment") if segmented else ("NULL", "variant")
        text = f"SELECT variant, {segment}, count(*) FROM {self._users} GROUP BY {group}"
        return {(str(v), _segment(s)): int(n) for v, s, n in self.dialect.query(text, []) if v is not None}

    def exposures_by_day(self) -> list[tuple[str, str, int]]:
        """(UTC day, variant, users first exposed that day), by day."""
        if not self._load():
            return []
        day = self.dialect.bucket("day").replace("created_at", "first_seen")
        text = (
            f"SELECT {day} AS day, variant, count(*) FROM {self._users}"
            " GROUP BY day, variant ORDER BY day, variant"
        )
        return [(str(d), str(v), int(n)) for d, v, n in self.dialect.query(text, []) if v is not None]

    def summaries(self, name: str, *, segmented: bool = False) -> dict[Key, Summary]:
        """Per variant (and segment): `Proportions` or `Means` of the per-user values of metric `name`."""
        metric = self.metrics[name]
        if not self._load():
            return {}
        column = self._columns[name]
        value, params = column, []
        if metric.capping is not None:
            cap = self._cap(column, metric.capping)
            if cap is not None:
                value, params = f"CASE WHEN {column} > %s THEN %s ELSE {column} END", [cap, cap]
        segment, group = ("segment", "variant, segment") if segmented else ("NULL", "variant")
        text = (
            f"SELECT variant, {segment}, count(v), sum(v), sum(v * v)"
            f" FROM (SELECT variant, segment, {value} AS v FROM {self._values}) AS per_user"
            f" GROUP BY {group}"
        )
        found: dict[Key, Summary] = {}
        for variant, seg, count, value_sum, value_squares in self.dialect.query(text, params):
            if variant is None:
                continue
            key = (str(variant), _segment(seg))
            n, total, squares = int(count), float(value_sum or 0), float(value_squares or 0)
            if metric.type == "proportion":
                found[key] = Proportions(n=n, successes=round(total))
            else:
                found[key] = Means(n=n, sum=total, sum_squares=squares)
        return found

    # -- SQL -------------------------------------------------------------------------------

    def _load(self) -> bool:
        if self._state is None:
            self._state = self.dialect.exists()
            if self._state:
                self._ensure_index()
                exposed, params = self._exposed()
                self._execute(f"CREATE TEMP TABLE {self._users} AS {exposed}", params)
                per_user, params = self._per_user()
                self._execute(f"CREATE TEMP TABLE {self._values} AS {per_user}", params)
        return self._state

    def _execute(self, text: str, params: Sequence[Any]) -> None:
        """Run a statement that returns no rows."""
        if isinstance(self.dialect, SQLiteDialect):
            text = text.replace("%s", "?")
        with self.dialect.lock:
            self.dialect.connection.execute(text, params)

    def _ensure_index(self) -> None:
        """The exposure index, for SQLite files written before the sink created it (best effort).

        On PostgreSQL the sink's schema migration creates it; a report never builds an index
        there, which would hold up the application's inserts while it runs.
        """
        if not isinstance(self.dialect, SQLiteDialect):
            return
        name = self.dialect.table.rpartition(".")[2]
        text = (
            f'CREATE INDEX IF NOT EXISTS "idx_{name}_exposure" ON {self.dialect.quoted}'
            f" ({self._text('experiment')}, distinct_id) WHERE event_name = '{EXPOSURE}'"
        )
        try:
            self._execute(text, [])
        except Exception:  # a read-only file: the report still works, only slower
            self.dialect.connection.rollback()

    def _text(self, *path: str) -> str:
        """A property (nested by `path`) as text, NULL when missing.

        Written out without parameters: the exposure index only serves a query whose
        expression is the same text, and GROUP BY must see the same expression twice. The
        keys are checked to hold no quotes or backslashes.
        """
        for key in path:
            check_key(key)
        if isinstance(self.dialect, SQLiteDialect):
            return "json_extract(properties, '$" + "".join(f'."{key}"' for key in path) + "')"
        *parents, last = path
        return "(properties" + "".join(f" -> '{key}'" for key in parents) + f" ->> '{last}')"

    def _exposed(self) -> tuple[str, list[Any]]:
        """Each (user, variant) with its first exposure time and segment."""
        variant = self._text("variant")
        if self.by is None:
            segment = "CAST(NULL AS TEXT)"
        else:
            segment = f"CAST(coalesce({self._text(self.by)}, {self._text('attributes', self.by)}) AS TEXT)"
        text = (
            f"SELECT distinct_id AS who, {variant} AS variant, min({segment}) AS segment,"
            f" min(created_at) AS first_seen FROM {self.dialect.quoted}"
            f" WHERE event_name = '{EXPOSURE}' AND {self._text('experiment')} = %s"
            f" GROUP BY distinct_id, {variant}"
        )
        return text, [self.experiment]

    def _per_user(self) -> tuple[str, list[Any]]:
        """Each exposed user's value of every metric: one pass over their later events."""
        columns: list[str] = []
        params: list[Any] = []
        for name, metric in self.metrics.items():
            # `properties` and `created_at` are the event's here: the users table has neither.
            condition, condition_params = self._matches(metric)
            if metric.type == "proportion":
                columns.append(f"max(CASE WHEN {condition} THEN 1 ELSE 0 END) AS {self._columns[name]}")
                params += condition_params
                continue
            number, number_params = self.dialect.number(metric.value or metric.name)
            picked = f"CASE WHEN {condition} THEN {number} END"
            aggregate = f"coalesce(sum({picked}), 0)" if metric.per_user == "sum" else f"avg({picked})"
            columns.append(f"{aggregate} AS {self._columns[name]}")
            params += [*condition_params, *number_params]
        names = list(dict.fromkeys(metric.event for metric in self.metrics.values()))
        # SQLite would walk the (event_name, created_at) index once per user; `+` makes it look
        # each user's events up by distinct_id instead, which is what keeps a large report fast.
        name_column = "+m.event_name" if isinstance(self.dialect, SQLiteDialect) else "m.event_name"
        in_names = f"{name_column} IN ({', '.join(['%s'] * len(names))})" if names else "1 = 0"
        listed = "".join(f", {column}" for column in columns)
        text = (
            f"SELECT x.variant AS variant, x.segment AS segment, x.who AS who{listed}"
            f" FROM {self._users} AS x LEFT JOIN {self.dialect.quoted} AS m"
            f" ON m.distinct_id = x.who AND m.created_at >= x.first_seen AND {in_names}"
            " GROUP BY x.variant, x.segment, x.who"
        )
        return text, [*params, *names]

    def _matches(self, metric: Metric) -> tuple[str, list[Any]]:
        """The condition an event meets to count for `metric` (name, properties, window)."""
        picked: Filters = filters(self.dialect, (None, None), None, metric.where)
        condition = f"m.event_name = %s AND {picked.sql()}"
        params: list[Any] = [metric.event, *picked.params]
        if metric.window_s is not None:
            within, within_params = self.dialect.within("m.created_at", "x.first_seen", metric.window_s)
            condition = f"{condition} AND {within}"
            params += within_params
        return condition, params

    def _cap(self, column: str, percentile: float) -> float | None:
        """The per-user value at `percentile` over every variant, or None without values."""
        rows = self.dialect.query(f"SELECT count({column}) FROM {self._values}", [])
        count = int(rows[0][0]) if rows else 0
        if count == 0:
            return None
        offset = min(count - 1, int(percentile * (count - 1)))
        text = (
            f"SELECT {column} FROM {self._values} WHERE {column} IS NOT NULL"
            f" ORDER BY {column} LIMIT 1 OFFSET %s"
        )
        found = self.dialect.query(text, [offset])
        return float(found[0][0]) if found else None


def _segment(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
