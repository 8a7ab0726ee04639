"""OpenTelemetry metrics: observable instruments read the registry when the SDK collects.

Nothing is recorded per request through OpenTelemetry (the registry already does that),
so configuring an OTLP metric reader costs the hot path nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from turnout.telemetry.exporters import Exporter

MetricsSource = Callable[[], Mapping[str, Any]]


class OtelExporter(Exporter):
    """Creates `turnout.*` observable instruments on the (global or given) meter provider."""

    name = "otel"

    def __init__(
        self, source: MetricsSource, *, meter_provider: MeterProvider | None = None, max_age_s: float = 1.0
    ) -> None:
        self._source = source
        self._max_age_s = max_age_s
        self._cached: tuple[float, Mapping[str, Any]] = (-1e18, {})
        self._lock = threading.Lock()
        meter = (meter_provider or metrics.get_meter_provider()).get_meter("turnout")
        meter.create_observable_counter(
            "turnout.requests",
            [self._observe(lambda s: s.get("total_requests", 0))],
            unit="{request}",
            description="Requests served, by component or experiment variant",
        )
        meter.create_observable_counter(
            "turnout.failures",
            [self._observe(_failures)],
            unit="{request}",
            description="Failed requests",
        )
        meter.create_observable_counter(
            "turnout.exposures",
            [self._observe(lambda s: s.get("exposures"), variants_only=True)],
            unit="{exposure}",
            description="Experiment exposures",
        )
        for key in ("mean", "p50", "p95", "p99", "max"):
            meter.create_observable_gauge(
                f"turnout.latency.{key}",
                [self._observe(_latency(key))],
                unit="ms",
                description=f"Latency {key} since start",
            )

    def _data(self) -> Mapping[str, Any]:
        # One collection calls every callback; read the registry once per collection.
        with self._lock:
            taken, data = self._cached
            now = time.monotonic()
            if now - taken > self._max_age_s:
                data = self._source()
                self._cached = (now, data)
            return data

    def _observe(
        self, value: Callable[[Mapping[str, Any]], Any], *, variants_only: bool = False
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterator[Observation]:
            for attributes, stats in _rows(self._data(), variants_only):
                observed = value(stats)
                if observed is not None:
                    yield Observation(observed, attributes)

        return callback


def _rows(data: Mapping[str, Any], variants_only: bool) -> Iterator[tuple[dict[str, str], Mapping[str, Any]]]:
    if not variants_only:
        for name, stats in data.get("components", {}).items():
            yield {"turnout.component": name}, stats
    for experiment, exp in data.get("experiments", {}).items():
        for variant, stats in exp.get("variants", {}).items():
            yield (
                {
                    "turnout.experiment": experiment,
                    "feature_flag.key": exp.get("flag", ""),
                    "feature_flag.result.variant": variant,
                },
                stats,
            )


def _failures(stats: Mapping[str, Any]) -> int:
    count, rate = stats.get("total_requests", 0), stats.get("success_rate")
    return 0 if not count or rate is None else round(count * (1.0 - rate))


def _latency(key: str) -> Callable[[Mapping[str, Any]], float]:
    return lambda stats: float((stats.get("latency_ms") or {}).get(key, 0.0))
