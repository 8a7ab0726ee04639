"""Figures read from metrics.jsonl, per component and variant, and how they are merged.

Counts, successes and errors are summed and means weighted by request count, so those are exact.
Percentiles cannot be added up: when several processes or windows are merged, each one's latency
distribution is interpolated linearly through its p50/p95/p99/max, the distributions are mixed in
proportion to their request counts and the percentiles are read off the mixture. Such a percentile
is an estimate; it always lies between the smallest and the largest of the merged values, and the
dashboard says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from turnout.config import ThresholdsConfig
from turnout.telemetry.metrics import Health
from turnout.telemetry.metrics import health as judge

_LEVELS = (0.5, 0.95, 0.99, 1.0)


@dataclass(frozen=True, slots=True)
class Latency:
    """Latency in milliseconds; None where the line had no value."""

    mean: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    max: float | None = None


@dataclass(frozen=True, slots=True)
class Figures:
    """One component or experiment variant, as read or merged from `sources` lines or windows."""

    total_requests: int
    success_rate: float | None = None
    latency: Latency = Latency()
    errors: Mapping[str, int] = field(default_factory=dict)
    status: str | None = None
    status_reason: str = ""
    exposures: int | None = None
    sources: int = 1


@dataclass(frozen=True, slots=True)
class Experiment:
    """An experiment's flag and its variants' figures."""

    flag: str | None
    variants: Mapping[str, Figures]


@dataclass(frozen=True, slots=True)
class Reading:
    """One valid line of metrics.jsonl, as read."""

    timestamp: datetime
    process: str
    components: Mapping[str, Figures]
    experiments: Mapping[str, Experiment]
    decisions: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Decisions per flag and reason: since the process started, or in the line's window."""


@dataclass(frozen=True, slots=True)
class Dashboard:
    """Everything the dashboard shows; `problem` explains why there is nothing to show."""

    path: str
    since: str | None
    components: Mapping[str, Figures]
    experiments: Mapping[str, Experiment]
    processes: Mapping[str, datetime]
    snapshots: int
    malformed: int
    malformed_lines: tuple[int, ...]
    problem: str | None = None
    decisions: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    """Decisions per flag and reason, added up over the lines read (as `components`)."""

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def estimated_percentiles(self) -> bool:
        every = [*self.components.values()]
        every += [fig for exp in self.experiments.values() for fig in exp.variants.values()]
        return any(fig.sources > 1 for fig in every)


def health(figures: Figures, limits: ThresholdsConfig) -> tuple[str, str]:
    """Status (`healthy`/`warning`/`critical`, or `idle` without requests) and its reason.

    The same judgement the snapshot loop writes into each line (`telemetry.metrics.health`).
    """
    if figures.total_requests == 0:
        return "idle", ""
    rate = figures.success_rate
    stats = {
        "total_requests": figures.total_requests,
        "success_rate": 1.0 if rate is None else rate,
        "latency_ms": {"p99": figures.latency.p99 or 0.0},
    }
    status, reason = judge(stats, limits)
    return status.value, "" if status is Health.HEALTHY else reason


def merge(parts: Sequence[Figures], limits: ThresholdsConfig) -> Figures:
    """Add up figures of several processes or windows; a single part is kept as written."""
    if len(parts) == 1:
        only = parts[0]
        if only.status:
            return only
        status, reason = health(only, limits)
        return replace(only, status=status, status_reason=reason)
    total = sum(part.total_requests for part in parts)
    busy = [part for part in parts if part.total_requests > 0]
    errors: dict[str, int] = {}
    for part in parts:
        for kind, count in part.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    exposures = [part.exposures for part in parts if part.exposures is not None]
    p50, p95, p99 = _mixture_percentiles(busy)
    maxima = [part.latency.max for part in busy if part.latency.max is not None]
    merged = Figures(
        total_requests=total,
        success_rate=_weighted(busy, lambda part: part.success_rate),
        latency=Latency(_weighted(busy, lambda p: p.latency.mean), p50, p95, p99, max(maxima, default=None)),
        errors=errors,
        exposures=sum(exposures) if exposures else None,
        sources=sum(part.sources for part in parts),
    )
    status, reason = health(merged, limits)
    return replace(merged, status=status, status_reason=reason)


def _weighted(parts: Iterable[Figures], value: Callable[[Figures], float | None]) -> float | None:
    pairs = [(part.total_requests, v) for part in parts if (v := value(part)) is not None]
    weight = sum(count for count, _ in pairs)
    return sum(count * v for count, v in pairs) / weight if weight else None


def _mixture_percentiles(parts: Sequence[Figures]) -> list[float | None]:
    # Each part's CDF runs linearly through (0, 0), (p50, .5), (p95, .95), (p99, .99), (max, 1);
    # sweeping the mixture's breakpoints in order finds where it crosses .5, .95 and .99.
    events: list[tuple[float, float, float]] = []  # (x, change of slope, jump)
    weight = 0.0
    for part in parts:
        lat = part.latency
        knots = [
            (x, q)
            for x, q in zip((lat.p50, lat.p95, lat.p99, lat.max), _LEVELS, strict=True)
            if x is not None
        ]
        weight += part.total_requests if knots else 0
        prev_x, prev_q = 0.0, 0.0
        for value, q in knots:
            x = max(value, prev_x)  # a sketch may round p99 a hair above max
            mass = part.total_requests * (q - prev_q)
            if x - prev_x > x * 1e-6:
                events += [(prev_x, mass / (x - prev_x), 0.0), (x, -mass / (x - prev_x), 0.0)]
            else:  # a sliver: as a slope it would be so steep that summing slopes loses all precision
                events.append((x, 0.0, mass))
            prev_x, prev_q = x, q
        if knots and prev_q < 1.0:  # no max: the rest of the mass sits at the highest known percentile
            events.append((prev_x, 0.0, part.total_requests * (1.0 - prev_q)))
    if not weight:
        return [None, None, None]
    events.sort()
    found: list[float] = []
    cdf, slope, at = 0.0, 0.0, events[0][0]
    goals = [level * weight * (1 - 1e-12) for level in _LEVELS[:3]]
    for x, dslope, jump in events:
        while len(found) < 3 and slope > 0 and cdf + slope * (x - at) >= goals[len(found)]:
            found.append(at + (goals[len(found)] - cdf) / slope)
        cdf, at, slope = cdf + slope * (x - at) + jump, x, slope + dslope
        while len(found) < 3 and cdf >= goals[len(found)]:
            found.append(x)
    found += [at] * (3 - len(found))
    # The mixture's percentile lies between the parts' own; clamping keeps float error inside that.
    bounded: list[float | None] = []
    for index, value in enumerate(found):
        known = [
            v
            for part in parts
            if (v := (part.latency.p50, part.latency.p95, part.latency.p99)[index]) is not None
        ]
        bounded.append(min(max(value, min(known)), max(known)) if known else value)
    return bounded
