"""Prometheus: the `/metrics` endpoint from `Turnout.metrics_app()` and the collector behind it."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from starlette.applications import Starlette
from starlette.routing import Route

from turnout import RoutingContext, Turnout
from turnout.telemetry.prometheus import PrometheusExporter
from turnout.testing import make_turnout

FLAG = "coordinator"
EXPERIMENT = "workflow-canary"
NO_BREAKER = {"circuit_breaker": {"enabled": False}}
VARIANT = {"experiment": EXPERIMENT, "flag": FLAG}


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

    t.add_engine("legacy", lambda message: f"legacy:{message}")
    t.add_engine("workflow", workflow)
    return t


async def traffic(t: Turnout, n: int) -> dict[str, int]:
    """Run `n` requests; how many the split gave each variant."""
    served = {"legacy": 0, "workflow": 0}
    for i in range(n):
        ctx = RoutingContext(f"user-{i}")
        await t.run(FLAG, "hi", context=ctx)
        served[ctx.decisions[FLAG].variant] += 1
    return served


async def scrape(t: Turnout) -> httpx.Response:
    app = Starlette(routes=[Route("/metrics", t.metrics_app())])
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get("/metrics")


def samples(text: str) -> dict[str, list[Sample]]:
    """Samples by family name, parsed by prometheus_client (which rejects a malformed exposition)."""
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(found: list[Sample], name: str, **labels: str) -> float:
    (match,) = [s.value for s in found if s.name == name and s.labels == labels]
    return match


async def test_metrics_endpoint_serves_the_text_exposition() -> None:
    t = make()
    served = await traffic(t, 20)
    legacy_runs = served["legacy"] + served["workflow"]  # the fallback served the canary's share

    response = await scrape(t)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert f'turnout_requests_total{{component="engine.legacy"}} {float(legacy_runs)}' in text
    assert 'turnout_latency_ms{component="engine.legacy",quantile="0.99"}' in text
    assert (
        f'turnout_variant_requests_total{{experiment="{EXPERIMENT}",flag="{FLAG}",variant="workflow"}} '
        f"{float(served['workflow'])}"
    ) in text
    assert "# TYPE turnout_requests_total counter" in text
    assert "# TYPE turnout_latency_ms summary" in text

    families = samples(text)
    requests = families["turnout_requests"]
    assert value(requests, "turnout_requests_total", component="engine.legacy") == legacy_runs
    assert value(requests, "turnout_requests_total", component="engine.workflow") == served["workflow"]
    assert value(requests, "turnout_requests_total", component="decide") == 20
    errors = families["turnout_errors"]
    assert value(
        errors, "turnout_errors_total", component="engine.workflow", error_type="ConnectionError"
    ) == float(served["workflow"])
    latency = families["turnout_latency_ms"]
    quantiles = [
        value(latency, "turnout_latency_ms", component="engine.legacy", quantile=q)
        for q in ("0.5", "0.95", "0.99")
    ]
    assert 0.0 <= quantiles[0] <= quantiles[1] <= quantiles[2]
    assert value(latency, "turnout_latency_ms_count", component="engine.legacy") == legacy_runs
    assert value(latency, "turnout_latency_ms_sum", component="engine.legacy") >= 0.0
    ratio = families["turnout_success_ratio"]
    assert value(ratio, "turnout_success_ratio", component="engine.workflow") == 0.0
    assert value(ratio, "turnout_success_ratio", component="engine.legacy") == 1.0


async def test_variant_series_carry_experiment_flag_and_variant_labels() -> None:
    t = make()
    served = await traffic(t, 20)

    families = samples((await scrape(t)).text)

    for variant, n in served.items():
        labels = {**VARIANT, "variant": variant}
        assert value(families["turnout_variant_requests"], "turnout_variant_requests_total", **labels) == n
        assert value(families["turnout_exposures"], "turnout_exposures_total", **labels) == n
        assert (
            value(families["turnout_variant_latency_ms"], "turnout_variant_latency_ms_count", **labels) == n
        )
        for q in ("0.5", "0.95", "0.99"):
            assert (
                value(
                    families["turnout_variant_latency_ms"], "turnout_variant_latency_ms", **labels, quantile=q
                )
                >= 0
            )
    workflow = {**VARIANT, "variant": "workflow"}
    assert (
        value(families["turnout_variant_success_ratio"], "turnout_variant_success_ratio", **workflow) == 0.0
    )
    assert (
        value(
            families["turnout_variant_errors"],
            "turnout_variant_errors_total",
            **workflow,
            error_type="ConnectionError",
        )
        == served["workflow"]
    )


async def test_figures_are_cumulative_across_snapshot_windows() -> None:
    t = make(exporters=["prometheus"])
    await t.start()
    await traffic(t, 5)
    await t.telemetry.publish()  # closes a window: Prometheus must not see a reset
    await traffic(t, 3)

    families = samples((await scrape(t)).text)

    assert value(families["turnout_requests"], "turnout_requests_total", component="decide") == 8
    decided = [
        sample
        for sample in families["turnout_decisions"]
        if sample.name == "turnout_decisions_total" and sample.labels["flag"] == FLAG
    ]
    assert sum(sample.value for sample in decided if sample.labels["reason"] != "FALLBACK") == 8
    fallbacks = sum(sample.value for sample in decided if sample.labels["reason"] == "FALLBACK")
    workflow_down = value(
        families["turnout_errors"],
        "turnout_errors_total",
        component="engine.workflow",
        error_type="ConnectionError",
    )
    assert fallbacks == workflow_down > 0  # each failed workflow call fell back to legacy
    await t.stop()


async def test_metrics_app_keeps_serving_across_a_restart() -> None:
    t = make(exporters=["prometheus"])
    await t.start()
    await traffic(t, 2)
    await t.stop()
    await t.start()

    families = samples((await scrape(t)).text)

    assert value(families["turnout_requests"], "turnout_requests_total", component="decide") == 2
    await t.stop()


async def test_before_any_traffic_the_exposition_is_valid_and_empty() -> None:
    t = make()

    response = await scrape(t)

    assert response.status_code == 200
    families = samples(response.text)
    assert "turnout_requests" in families
    assert all(found == [] for found in families.values())


def test_exporter_registers_in_a_given_registry_and_leaves_it_on_shutdown() -> None:
    registry = CollectorRegistry()
    data = {
        "components": {
            "db.query": {
                "total_requests": 4,
                "success_rate": 0.75,
                "latency_ms": {"mean": 2.5, "p50": 2.0, "p95": 4.0, "p99": 4.0, "max": 4.0},
                "errors": {"TimeoutError": 1},
            }
        },
        "experiments": {},
    }
    exporter = PrometheusExporter(lambda: data, registry=registry, namespace="myapp")

    families = samples(generate_latest(registry).decode())

    assert value(families["myapp_requests"], "myapp_requests_total", component="db.query") == 4
    assert value(families["myapp_latency_ms"], "myapp_latency_ms_sum", component="db.query") == 10.0
    assert (
        value(families["myapp_latency_ms"], "myapp_latency_ms", component="db.query", quantile="0.5") == 2.0
    )
    assert (
        value(families["myapp_errors"], "myapp_errors_total", component="db.query", error_type="TimeoutError")
        == 1
    )
    assert value(families["myapp_success_ratio"], "myapp_success_ratio", component="db.query") == 0.75
    exporter.shutdown()
    exporter.shutdown()  # idempotent
    assert generate_latest(registry) == b""
