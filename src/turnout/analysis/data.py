"""An experiment's numbers from the events table, computed in SQL on SQLite and PostgreSQL.

GrowthBook's model: a user enters the experiment at their first exposure to a variant
(`$exposure` events, which turnout tracks by itself); a metric counts the events that user
tracked afterwards, joined by `distinct_id` — events need not carry the variant. Only
per-variant (and per-segment) totals leave the database: a count, a sum and a sum of
squares of the per-user values, which is all a comparison needs.

Exposures are found through an index on (experiment, distinct_id) over `$exposure` rows
that the SQLite and PostgreSQL sinks create; a report creates it when it is missing.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    """Reads one experiment's exposures and metrics from an events database (URL, path, sink)."""

    def __init__(self, source: object, experiment: str, *, table: str | None = None) -> None:
        self.dialect: AnyDialect = open_dialect(source, table)
        self.experiment = experiment
        self._indexed = False

    def close(self) -> None:
        """Close the connection if this object opened it."""
        self.dialect.close()

    def __enter__(self) -> ExperimentData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def users(self, by: str | None = None) -> dict[Key, int]:
        """Exposed users per variant (and segment)."""
        if not self._exists():
            return {}
        exposed, params = self._exposed(by)
        text = (
            f"WITH exposed AS ({exposed}) SELECT variant, segment, count(*) FROM exposed"
            " GROUP BY variant, segment"
        )
        return {
            (str(v), _segment(s)): int(n) for v, s, n in self.dialect.query(text, params) if v is not None
        }

    def exposures_by_day(self) -> list[tuple[str, str, int]]:
        """(UTC day, variant, users first exposed that day), by day."""
        if not self._exists():
            return []
        exposed, params = self._exposed(None)
        day = self.dialect.bucket("day").replace("created_at", "first_seen")
        text = (
            f"WITH exposed AS ({exposed}) SELECT {day} AS day, variant, count(*) FROM exposed"
            " GROUP BY day, variant ORDER BY day, variant"
        )
        return [(str(d), str(v), int(n)) for d, v, n in self.dialect.query(text, params) if v is not None]

    def summaries(self, metric: Metric, by: str | None = None) -> dict[Key, Summary]:
        """Per variant (and segment): `Proportions` or `Means` of the per-user values of `metric`."""
        if not self._exists():
            return {}
        per_user, params = self._per_user(metric, by)
        source = "per_user"
        if metric.capping is not None:
            cap = self._cap(per_user, params, metric.capping)
            if cap is not None:
                per_user += (
                    ", capped AS (SELECT variant, segment,"
                    " CASE WHEN value > %s THEN %s ELSE value END AS value FROM per_user)"
                )
                params = [*params, cap, cap]
                source = "capped"
        text = (
            f"WITH {per_user} SELECT variant, segment, count(value), sum(value), sum(value * value)"
            f" FROM {source} GROUP BY variant, segment"
        )
        found: dict[Key, Summary] = {}
        for variant, segment, count, value_sum, value_squares in self.dialect.query(text, params):
            if variant is None:
                continue
            key = (str(variant), _segment(segment))
            n, total, squares = int(count), float(value_sum or 0), float(value_squares or 0)
            if metric.type == "proportion":
                found[key] = Proportions(n=n, successes=round(total))
            else:
                found[key] = Means(n=n, sum=total, sum_squares=squares)
        return found

    # -- SQL -------------------------------------------------------------------------------

    def _exists(self) -> bool:
        if not self.dialect.exists():
            return False
        if not self._indexed:
            self._indexed = True
            self._ensure_index()
        return True

    def _ensure_index(self) -> None:
        """The exposure index, for databases written before the sinks created it (best effort)."""
        name = self.dialect.table.rpartition(".")[2]
        text = (
            f'CREATE INDEX IF NOT EXISTS "idx_{name}_exposure" ON {self.dialect.quoted}'
            f" ({self._text('experiment')}, distinct_id) WHERE event_name = '{EXPOSURE}'"
        )
        try:
            self.dialect.query(text, [])
        except Exception:
            # A read-only database or role: the report still works, only slower.
            if isinstance(self.dialect, SQLiteDialect):
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

    def _segment_expression(self, by: str | None) -> str:
        if by is None:
            return "CAST(NULL AS TEXT)"
        return f"CAST(coalesce({self._text(by)}, {self._text('attributes', by)}) AS TEXT)"

    def _exposed(self, by: str | None) -> tuple[str, list[Any]]:
        """Each (user, variant) with its first exposure time and segment."""
        variant = self._text("variant")
        segment = self._segment_expression(by)
        text = (
            f"SELECT distinct_id AS who, {variant} AS variant, min({segment}) AS segment,"
            f" min(created_at) AS first_seen FROM {self.dialect.quoted}"
            f" WHERE event_name = '{EXPOSURE}' AND {self._text('experiment')} = %s"
            f" GROUP BY distinct_id, {variant}"
        )
        return text, [self.experiment]

    def _per_user(self, metric: Metric, by: str | None) -> tuple[str, list[Any]]:
        """The CTEs `exposed` and `per_user` (variant, segment, who, value)."""
        exposed, params = self._exposed(by)
        # `properties` and `created_at` below are the event's: the exposures CTE has neither.
        picked: Filters = filters(self.dialect, (None, None), None, metric.where)
        select_params: list[Any] = []
        if metric.type == "mean":
            number, select_params = self.dialect.number(metric.value or metric.name)
            aggregate = f"coalesce(sum({number}), 0)" if metric.per_user == "sum" else f"avg({number})"
        else:
            aggregate = "CASE WHEN count(m.distinct_id) > 0 THEN 1 ELSE 0 END"
        # SQLite would walk the (event_name, created_at) index once per user; `+` makes it look the
        # user's events up by distinct_id instead, which is what keeps a large report fast.
        name = "+m.event_name" if isinstance(self.dialect, SQLiteDialect) else "m.event_name"
        join = f"m.distinct_id = x.who AND {name} = %s AND m.created_at >= x.first_seen AND {picked.sql()}"
        join_params: list[Any] = [metric.event, *picked.params]
        if metric.window_s is not None:
            within, within_params = self.dialect.within("m.created_at", "x.first_seen", metric.window_s)
            join = f"{join} AND {within}"
            join_params += within_params
        text = (
            f"exposed AS ({exposed}),"
            f" per_user AS (SELECT x.variant, x.segment, x.who, {aggregate} AS value"
            f" FROM exposed AS x LEFT JOIN {self.dialect.quoted} AS m ON {join}"
            " GROUP BY x.variant, x.segment, x.who)"
        )
        return text, [*params, *select_params, *join_params]

    def _cap(self, per_user: str, params: list[Any], percentile: float) -> float | None:
        """The per-user value at `percentile` over every variant, or None without values."""
        rows = self.dialect.query(f"WITH {per_user} SELECT count(value) FROM per_user", params)
        count = int(rows[0][0]) if rows else 0
        if count == 0:
            return None
        offset = min(count - 1, int(percentile * (count - 1)))
        text = (
            f"WITH {per_user} SELECT value FROM per_user WHERE value IS NOT NULL"
            " ORDER BY value LIMIT 1 OFFSET %s"
        )
        found = self.dialect.query(text, [*params, offset])
        return float(found[0][0]) if found else None


def _segment(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
