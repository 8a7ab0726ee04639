"""Metric windows: what one process measured for each variant of an experiment over one interval.

Each process cuts its windows from the metrics registry's running totals (the difference since
its previous cut) and writes them to the state store; the evaluator merges every process's
windows of the last interval, so checks see the whole deployment's traffic.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.telemetry.metrics import MetricsRegistry, Totals
from turnout.telemetry.sketch import QuantileSketch

MAX_VALUE_NAMES = 50
"""Custom metric names kept per variant and window."""


@dataclass(slots=True)
class VariantWindow:
    """Requests, failures and latencies of one variant over one stretch of time."""

    requests: int = 0
    failures: int = 0
    exposures: int = 0
    total_ms: float = 0.0
    squares_ms: float = 0.0
    sketch: QuantileSketch = field(default_factory=QuantileSketch)
    values: dict[str, list[float]] = field(default_factory=dict)
    """Custom per-request metrics by name: [count, sum, sum of squares]."""

    def merge(self, other: VariantWindow) -> VariantWindow:
        """Add `other`'s figures to this window."""
        self.requests += other.requests
        self.failures += other.failures
        self.exposures += other.exposures
        self.total_ms += other.total_ms
        self.squares_ms += other.squares_ms
        self.sketch.merge(other.sketch)
        for name, (n, total, squares) in other.values.items():
            mine = self.values.setdefault(name, [0.0, 0.0, 0.0])
            mine[0] += n
            mine[1] += total
            mine[2] += squares
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, as stored."""
        return {
            "requests": self.requests,
            "failures": self.failures,
            "exposures": self.exposures,
            "total_ms": self.total_ms,
            "squares_ms": self.squares_ms,
            "sketch": self.sketch.to_dict(),
            "values": self.values,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> VariantWindow:
        """The window `to_dict` described."""
        return cls(
            requests=int(data.get("requests", 0)),
            failures=int(data.get("failures", 0)),
            exposures=int(data.get("exposures", 0)),
            total_ms=float(data.get("total_ms", 0.0)),
            squares_ms=float(data.get("squares_ms", 0.0)),
            sketch=QuantileSketch.from_dict(dict(data.get("sketch", {}))),
            values={str(k): [float(x) for x in v] for k, v in dict(data.get("values", {})).items()},
        )


def merge_windows(windows: Iterable[Mapping[str, Any]]) -> dict[str, VariantWindow]:
    """Stored windows (variant → window dict) of several processes or intervals, merged per variant."""
    merged: dict[str, VariantWindow] = {}
    for window in windows:
        for variant, data in window.items():
            merged.setdefault(variant, VariantWindow()).merge(VariantWindow.from_dict(data))
    return merged


class WindowRecorder:
    """Cuts this process's windows from the registry's totals: each cut holds what came since the last.

    Custom per-request values (cost, tokens, quality) are added as they come, by `add_value`,
    and go with the next cut.
    """

    def __init__(self, metrics: MetricsRegistry) -> None:
        self._metrics = metrics
        self._previous: dict[tuple[str, str], Totals] = {}
        self._values: dict[tuple[str, str], dict[str, list[float]]] = {}
        self._lock = threading.Lock()

    def add_value(self, experiment: str, variant: str, name: str, value: float) -> None:
        """Count one custom value of a request that `variant` of `experiment` served."""
        with self._lock:
            values = self._values.setdefault((experiment, variant), {})
            tally = values.get(name)
            if tally is None:
                if len(values) >= MAX_VALUE_NAMES:
                    return  # names that grow with traffic must not grow memory
                tally = values[name] = [0.0, 0.0, 0.0]
            tally[0] += 1
            tally[1] += value
            tally[2] += value * value

    def cut(self, experiment: str) -> dict[str, VariantWindow]:
        """Each variant's figures since the previous cut (since the process started, the first time)."""
        windows: dict[str, VariantWindow] = {}
        for variant, now in self._metrics.totals(experiment).items():
            before = self._previous.get((experiment, variant))
            self._previous[(experiment, variant)] = now
            sketch = now.sketch.copy()
            window = VariantWindow(
                now.count, now.failures, now.exposures, now.total_ms, now.squares_ms, sketch
            )
            if before is not None:
                window.requests -= before.count
                window.failures -= before.failures
                window.exposures -= before.exposures
                window.total_ms -= before.total_ms
                window.squares_ms -= before.squares_ms
                sketch.subtract(before.sketch)
            windows[variant] = window
        with self._lock:
            for key in [key for key in self._values if key[0] == experiment]:
                values = self._values.pop(key)
                windows.setdefault(key[1], VariantWindow()).values = values
        return windows
