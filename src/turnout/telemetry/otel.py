"""OpenTelemetry metrics: observable instruments read the registry when the SDK collects.

Nothing is recorded per request through OpenTelemetry (the registry already does that),
so configuring an OTLP metric reader costs the hot path nothing.

A meter provider keeps the first callbacks of an instrument name and ignores later ones,
so the instruments are created once per provider and read every exporter attached to it:
several `Turnout`s (or one started again) in a process all report.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

from turnout.telemetry.exporters import Exporter

MetricsSource = Callable[[], Mapping[str, Any]]
Value = Callable[[Mapping[str, Any]], Any]


class OtelExporter(Exporter):
    """Reports the registry through `turnout.*` observable instruments of the (global or given) provider.

    `attributes` are added to every observation: give each Turnout of a process its own
    (e.g. `{"turnout.instance": "billing"}`) when they measure components of the same names.
    """

    name = "otel"

    def __init__(
        self,
        source: MetricsSource,
        *,
        meter_provider: MeterProvider | None = None,
        max_age_s: float = 1.0,
        attributes: Mapping[str, str] | None = None,
    ) -> None:
        self._source = source
        self._max_age_s = max_age_s
        self._attributes = dict(attributes or {})
        self._cached: tuple[float, Mapping[str, Any]] = (-1e18, {})
        self._lock = threading.Lock()
        self._instruments = _instruments_of(meter_provider or metrics.get_meter_provider())
        self._instruments.attach(self)

    def shutdown(self) -> None:
        """Stop reporting (a stopped Turnout's figures no longer change)."""
        self._instruments.detach(self)

    def _data(self) -> Mapping[str, Any]:
        # One collection calls every callback; read the registry once per collection.
        with self._lock:
            taken, data = self._cached
            now = time.monotonic()
            if now - taken > self._max_age_s:
                data = self._source()
                self._cached = (now, data)
            return data

    def observations(self, value: Value, variants_only: bool) -> Iterator[Observation]:
        """One observation of `value` per component (unless `variants_only`) and variant."""
        for attributes, stats in _rows(self._data(), variants_only):
            observed = value(stats)
            if observed is not None:
                yield Observation(observed, {**self._attributes, **attributes})

    def shadow_observations(self, value: Value) -> Iterator[Observation]:
        """One observation of `value` per shadow series (flag, served engine, shadow engine, intent)."""
        for flag, pairs in (self._data().get("shadows") or {}).items():
            for pair in pairs.values():
                for intent, stats in (pair.get("intents") or {}).items():
                    attributes = {
                        "feature_flag.key": flag,
                        "turnout.shadow.served_engine": str(pair.get("served")),
                        "turnout.engine.name": str(pair.get("shadow")),
                        "turnout.intent": intent,
                    }
                    yield Observation(value(stats), {**self._attributes, **attributes})


class _Instruments:
    """The `turnout.*` instruments of one meter provider, reading every attached exporter."""

    def __init__(self, provider: MeterProvider) -> None:
        self._exporters: dict[int, OtelExporter] = {}
        self._lock = threading.Lock()
        meter = provider.get_meter("turnout")
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
        for name, description in _SHADOW_COUNTERS:
            meter.create_observable_counter(
                f"turnout.shadow.{name}",
                [self._observe_shadows(_count(name))],
                unit="{request}",
                description=description,
            )
        meter.create_observable_counter(
            "turnout.shadow.errors",
            [self._observe_shadows(_failures)],
            unit="{request}",
            description="Shadow calls that raised",
        )

    def attach(self, exporter: OtelExporter) -> None:
        with self._lock:
            self._exporters[id(exporter)] = exporter

    def detach(self, exporter: OtelExporter) -> None:
        with self._lock:
            self._exporters.pop(id(exporter), None)

    def _observe(
        self, value: Value, *, variants_only: bool = False
    ) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterator[Observation]:
            with self._lock:
                exporters = list(self._exporters.values())
            for exporter in exporters:
                yield from exporter.observations(value, variants_only)

        return callback

    def _observe_shadows(self, value: Value) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def callback(options: CallbackOptions) -> Iterator[Observation]:
            with self._lock:
                exporters = list(self._exporters.values())
            for exporter in exporters:
                yield from exporter.shadow_observations(value)

        return callback


_SHADOW_COUNTERS = (
    ("offered", "Sampled requests handed to a shadow engine"),
    ("skipped", "Sampled requests skipped: no room to run the shadow"),
    ("compared", "Shadow results compared with the served ones"),
    ("matches", "Shadow results that matched the served ones"),
    ("timeouts", "Shadow calls past their timeout"),
)


def _count(name: str) -> Value:
    return lambda stats: int(stats.get(name) or 0)


_by_provider: weakref.WeakKeyDictionary[MeterProvider, _Instruments] = weakref.WeakKeyDictionary()
_by_provider_lock = threading.Lock()


def _instruments_of(provider: MeterProvider) -> _Instruments:
    with _by_provider_lock:
        instruments = _by_provider.get(provider)
        if instruments is None:
            instruments = _by_provider[provider] = _Instruments(provider)
        return instruments


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
    # Exact, unlike total × (1 − the rounded success rate): a counter must never step back.
    return sum((stats.get("errors") or {}).values())


def _latency(key: str) -> Callable[[Mapping[str, Any]], float]:
    return lambda stats: float((stats.get("latency_ms") or {}).get(key, 0.0))
