"""Prometheus: a collector reading the live metrics registry, and a mountable `/metrics` app.

Latency is exposed as a summary (p50/p95/p99 quantiles from the sketch, plus count and
sum), labelled by component, or by experiment/flag/variant for experiment variants.
Figures are cumulative since the process started, as Prometheus expects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from turnout.errors import MissingExtraError
from turnout.telemetry.exporters import Exporter
from turnout.telemetry.snapshot import MetricsSnapshot
from turnout.types import ASGIApp

MetricsSource = Callable[[], Mapping[str, Any]]
_QUANTILES = (("0.5", "p50"), ("0.95", "p95"), ("0.99", "p99"))


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise MissingExtraError("prometheus", "prometheus-client", "the prometheus exporter") from None
    return prometheus_client


class PrometheusExporter(Exporter):
    """Registers a collector over `source` in a (by default private) CollectorRegistry."""

    name = "prometheus"

    def __init__(self, source: MetricsSource, *, registry: Any = None, namespace: str = "turnout") -> None:
        client = _client()
        self.registry = registry if registry is not None else client.CollectorRegistry(auto_describe=False)
        self.collector = TurnoutCollector(source, namespace)
        self._registered = False
        self.register()

    def register(self) -> None:
        """Put the collector (back) in the registry; `shutdown` takes it out."""
        if not self._registered:
            self.registry.register(self.collector)
            self._registered = True

    def asgi_app(self) -> ASGIApp:
        """An ASGI app serving the registry in the text exposition format (mount it at /metrics)."""
        app: ASGIApp = _client().make_asgi_app(registry=self.registry)
        return app

    def export(self, snapshot: MetricsSnapshot) -> None:
        # The collector reads live figures: a snapshot only needs it to be registered.
        self.register()

    def shutdown(self) -> None:
        if self._registered:
            self.registry.unregister(self.collector)
            self._registered = False


class TurnoutCollector:
    """A prometheus_client custom collector over a metrics-registry snapshot function."""

    def __init__(self, source: MetricsSource, namespace: str = "turnout") -> None:
        self._source = source
        self._ns = namespace

    def describe(self) -> list[Any]:
        return []  # no fixed description: series appear as traffic arrives

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

        data = self._source()
        families: list[tuple[list[str], list[tuple[list[str], Mapping[str, Any]]]]] = [
            (["component"], [([name], stats) for name, stats in data.get("components", {}).items()]),
            (
                ["experiment", "flag", "variant"],
                [
                    ([experiment, exp.get("flag", ""), variant], stats)
                    for experiment, exp in data.get("experiments", {}).items()
                    for variant, stats in exp.get("variants", {}).items()
                ],
            ),
        ]
        for (labels, rows), prefix in zip(families, ("", "variant_"), strict=True):
            requests = CounterMetricFamily(f"{self._ns}_{prefix}requests", "Requests served", labels=labels)
            errors = CounterMetricFamily(
                f"{self._ns}_{prefix}errors", "Failed requests by error type", labels=[*labels, "error_type"]
            )
            latency = SummaryMetricFamily(f"{self._ns}_{prefix}latency_ms", "Latency in ms", labels=labels)
            status = GaugeMetricFamily(
                f"{self._ns}_{prefix}success_ratio", "Success rate since start", labels=labels
            )
            exposures = CounterMetricFamily(f"{self._ns}_exposures", "Experiment exposures", labels=labels)
            for values, stats in rows:
                count = int(stats.get("total_requests", 0))
                lat = stats.get("latency_ms") or {}
                requests.add_metric(values, count)
                for error_type, n in (stats.get("errors") or {}).items():
                    errors.add_metric([*values, error_type], n)
                latency.add_metric(values, count_value=count, sum_value=float(lat.get("mean", 0.0)) * count)
                for quantile, key in _QUANTILES:
                    latency.add_sample(
                        latency.name,
                        dict(zip([*labels, "quantile"], [*values, quantile], strict=True)),
                        float(lat.get(key, 0.0)),
                    )
                if stats.get("success_rate") is not None:
                    status.add_metric(values, float(stats["success_rate"]))
                if prefix:
                    exposures.add_metric(values, int(stats.get("exposures", 0)))
            yield from (requests, errors, latency, status)
            if prefix:
                yield exposures
        decisions = CounterMetricFamily(
            f"{self._ns}_decisions",
            "Flag decisions by reason (FALLBACK: a fallback engine served)",
            labels=["flag", "reason"],
        )
        for flag, reasons in (data.get("decisions") or {}).items():
            for reason, counts in reasons.items():
                decisions.add_metric([flag, reason], int(counts.get("total", 0)))
        yield decisions
        yield from self._shadows(data.get("shadows") or {})

    def _shadows(self, shadows: Mapping[str, Any]) -> Iterator[Any]:
        """Shadow series, labelled by flag, served engine, shadow engine and intent."""
        from prometheus_client.core import CounterMetricFamily, SummaryMetricFamily

        labels = ["flag", "served", "shadow", "intent"]
        counters = {
            name: CounterMetricFamily(f"{self._ns}_shadow_{name}", text, labels=labels)
            for name, text in (
                ("offered", "Sampled requests handed to the shadow engine"),
                ("skipped", "Sampled requests skipped: no room to run the shadow"),
                ("compared", "Shadow results compared with the served ones"),
                ("matches", "Shadow results that matched the served ones"),
                ("timeouts", "Shadow calls past their timeout"),
            )
        }
        errors = CounterMetricFamily(
            f"{self._ns}_shadow_errors",
            "Shadow calls that raised, by error type",
            labels=[*labels, "error_type"],
        )
        latency = SummaryMetricFamily(
            f"{self._ns}_shadow_latency_ms",
            "Latency of both engines on compared requests",
            labels=[*labels, "side"],
        )
        for flag, pairs in shadows.items():
            for pair in pairs.values():
                for intent, stats in (pair.get("intents") or {}).items():
                    values = [flag, str(pair.get("served")), str(pair.get("shadow")), intent]
                    for name, family in counters.items():
                        family.add_metric(values, int(stats.get(name, 0)))
                    for error_type, n in (stats.get("errors") or {}).items():
                        errors.add_metric([*values, error_type], n)
                    count = int(stats.get("compared", 0))
                    for side in ("served", "shadow"):
                        lat = stats.get(f"{side}_latency_ms") or {}
                        latency.add_metric(
                            [*values, side], count_value=count, sum_value=float(lat.get("sum", 0.0))
                        )
                        for quantile, key in _QUANTILES:
                            latency.add_sample(
                                latency.name,
                                dict(
                                    zip([*labels, "side", "quantile"], [*values, side, quantile], strict=True)
                                ),
                                float(lat.get(key, 0.0)),
                            )
        if shadows:
            yield from (*counters.values(), errors, latency)
