"""Windows cut from the metrics registry's totals, stored as JSON and merged across processes."""

from __future__ import annotations

import json

import pytest

from turnout.rollouts.windows import VariantWindow, WindowRecorder, merge_windows
from turnout.telemetry.metrics import MetricsRegistry
from turnout.telemetry.sketch import QuantileSketch


def test_each_cut_holds_what_came_since_the_previous_one() -> None:
    metrics = MetricsRegistry()
    recorder = WindowRecorder(metrics)
    for i in range(100):
        metrics.record_variant("exp", "flag", "workflow", 10.0, i % 10 != 0)
    first = recorder.cut("exp")["workflow"]
    assert (first.requests, first.failures, first.total_ms, first.squares_ms) == (100, 10, 1000.0, 10_000.0)
    metrics.snapshot(reset_window=True)  # the snapshot loop closing its own window changes nothing here
    for _ in range(50):
        metrics.record_variant("exp", "flag", "workflow", 1000.0, True)
    second = recorder.cut("exp")["workflow"]
    assert (second.requests, second.failures, second.total_ms, second.squares_ms) == (50, 0, 50_000.0, 5e7)
    assert second.sketch.count == 50
    assert second.sketch.quantile(0.01) == pytest.approx(1000.0, rel=0.01)
    assert recorder.cut("exp")["workflow"].requests == 0
    assert recorder.cut("unknown") == {}


def test_a_window_survives_json_and_merges_with_others() -> None:
    a, b = VariantWindow(), VariantWindow()
    for value in range(1, 101):
        a.sketch.add(float(value))
        b.sketch.add(float(value) * 100)
    a.requests, a.failures, a.values = 100, 3, {"cost_usd": [100.0, 2.0, 0.05]}
    b.requests, b.values = 100, {"cost_usd": [50.0, 1.0, 0.03]}
    stored = [json.loads(json.dumps({"workflow": w.to_dict()})) for w in (a, b)]
    merged = merge_windows(stored)["workflow"]
    assert (merged.requests, merged.failures) == (200, 3)
    assert merged.values == {"cost_usd": [150.0, 3.0, 0.08]}
    assert merged.sketch.count == 200
    assert merged.sketch.quantile(0.99) == pytest.approx(9900.0, rel=0.02)


def test_subtracting_an_earlier_state_leaves_what_was_added_since() -> None:
    sketch = QuantileSketch(max_buckets=50)  # small, so the later values collapse the low buckets
    for value in (1.0, 2.0, 3.0):
        sketch.add(value)
    earlier = sketch.copy()
    for value in (1e6, 1.1e6):
        sketch.add(value)
    sketch.subtract(earlier)
    assert sketch.count == 2
    assert sketch.quantile(0.0) >= 0.95e6  # the small values are gone, even from the collapsed bucket
    assert sketch.quantile(1.0) == pytest.approx(1.1e6, rel=0.01)
    assert QuantileSketch.from_dict(sketch.to_dict()).quantiles([0.0, 1.0]) == sketch.quantiles([0.0, 1.0])


def test_a_malformed_sketch_is_refused() -> None:
    with pytest.raises(ValueError, match="not a sketch"):
        QuantileSketch.from_dict({"counts": "x"})


def test_custom_values_go_with_the_next_cut_of_their_experiment() -> None:
    metrics = MetricsRegistry()
    recorder = WindowRecorder(metrics)
    metrics.record_variant("exp", "flag", "workflow", 10.0, True)
    for cost in (0.01, 0.03):
        recorder.add_value("exp", "workflow", "cost_usd", cost)
    recorder.add_value("exp", "legacy", "cost_usd", 0.002)
    recorder.add_value("other", "workflow", "cost_usd", 9.0)
    windows = recorder.cut("exp")
    assert windows["workflow"].values["cost_usd"] == pytest.approx([2.0, 0.04, 0.001])
    assert windows["workflow"].requests == 1
    assert windows["legacy"].values == {"cost_usd": pytest.approx([1.0, 0.002, 0.000004])}
    assert recorder.cut("exp")["workflow"].values == {}
    assert recorder.cut("other")["workflow"].values == {"cost_usd": [1.0, 9.0, 81.0]}
