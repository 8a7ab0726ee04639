"""Shadow results per (flag, served engine, shadow engine, intent): agreement, latency, errors.

Cumulative since the process started, with a `window` for the last snapshot interval, like
every other series. Mismatch samples are bounded: each series keeps its worst (lowest
score) `mismatch_samples`; a metrics.jsonl line carries the worst of its own interval only
(`window.mismatches`), so each sample is written once.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from math import inf
from typing import Any

from turnout.telemetry.sketch import QuantileSketch

MAX_ERROR_TYPES = 50
OTHER = "other"
SCORE_BINS = 10
_QUANTILES = (0.5, 0.95, 0.99)

SeriesKey = tuple[str, str, str, str]
"""(flag, served engine, shadow engine, intent)."""


class _Latency:
    """Latency of one side: count, sum, sum of squares, max and a quantile sketch."""

    __slots__ = ("count", "max_ms", "sketch", "squares", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = self.squares = self.max_ms = 0.0
        self.sketch = QuantileSketch()

    def add(self, ms: float) -> None:
        if not 0.0 <= ms < inf:
            ms = 0.0
        self.count += 1
        self.total += ms
        self.squares += ms * ms
        if ms > self.max_ms:  # noqa: PLR1730 - as in the request metrics
            self.max_ms = ms
        self.sketch.add(ms)

    def fold(self, other: _Latency) -> None:
        self.count += other.count
        self.total += other.total
        self.squares += other.squares
        self.max_ms = max(self.max_ms, other.max_ms)
        self.sketch.merge(other.sketch)

    def copy(self) -> _Latency:
        new = _Latency()
        new.fold(self)
        return new

    def figures(self) -> dict[str, Any]:
        n = self.count
        p50, p95, p99 = (min(round(v, 3), self.max_ms) for v in self.sketch.quantiles(_QUANTILES))
        return {
            "mean": round(self.total / n, 3) if n else 0.0,
            "p50": p50,
            "p95": p95,
            "p99": p99,
            "max": round(self.max_ms, 3),
            "sum": round(self.total, 3),
            "sum_squares": round(self.squares, 3),
        }


class _Tally:
    """The counts of one series over some stretch of time."""

    __slots__ = (
        "compared",
        "diff_squares",
        "diff_total",
        "errors",
        "histogram",
        "limit",
        "matches",
        "mismatches",
        "offered",
        "score_squares",
        "score_total",
        "served",
        "shadow",
        "skipped",
        "timeouts",
    )

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.offered = self.skipped = self.compared = self.matches = self.timeouts = 0
        self.score_total = self.score_squares = 0.0
        self.diff_total = self.diff_squares = 0.0
        self.histogram = [0] * SCORE_BINS
        self.errors: dict[str, int] = {}
        self.served = _Latency()
        self.shadow = _Latency()
        # A max-heap on score through (-score, order, sample): the worst `limit` stay.
        self.mismatches: list[tuple[float, int, dict[str, Any]]] = []

    def keep(self, entry: tuple[float, int, dict[str, Any]]) -> None:
        if self.limit <= 0:
            return
        if len(self.mismatches) < self.limit:
            heapq.heappush(self.mismatches, entry)
        elif entry > self.mismatches[0]:
            heapq.heapreplace(self.mismatches, entry)

    def fold(self, other: _Tally) -> _Tally:
        self.offered += other.offered
        self.skipped += other.skipped
        self.compared += other.compared
        self.matches += other.matches
        self.timeouts += other.timeouts
        self.score_total += other.score_total
        self.score_squares += other.score_squares
        self.diff_total += other.diff_total
        self.diff_squares += other.diff_squares
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]
        for name, n in other.errors.items():
            self.errors[name] = self.errors.get(name, 0) + n
        self.served.fold(other.served)
        self.shadow.fold(other.shadow)
        for entry in other.mismatches:
            self.keep(entry)
        return self

    def figures(self, mismatches: bool) -> dict[str, Any]:
        n = self.compared
        failed = self.timeouts + sum(self.errors.values())
        attempted = n + failed
        out: dict[str, Any] = {
            "offered": self.offered,
            "skipped": self.skipped,
            "compared": n,
            "matches": self.matches,
            "match_rate": round(self.matches / n, 6) if n else None,
            "timeouts": self.timeouts,
            "errors": dict(sorted(self.errors.items())),
            "error_rate": round(failed / attempted, 6) if attempted else None,
            "score": {
                "mean": round(self.score_total / n, 6) if n else None,
                "sum": round(self.score_total, 6),
                "sum_squares": round(self.score_squares, 6),
                "histogram": list(self.histogram),
            },
            "served_latency_ms": self.served.figures(),
            "shadow_latency_ms": self.shadow.figures(),
            "latency_diff_ms": {
                "mean": round(self.diff_total / n, 3) if n else None,
                "sum": round(self.diff_total, 3),
                "sum_squares": round(self.diff_squares, 3),
            },
        }
        if mismatches:
            out["mismatches"] = [sample for _, _, sample in sorted(self.mismatches, reverse=True)]
        return out


class _Series:
    """One series: the live window under a small lock, and everything before it."""

    __slots__ = ("_base", "_live", "_lock", "_names")

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._live = _Tally(limit)
        self._base = _Tally(limit)
        self._names: set[str] = set()

    def offered(self, skipped: bool) -> None:
        with self._lock:
            self._live.offered += 1
            if skipped:
                self._live.skipped += 1

    def failed(self, error_type: str | None) -> None:
        with self._lock:
            if error_type is None:
                self._live.timeouts += 1
                return
            name = error_type[:100]
            if name not in self._names:
                if len(self._names) >= MAX_ERROR_TYPES:
                    name = OTHER
                else:
                    self._names.add(name)
            self._live.errors[name] = self._live.errors.get(name, 0) + 1

    def compared(
        self,
        match: bool,
        score: float,
        served_ms: float,
        shadow_ms: float,
        sample: dict[str, Any] | None,
        order: int,
    ) -> None:
        with self._lock:
            live = self._live
            live.compared += 1
            live.matches += match
            live.score_total += score
            live.score_squares += score * score
            live.histogram[min(int(score * SCORE_BINS), SCORE_BINS - 1)] += 1
            live.served.add(served_ms)
            live.shadow.add(shadow_ms)
            diff = shadow_ms - served_ms
            live.diff_total += diff
            live.diff_squares += diff * diff
            if sample is not None:
                live.keep((-score, order, sample))

    def take(self, reset_window: bool) -> dict[str, Any]:
        with self._lock:
            window = self._live
            if reset_window:
                self._live = _Tally(window.limit)
            else:
                window = _Tally(window.limit).fold(window)
        total = (self._base if reset_window else _Tally(window.limit).fold(self._base)).fold(window)
        # A jsonl line carries the interval's mismatches only; live figures keep the worst so far.
        out = total.figures(mismatches=not reset_window)
        out["window"] = window.figures(mismatches=True)
        return out


class ShadowStats:
    """Every shadow series of one Turnout; bounded in series, error names and samples."""

    def __init__(self, *, max_series: int = 1000) -> None:
        self.max_series = max_series
        self._series: dict[SeriesKey, _Series] = {}
        self._lock = threading.Lock()
        self._order = itertools.count()

    def series(self, key: SeriesKey, mismatch_samples: int) -> _Series:
        """The series for `key`, made on first use; past `max_series` new intents share `other`."""
        found = self._series.get(key)
        if found is not None:
            return found
        with self._lock:
            found = self._series.get(key)
            if found is None:
                if len(self._series) >= self.max_series:
                    key = (*key[:3], OTHER)
                    found = self._series.get(key)
                if found is None:
                    found = self._series[key] = _Series(mismatch_samples)
            return found

    def offered(self, key: SeriesKey, mismatch_samples: int, *, skipped: bool) -> None:
        """Count one sampled request handed to the shadow (skipped: no room to run it)."""
        self.series(key, mismatch_samples).offered(skipped)

    def failed(self, key: SeriesKey, mismatch_samples: int, error_type: str | None) -> None:
        """Count a shadow call that failed with `error_type`, or timed out (None)."""
        self.series(key, mismatch_samples).failed(error_type)

    def compared(
        self,
        key: SeriesKey,
        mismatch_samples: int,
        *,
        match: bool,
        score: float,
        served_ms: float,
        shadow_ms: float,
        sample: dict[str, Any] | None = None,
    ) -> None:
        """Count one comparison; `sample` (a mismatch's details) is kept if among the worst."""
        self.series(key, mismatch_samples).compared(
            match, score, served_ms, shadow_ms, sample, next(self._order)
        )

    def snapshot(self, reset_window: bool = True) -> dict[str, Any]:
        """`{flag: {"<served>-><shadow>": {"served", "shadow", "intents": {intent: figures}}}}`."""
        with self._lock:
            items = sorted(self._series.items())
        out: dict[str, Any] = {}
        for (flag, served, shadow, intent), series in items:
            pair = out.setdefault(flag, {}).setdefault(
                f"{served}->{shadow}", {"served": served, "shadow": shadow, "intents": {}}
            )
            pair["intents"][intent] = series.take(reset_window)
        return out
