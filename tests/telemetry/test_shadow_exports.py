"""Shadow series reach the exporters: metrics.jsonl, Prometheus, OpenTelemetry and logging."""

from __future__ import annotations

import json
from pathlib import Path

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from turnout import RoutingContext, Turnout
from turnout.telemetry.exporters import LoggingExporter
from turnout.telemetry.otel import OtelExporter
from turnout.testing import make_turnout


def make(tmp_path: Path) -> Turnout:
    turnout = make_turnout(
        {
            "telemetry": {"exporters": ["jsonl"], "jsonl_path": str(tmp_path / "m.jsonl")},
            "flags": {
                "coordinator": {
                    "variants": ["legacy", "graph"],
                    "default": "legacy",
                    "shadow": {"engine": "graph", "sample": 1, "comparator": "exact"},
                }
            },
            "events": {"enabled": False},
        }
    )
    turnout.add_engine("legacy", lambda message: message)
    turnout.add_engine("graph", lambda message: message if message != "b" else "B")
    return turnout


async def run(turnout: Turnout) -> None:
    for index, message in enumerate("abc"):
        await turnout.run("coordinator", message, context=RoutingContext(f"u{index}"))
    assert await turnout.shadows.drain(10)


async def test_metrics_jsonl_lines_gain_a_shadows_section_and_keep_their_other_keys(tmp_path: Path) -> None:
    turnout = make(tmp_path)
    await turnout.start()
    await run(turnout)
    await turnout.stop()
    (line,) = (tmp_path / "m.jsonl").read_text().splitlines()
    data = json.loads(line)
    assert {"timestamp", "interval_s", "process", "components", "experiments", "failures"} <= set(data)
    stats = data["shadows"]["coordinator"]["legacy->graph"]["intents"]["unknown"]
    assert (stats["compared"], stats["matches"]) == (3, 2)
    assert [m["shadow"] for m in stats["window"]["mismatches"]] == ["B"]


async def test_prometheus_exposes_shadow_counters_and_latency(tmp_path: Path) -> None:
    turnout = make(tmp_path)
    await run(turnout)
    text = generate_latest(turnout.telemetry.prometheus().registry).decode()
    samples = {
        (sample.name, sample.labels.get("side"), sample.labels.get("quantile")): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.startswith("turnout_shadow")
    }
    assert samples[("turnout_shadow_compared_total", None, None)] == 3
    assert samples[("turnout_shadow_matches_total", None, None)] == 2
    assert samples[("turnout_shadow_latency_ms_count", "shadow", None)] == 3
    assert ("turnout_shadow_latency_ms", "served", "0.99") in samples


async def test_the_logging_exporter_logs_a_line_per_shadow_series(tmp_path: Path) -> None:
    turnout = make(tmp_path)
    await run(turnout)
    with capture_logs() as logs:
        LoggingExporter().export(turnout.telemetry.take())
    (line,) = [entry for entry in logs if entry["event"] == "turnout.shadow"]
    assert (line["served"], line["shadow"], line["compared"]) == ("legacy", "graph", 3)
    assert line["match_rate"] == round(2 / 3, 6)


async def test_otel_instruments_report_shadow_series(tmp_path: Path) -> None:
    turnout = make(tmp_path)
    await run(turnout)
    reader = InMemoryMetricReader()
    exporter = OtelExporter(turnout.telemetry.live, meter_provider=MeterProvider(metric_readers=[reader]))
    data = reader.get_metrics_data()
    assert data is not None
    points = {
        metric.name: {frozenset((p.attributes or {}).items()): p.value for p in metric.data.data_points}
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name.startswith("turnout.shadow.")
    }
    series = frozenset(
        {
            ("feature_flag.key", "coordinator"),
            ("turnout.shadow.served_engine", "legacy"),
            ("turnout.engine.name", "graph"),
            ("turnout.intent", "unknown"),
        }
    )
    assert points["turnout.shadow.compared"][series] == 3
    assert points["turnout.shadow.matches"][series] == 2
    assert points["turnout.shadow.errors"][series] == 0
    exporter.shutdown()
    reader.shutdown()
