"""Per-component and per-experiment-variant request metrics, cumulative and per interval."""

from __future__ import annotations

import functools
import inspect
import math
import operator
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from enum import StrEnum
from math import inf
from time import perf_counter
from typing import Any, ParamSpec, TypeVar, cast

import structlog

from turnout.config import ThresholdsConfig
from turnout.telemetry.sketch import QuantileSketch

P = ParamSpec("P")
R = TypeVar("R")

MAX_ERROR_TYPES = 50
OTHER_ERRORS = "other"
OVERFLOW_COMPONENT = "turnout.overflow"
FOLD_AT = 1024
"""Successes a series keeps waiting (see `MetricsRegistry.record`) before the recording call folds them."""
_QUANTILES = (0.5, 0.95, 0.99)
_NO_VARIANTS: dict[str, _Series] = {}

_log = structlog.get_logger("turnout.telemetry")


class _Tally:
    """Plain totals for one series over some stretch of time."""

    __slots__ = ("count", "errors", "exposures", "failures", "max_ms", "sketch", "squares_ms", "total_ms")

    def __init__(self) -> None:
        self.count = self.failures = self.exposures = 0
        self.total_ms = self.max_ms = self.squares_ms = 0.0
        self.sketch = QuantileSketch()
        self.errors: dict[str, int] = {}

    def fold(self, other: _Tally) -> _Tally:
        self.count += other.count
        self.failures += other.failures
        self.exposures += other.exposures
        self.total_ms += other.total_ms
        self.squares_ms += other.squares_ms
        self.max_ms = max(self.max_ms, other.max_ms)
        self.sketch.merge(other.sketch)
        for name, n in other.errors.items():
            self.errors[name] = self.errors.get(name, 0) + n
        return self

    def figures(self, exposures: bool) -> dict[str, Any]:
        n = self.count
        p50, p95, p99 = (min(round(v, 3), self.max_ms) for v in self.sketch.quantiles(_QUANTILES))
        out: dict[str, Any] = {"exposures": self.exposures} if exposures else {}
        out["total_requests"] = n
        out["success_rate"] = round((n - self.failures) / n, 6) if n else None
        mean = round(self.total_ms / n, 3) if n else 0.0
        # The standard deviation lets reports compare variants' latencies with a t-test.
        sd = math.sqrt(max(0.0, (self.squares_ms - self.total_ms**2 / n) / (n - 1))) if n > 1 else 0.0
        out["latency_ms"] = {
            "mean": mean,
            "sd": round(sd, 3),
            "p50": p50,
            "p95": p95,
            "p99": p99,
            "max": round(self.max_ms, 3),
        }
        out["errors"] = dict(sorted(self.errors.items()))
        return out


@dataclass(frozen=True, slots=True)
class Totals:
    """Raw cumulative figures of one series: what windows are cut from by subtraction."""

    count: int
    failures: int
    exposures: int
    total_ms: float
    squares_ms: float
    sketch: QuantileSketch


class _Series(_Tally):
    """One component or variant: the live window (inherited fields) under a tiny lock, and the past.

    Successes wait as bare latencies in `waiting` (an append, no lock, no sketch update: the
    request path's way) and are folded in before anything reads the series.
    """

    __slots__ = ("_base", "_lock", "_names", "waiting")

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self._base = _Tally()
        self._names: set[str] = set()
        self.waiting: deque[float] = deque()

    def fold_waiting(self) -> None:
        """Fold the successes waiting in `waiting` into the figures."""
        if self.waiting:
            self.record_successes(_drain(self.waiting))

    def record(self, latency_ms: float, ok: bool, error_type: str | None) -> None:
        if ok:  # every read folds what waits first: the same figures, without the lock
            waiting = self.waiting
            waiting.append(latency_ms)
            if len(waiting) >= FOLD_AT:
                self.record_successes(_drain(waiting))
            return
        if not 0.0 <= latency_ms < inf:  # negative (clock skew), NaN or inf
            latency_ms = 0.0
        with self._lock:
            self.count += 1
            self.total_ms += latency_ms
            self.squares_ms += latency_ms * latency_ms
            if latency_ms > self.max_ms:  # noqa: PLR1730 - a call to max() costs more on the hot path
                self.max_ms = latency_ms
            self.sketch.add(latency_ms)
            self._fail(error_type)

    def record_successes(self, latencies: Iterable[float]) -> None:
        """`record(latency, True, None)` for each latency, under one hold of the lock."""
        clean = [given if 0.0 <= given < inf else 0.0 for given in latencies]
        if not clean:
            return
        with self._lock:
            self.count += len(clean)
            self.total_ms += sum(clean)
            self.squares_ms += sum(map(operator.mul, clean, clean))
            self.max_ms = max(self.max_ms, *clean)
            self.sketch.add_all(clean)

    def _fail(self, error_type: str | None) -> None:
        name = (error_type or "unknown")[:100]
        if name not in self._names:
            if len(self._names) >= MAX_ERROR_TYPES:
                name = OTHER_ERRORS
            else:
                self._names.add(name)
        self.failures += 1
        self.errors[name] = self.errors.get(name, 0) + 1

    def expose(self) -> None:
        with self._lock:
            self.exposures += 1

    def totals(self) -> Totals:
        """Everything counted so far; callers serialise calls with `take` (registry lock)."""
        self.fold_waiting()
        with self._lock:
            live = _Tally().fold(self)
        whole = live.fold(self._base)
        return Totals(
            whole.count, whole.failures, whole.exposures, whole.total_ms, whole.squares_ms, whole.sketch
        )

    def take(self, reset_window: bool, exposures: bool) -> dict[str, Any]:
        """Cumulative stats with a `window` object; callers serialise calls (registry lock)."""
        self.fold_waiting()
        window = _Tally()
        with self._lock:
            window.count, window.failures, window.exposures = self.count, self.failures, self.exposures
            window.total_ms, window.max_ms = self.total_ms, self.max_ms
            window.squares_ms = self.squares_ms
            window.sketch = self.sketch.copy()
            window.errors = self.errors if reset_window else dict(self.errors)
            if reset_window:  # a copy and a zeroing of ≤ 19 KB: microseconds under the lock
                self.sketch.reset()
                self.errors = {}
                self.count = self.failures = self.exposures = 0
                self.total_ms = self.max_ms = self.squares_ms = 0.0
        total = (self._base if reset_window else _Tally().fold(self._base)).fold(window)
        out = total.figures(exposures)
        out["window"] = window.figures(exposures)
        return out


class MetricsRegistry:
    """Request metrics keyed by component name and by (experiment, variant)."""

    def __init__(self, *, max_series: int = 1000) -> None:
        self.max_series = max_series
        self._components: dict[str, _Series] = {}
        self._experiments: dict[str, dict[str, _Series]] = {}
        self._flags: dict[str, str] = {}
        self._create_lock = threading.Lock()
        self._snapshot_lock = threading.Lock()

    def record(self, component: str, latency_ms: float, ok: bool, error_type: str | None = None) -> None:
        """Count one call of `component`: its latency and whether it succeeded.

        A success costs one append, no lock and no sketch update (every decision and engine call
        records one): it waits in its series and whatever reads the series folds it in first; past
        `FOLD_AT` waiting, the recording call folds them itself, so memory stays bounded.
        """
        self._component(component).record(latency_ms, ok, error_type)

    def record_variant(
        self,
        experiment: str,
        flag: str,
        variant: str,
        latency_ms: float,
        ok: bool,
        error_type: str | None = None,
    ) -> None:
        """Count one request served by `variant` of `experiment`."""
        self._variant(experiment, flag, variant).record(latency_ms, ok, error_type)

    def expose(self, experiment: str, flag: str, variant: str) -> None:
        """Count one exposure of a user to `variant` of `experiment`."""
        self._variant(experiment, flag, variant).expose()

    def measure(self, component: str) -> Measure:
        """Time a block (`with`, `async with`) or every call of a function (decorator)."""
        return Measure(self, component)

    def snapshot(self, reset_window: bool = True) -> dict[str, Any]:
        """`{"components": ..., "experiments": ...}` as in metrics.jsonl, without `status`."""
        with self._snapshot_lock:
            with self._create_lock:
                components = sorted(self._components.items())
                experiments = [
                    (name, self._flags[name], sorted(variants.items()))
                    for name, variants in sorted(self._experiments.items())
                ]
            return {
                "components": {name: s.take(reset_window, False) for name, s in components},
                "experiments": {
                    name: {"flag": flag, "variants": {v: s.take(reset_window, True) for v, s in variants}}
                    for name, flag, variants in experiments
                },
            }

    def totals(self, experiment: str) -> dict[str, Totals]:
        """Cumulative raw figures of each variant of `experiment` (no window is closed)."""
        with self._snapshot_lock:
            with self._create_lock:
                variants = list(self._experiments.get(experiment, _NO_VARIANTS).items())
            return {name: series.totals() for name, series in variants}

    def _component(self, component: str) -> _Series:
        series = self._components.get(component)
        return series if series is not None else self._create(None, "", component)

    def _variant(self, experiment: str, flag: str, variant: str) -> _Series:
        series = self._experiments.get(experiment, _NO_VARIANTS).get(variant)
        return series if series is not None else self._create(experiment, flag, variant)

    def _create(self, experiment: str | None, flag: str, name: str) -> _Series:
        """The series for a component (`experiment` None) or a variant, made on first use."""
        with self._create_lock:
            if experiment is None:
                table = self._components
            else:
                table = self._experiments.setdefault(experiment, {})
                self._flags.setdefault(experiment, flag)
            series = table.get(name)
            if series is not None:
                return series
            # Names that grow with traffic (ids passed as components) must not grow memory.
            if len(self._components) + sum(map(len, self._experiments.values())) >= self.max_series:
                if OVERFLOW_COMPONENT not in self._components:
                    _log.warning("metrics_series_limit", max_series=self.max_series, first_dropped=name)
                return self._components.setdefault(OVERFLOW_COMPONENT, _Series())
            series = table[name] = _Series()
            return series


def _drain(waiting: deque[float]) -> list[float]:
    """What `waiting` holds now. popleft is atomic: two folders share the items, neither loses
    one, and latencies appended meanwhile wait for the next fold."""
    pop = waiting.popleft
    taken = []
    for _ in range(len(waiting)):
        try:
            taken.append(pop())
        except IndexError:  # another fold took the rest
            break
    return taken


class Measure:
    """Records the latency and outcome of a block or a function into one component.

    An exception marks the call failed under its class name and is re-raised. One object may
    be entered from many threads or tasks at once, and nested.
    """

    __slots__ = ("_component", "_registry", "_starts")

    def __init__(self, registry: MetricsRegistry, component: str) -> None:
        self._registry = registry
        self._component = component
        self._starts: ContextVar[tuple[float, ...]] = ContextVar("turnout_measure_starts", default=())

    def __enter__(self) -> Measure:
        self._starts.set((*self._starts.get(), perf_counter()))
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        starts = self._starts.get()
        self._starts.set(starts[:-1])
        self._done(starts[-1], exc_type)

    async def __aenter__(self) -> Measure:
        return self.__enter__()

    async def __aexit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        self.__exit__(exc_type)

    def __call__(self, fn: Callable[P, R]) -> Callable[P, R]:
        done = self._done
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def timed_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                start = perf_counter()
                try:
                    result = await afn(*args, **kwargs)
                except BaseException as exc:
                    done(start, type(exc))
                    raise
                done(start, None)
                return result

            return cast(Callable[P, R], timed_async)

        @functools.wraps(fn)
        def timed(*args: P.args, **kwargs: P.kwargs) -> R:
            start = perf_counter()
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                done(start, type(exc))
                raise
            done(start, None)
            return result

        return timed

    def _done(self, start: float, exc_type: type[BaseException] | None) -> None:
        elapsed_ms = (perf_counter() - start) * 1000.0
        error = None if exc_type is None else exc_type.__name__
        self._registry.record(self._component, elapsed_ms, exc_type is None, error)


class Health(StrEnum):
    """How a component or variant is doing against its thresholds."""

    HEALTHY = "healthy"
    WARNING = "warning"
    CRITICAL = "critical"


_DEFAULTS = ThresholdsConfig()


def health(stats: Mapping[str, Any], thresholds: object | None = None) -> tuple[Health, str]:
    """Judge one stats object (a component's, a variant's or a `window`): status and reason in words.

    `thresholds`: any object with `ThresholdsConfig`'s attributes (a missing or None one takes the
    default), e.g. a ThresholdsConfig. The success rate is only judged from `min_samples` requests on.
    """
    limit = {
        name: float(getattr(_DEFAULTS, name) if (v := getattr(thresholds, name, None)) is None else v)
        for name in ThresholdsConfig.model_fields
    }
    n = int(stats.get("total_requests", 0))
    if n == 0:
        return Health.HEALTHY, "no requests"
    p99 = float(stats["latency_ms"]["p99"])
    rate = float(stats["success_rate"])
    critical: list[str] = []
    warning: list[str] = []
    if p99 > limit["p99_ms_critical"]:
        critical.append(f"P99 {_ms(p99)} ms > {_ms(limit['p99_ms_critical'])} ms")
    elif p99 > limit["p99_ms_warning"]:
        warning.append(f"P99 {_ms(p99)} ms > {_ms(limit['p99_ms_warning'])} ms")
    if n >= limit["min_samples"]:
        if rate < limit["critical_success_rate"]:
            critical.append(f"success rate {rate:.1%} < {limit['critical_success_rate']:.1%}")
        elif rate < limit["min_success_rate"]:
            warning.append(f"success rate {rate:.1%} < {limit['min_success_rate']:.1%}")
    status = Health.CRITICAL if critical else Health.WARNING if warning else Health.HEALTHY
    return status, "; ".join(critical + warning) or "within thresholds"


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
