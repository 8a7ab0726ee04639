"""OpenTelemetry metrics: observable `turnout.*` instruments read by a real SDK metric reader."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics
from opentelemetry.metrics import _internal as metrics_internal
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.util._once import Once

from turnout import RoutingContext, Turnout
from turnout.telemetry.otel import OtelExporter
from turnout.testing import make_turnout

FLAG = "coordinator"
EXPERIMENT = "workflow-canary"
NO_BREAKER = {"circuit_breaker": {"enabled": False}}
Points = dict[str, dict[frozenset[tuple[str, Any]], float]]


def make(**telemetry: Any) -> Turnout:
    t = make_turnout(
        {
            "engines": {"legacy": NO_BREAKER, "workflow": {"fallback": "legacy", **NO_BREAKER}},
            "flags": {
                FLAG: {
                    "variants": ["legacy", "workflow"],
                    "default": "legacy",
                    "rules": [
                        {"name": "canary", "experiment": EXPERIMENT, "split": {"legacy": 50, "workflow": 50}}
                    ],
                }
            },
            "telemetry": {"exporters": [], "snapshot_interval_s": 3600} | telemetry,
        }
    )

    def workflow(message: str) -> str:
        raise ConnectionError("workflow is down")

    t.add_engine("legacy", lambda message: message)
    t.add_engine("workflow", workflow)
    return t


async def traffic(t: Turnout, n: int, start: int = 0) -> dict[str, int]:
    served = {"legacy": 0, "workflow": 0}
    for i in range(start, start + n):
        ctx = RoutingContext(f"user-{i}")
        await t.run(FLAG, "hi", context=ctx)
        served[ctx.decisions[FLAG].variant] += 1
    return served


def collect(reader: InMemoryMetricReader) -> tuple[Points, dict[str, str]]:
    """Data points by metric name and attribute set, and each metric's unit."""
    points: Points = {}
    units: dict[str, str] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            assert scope.scope.name == "turnout"
            for metric in scope.metrics:
                units[metric.name] = metric.unit or ""
                for point in metric.data.data_points:
                    key = frozenset((point.attributes or {}).items())
                    points.setdefault(metric.name, {})[key] = point.value
    return points, units


def component(name: str) -> frozenset[tuple[str, Any]]:
    return frozenset({("turnout.component", name)})


def variant(name: str) -> frozenset[tuple[str, Any]]:
    return frozenset(
        {
            ("turnout.experiment", EXPERIMENT),
            ("feature_flag.key", FLAG),
            ("feature_flag.result.variant", name),
        }
    )


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    yield reader
    reader.shutdown()


@pytest.fixture
def global_meter_provider(reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    """Install a global meter provider for the test and put the previous state back afterwards."""
    names = ("_METER_PROVIDER", "_METER_PROVIDER_SET_ONCE", "_PROXY_METER_PROVIDER")
    saved = {name: getattr(metrics_internal, name) for name in names}
    metrics_internal._METER_PROVIDER = None
    metrics_internal._METER_PROVIDER_SET_ONCE = Once()
    metrics_internal._PROXY_METER_PROVIDER = metrics_internal._ProxyMeterProvider()
    provider = MeterProvider(metric_readers=[reader])
    metrics.set_meter_provider(provider)
    try:
        yield provider
    finally:
        for name, value in saved.items():
            setattr(metrics_internal, name, value)


async def test_instruments_report_components_and_variants(reader: InMemoryMetricReader) -> None:
    t = make()
    served = await traffic(t, 20)
    OtelExporter(t.telemetry.live, meter_provider=MeterProvider(metric_readers=[reader]))

    points, units = collect(reader)

    legacy_runs = served["legacy"] + served["workflow"]  # the fallback served the canary's share
    requests = points["turnout.requests"]
    assert requests[component("decide")] == 20
    assert requests[component("engine.legacy")] == legacy_runs
    assert requests[component("engine.workflow")] == served["workflow"]
    assert requests[variant("legacy")] == served["legacy"]
    assert requests[variant("workflow")] == served["workflow"]
    failures = points["turnout.failures"]
    assert failures[component("engine.workflow")] == served["workflow"]
    assert failures[component("engine.legacy")] == 0
    assert failures[variant("workflow")] == served["workflow"]
    exposures = points["turnout.exposures"]
    assert exposures == {variant("legacy"): served["legacy"], variant("workflow"): served["workflow"]}
    for key in ("mean", "p50", "p95", "p99", "max"):
        latency = points[f"turnout.latency.{key}"]
        assert set(latency) == set(requests)
        assert all(value >= 0.0 for value in latency.values())
        assert units[f"turnout.latency.{key}"] == "ms"
    p50, p99, most = (
        points[f"turnout.latency.{k}"][component("engine.legacy")] for k in ("p50", "p99", "max")
    )
    assert p50 <= p99 <= most
    assert units["turnout.requests"] == "{request}"
    assert units["turnout.exposures"] == "{exposure}"


async def test_each_collection_reads_fresh_figures(reader: InMemoryMetricReader) -> None:
    t = make()
    await traffic(t, 3)
    OtelExporter(t.telemetry.live, meter_provider=MeterProvider(metric_readers=[reader]), max_age_s=0)
    first, _ = collect(reader)

    await traffic(t, 4, start=3)
    await t.telemetry.publish()  # a snapshot window closing changes nothing: counters are cumulative
    second, _ = collect(reader)

    assert first["turnout.requests"][component("decide")] == 3
    assert second["turnout.requests"][component("decide")] == 7


def test_one_collection_reads_the_registry_once(reader: InMemoryMetricReader) -> None:
    calls = 0

    def source() -> dict[str, Any]:
        nonlocal calls
        calls += 1
        stats = {
            "total_requests": 2,
            "success_rate": 0.5,
            "latency_ms": {"mean": 1.0, "p50": 1.0, "p95": 1.0, "p99": 1.0, "max": 1.0},
            "errors": {"ValueError": 1},
        }
        return {"components": {"x": stats}, "experiments": {}}

    OtelExporter(source, meter_provider=MeterProvider(metric_readers=[reader]))

    points, _ = collect(reader)

    assert calls == 1
    assert points["turnout.requests"] == {component("x"): 2}
    assert points["turnout.failures"] == {component("x"): 1}
    assert "turnout.exposures" not in points  # no variants, no exposure points


def test_failures_are_exact_even_where_the_success_rate_rounds_to_one(reader: InMemoryMetricReader) -> None:
    stats = {
        "total_requests": 10_000_001,
        "success_rate": 1.0,  # 0.9999999, rounded to six places
        "latency_ms": {"mean": 1.0, "p50": 1.0, "p95": 1.0, "p99": 1.0, "max": 1.0},
        "errors": {"TimeoutError": 1},
    }
    OtelExporter(
        lambda: {"components": {"x": stats}, "experiments": {}},
        meter_provider=MeterProvider(metric_readers=[reader]),
    )

    points, _ = collect(reader)

    assert points["turnout.failures"] == {component("x"): 1}


def test_several_sources_on_one_provider_all_report_until_shut_down(reader: InMemoryMetricReader) -> None:
    provider = MeterProvider(metric_readers=[reader])

    def source(n: int) -> Any:
        stats = {"total_requests": n, "success_rate": 1.0, "latency_ms": {}, "errors": {}}
        return lambda: {"components": {"decide": stats}, "experiments": {}}

    first = OtelExporter(source(1), meter_provider=provider, attributes={"turnout.instance": "a"})
    OtelExporter(source(2), meter_provider=provider, attributes={"turnout.instance": "b"})

    points, _ = collect(reader)
    first.shutdown()
    after, _ = collect(reader)

    def key(instance: str) -> frozenset[tuple[str, Any]]:
        return component("decide") | {("turnout.instance", instance)}

    assert points["turnout.requests"] == {key("a"): 1, key("b"): 2}
    assert after["turnout.requests"] == {key("b"): 2}


async def test_otel_in_config_uses_the_global_meter_provider(
    global_meter_provider: MeterProvider, reader: InMemoryMetricReader
) -> None:
    t = make(exporters=["otel"])
    await t.start()
    await traffic(t, 5)

    points, _ = collect(reader)
    await t.stop()
    await t.start()  # a restart reports again, from the same registry
    await traffic(t, 1, start=5)
    again, _ = collect(reader)
    await t.stop()

    assert points["turnout.requests"][component("decide")] == 5
    assert again["turnout.requests"][component("decide")] == 6
