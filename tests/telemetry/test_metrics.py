import asyncio
import math
import re
import sys
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from turnout.config import ThresholdsConfig
from turnout.telemetry import Health, MetricsRegistry, health, metrics
from turnout.telemetry.metrics import MAX_ERROR_TYPES, OVERFLOW_COMPONENT

FIELDS = {"total_requests", "success_rate", "latency_ms", "errors"}
LATENCY_FIELDS = {"mean", "sd", "p50", "p95", "p99", "max"}


def stats(total: int, rate: float, p99: float) -> dict[str, Any]:
    latency = {"mean": 1.0, "p50": 1.0, "p95": 1.0, "p99": p99, "max": p99}
    return {"total_requests": total, "success_rate": rate, "latency_ms": latency, "errors": {}}


def deep_size(obj: object, seen: set[int] | None = None) -> int:
    """Bytes reachable from `obj` (containers, slots), each object counted once."""
    seen = set() if seen is None else seen
    if id(obj) in seen or isinstance(obj, type):
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | set | frozenset):
        size += sum(deep_size(item, seen) for item in obj)
    for klass in type(obj).__mro__:
        for slot in getattr(klass, "__slots__", ()):
            if hasattr(obj, slot):
                size += deep_size(getattr(obj, slot), seen)
    return size


def test_snapshot_has_the_metrics_jsonl_shape() -> None:
    registry = MetricsRegistry()
    for ms in (10.0, 20.0, 30.0, 40.0):
        registry.record("engine.legacy", ms, ok=True)
    registry.record("engine.legacy", 100.0, ok=False, error_type="TimeoutError")
    registry.expose("workflow-canary", "coordinator", "workflow")
    registry.record_variant("workflow-canary", "coordinator", "workflow", 50.0, ok=True)

    data = registry.snapshot()

    assert set(data) == {"components", "experiments"}
    legacy = data["components"]["engine.legacy"]
    assert set(legacy) == FIELDS | {"window"}
    assert set(legacy["window"]) == FIELDS
    assert set(legacy["latency_ms"]) == LATENCY_FIELDS
    assert legacy["total_requests"] == 5
    assert legacy["success_rate"] == 0.8
    assert legacy["errors"] == {"TimeoutError": 1}
    assert legacy["latency_ms"]["mean"] == 40.0
    assert legacy["latency_ms"]["max"] == 100.0
    assert legacy["latency_ms"]["p50"] == pytest.approx(30.0, rel=0.005)
    assert legacy["latency_ms"]["p99"] == pytest.approx(40.0, rel=0.005)
    assert legacy["window"] == {k: v for k, v in legacy.items() if k != "window"}

    canary = data["experiments"]["workflow-canary"]
    assert canary["flag"] == "coordinator"
    workflow = canary["variants"]["workflow"]
    assert set(workflow) == FIELDS | {"window", "exposures"}
    assert workflow["exposures"] == workflow["window"]["exposures"] == 1
    assert workflow["total_requests"] == 1


def test_window_resets_while_totals_accumulate() -> None:
    registry = MetricsRegistry()
    for _ in range(10):
        registry.record("decide", 1.0, ok=True)
    first = registry.snapshot()["components"]["decide"]
    assert first["total_requests"] == first["window"]["total_requests"] == 10

    for _ in range(5):
        registry.record("decide", 3.0, ok=False, error_type="ValueError")
    peek = registry.snapshot(reset_window=False)["components"]["decide"]
    again = registry.snapshot(reset_window=False)["components"]["decide"]
    assert peek == again
    assert peek["window"]["total_requests"] == 5
    assert peek["window"]["success_rate"] == 0.0
    assert peek["window"]["latency_ms"]["mean"] == 3.0
    assert peek["total_requests"] == 15
    assert peek["errors"] == {"ValueError": 5}

    second = registry.snapshot()["components"]["decide"]
    assert second == peek
    quiet = registry.snapshot()["components"]["decide"]
    assert quiet["window"]["total_requests"] == 0
    assert quiet["window"]["success_rate"] is None
    assert quiet["window"]["latency_ms"] == dict.fromkeys(LATENCY_FIELDS, 0.0)
    assert quiet["window"]["errors"] == {}
    assert quiet["total_requests"] == 15
    assert quiet["success_rate"] == pytest.approx(10 / 15, abs=1e-6)
    assert quiet["latency_ms"]["max"] == 3.0


def test_latency_standard_deviation_is_exact_across_windows() -> None:
    registry = MetricsRegistry()
    values = [1.0, 2.0, 4.0, 8.0, 16.0]
    for value in values[:2]:
        registry.record("engine.x", value, ok=True)
    registry.snapshot()
    for value in values[2:]:
        registry.record("engine.x", value, ok=True)
    latest = registry.snapshot()["components"]["engine.x"]
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    assert latest["latency_ms"]["sd"] == pytest.approx(sd, abs=1e-3)
    assert latest["window"]["latency_ms"]["sd"] == pytest.approx(math.sqrt(112 / 3), abs=1e-3)


def test_error_types_are_capped_and_the_rest_is_other() -> None:
    registry = MetricsRegistry()
    for i in range(MAX_ERROR_TYPES + 10):
        registry.record("npc.generate", 1.0, ok=False, error_type=f"Error{i}")
    registry.record("npc.generate", 1.0, ok=False)
    registry.snapshot()
    registry.record("npc.generate", 1.0, ok=False, error_type="Error0")
    registry.record("npc.generate", 1.0, ok=False, error_type="Brand new")
    data = registry.snapshot()["components"]["npc.generate"]
    assert len(data["errors"]) == MAX_ERROR_TYPES + 1
    assert data["errors"]["other"] == 10 + 1 + 1  # 10 over the cap, the unnamed one, the late one
    assert data["errors"]["Error0"] == 2
    assert data["window"]["errors"] == {"Error0": 1, "other": 1}
    assert sum(data["errors"].values()) == data["total_requests"] == MAX_ERROR_TYPES + 13


@pytest.mark.parametrize("bad", [-5.0, math.nan, math.inf])
def test_impossible_latencies_count_as_zero(bad: float) -> None:
    registry = MetricsRegistry()
    registry.record("decide", bad, ok=True)
    registry.record("decide", 4.0, ok=True)
    latency = registry.snapshot()["components"]["decide"]["latency_ms"]
    assert latency["mean"] == 2.0
    assert latency["max"] == 4.0
    assert latency["p50"] == 0.0


def test_concurrent_threads_lose_no_counts() -> None:
    registry = MetricsRegistry()
    threads_n, per_thread = 8, 20_000
    windows: list[int] = []
    stop = threading.Event()

    def work(t: int) -> None:
        for i in range(per_thread):
            registry.record("engine.workflow", float(i % 100 + 1), ok=i % 10 != 0, error_type="Boom")
            registry.record_variant("exp", "coordinator", f"v{t % 2}", 1.0, ok=True)

    def snapshots() -> None:
        while not stop.is_set():
            windows.append(registry.snapshot()["components"].get("engine.workflow", {}).get("window", {})
                           .get("total_requests", 0))  # fmt: skip

    snapper = threading.Thread(target=snapshots)
    snapper.start()
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads_n)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stop.set()
    snapper.join()

    final = registry.snapshot()
    engine = final["components"]["engine.workflow"]
    total = threads_n * per_thread
    assert engine["total_requests"] == sum(windows) + engine["window"]["total_requests"] == total
    assert engine["errors"] == {"Boom": total // 10}
    variants = final["experiments"]["exp"]["variants"]
    assert variants["v0"]["total_requests"] + variants["v1"]["total_requests"] == total


def test_a_series_stays_under_64_kb() -> None:
    registry = MetricsRegistry()
    for i in range(100_000):  # log-spaced 1 µs .. 1 hour, every error name the cap allows
        ms = 1e-3 * 3.6e9 ** ((i % 1000) / 999)
        registry.record(
            "intent.classify", ms, ok=i % 100 != 0, error_type=f"SomeLongishErrorName{i // 100 % 70}"
        )
        if i % 25_000 == 0:
            registry.snapshot()
    registry.snapshot(reset_window=False)
    series = registry._components["intent.classify"]
    assert deep_size(series) <= 64 * 1024


def test_series_beyond_the_limit_share_one_overflow_series() -> None:
    registry = MetricsRegistry(max_series=2)
    registry.record("a", 1.0, ok=True)
    registry.expose("exp", "flag", "x")
    registry.record("b", 1.0, ok=True)
    registry.record_variant("exp", "flag", "y", 1.0, ok=True)
    registry.expose("late", "flag2", "z")
    data = registry.snapshot()
    assert set(data["components"]) == {"a", OVERFLOW_COMPONENT}
    assert data["components"][OVERFLOW_COMPONENT]["total_requests"] == 2
    assert data["components"][OVERFLOW_COMPONENT]["window"]["total_requests"] == 2
    assert set(data["experiments"]["exp"]["variants"]) == {"x"}
    assert data["experiments"]["late"] == {"flag": "flag2", "variants": {}}


def test_measure_as_context_managers() -> None:
    registry = MetricsRegistry()
    with registry.measure("db"):
        pass
    with pytest.raises(KeyError), registry.measure("db"):
        raise KeyError("missing")
    db = registry.snapshot()["components"]["db"]
    assert db["total_requests"] == 2
    assert db["errors"] == {"KeyError": 1}


async def test_one_measure_object_shared_by_overlapping_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [0.0]
    monkeypatch.setattr(metrics, "perf_counter", lambda: clock[0])
    registry = MetricsRegistry()
    timer = registry.measure("tool.call")
    gates = {"a": asyncio.Event(), "b": asyncio.Event()}

    async def call(name: str) -> None:
        async with timer:
            await gates[name].wait()

    first = asyncio.create_task(call("a"))
    await asyncio.sleep(0)  # a starts at 0 s
    clock[0] = 1.0
    second = asyncio.create_task(call("b"))
    await asyncio.sleep(0)  # b starts at 1 s, while a is still inside
    clock[0] = 1.5
    gates["b"].set()
    await second
    clock[0] = 3.0
    gates["a"].set()
    await first
    latency = registry.snapshot()["components"]["tool.call"]["latency_ms"]
    assert latency["max"] == 3000.0  # a timed from its own start, not from b's
    assert latency["mean"] == 1750.0


def test_measure_nested_on_one_object() -> None:
    registry = MetricsRegistry()
    timer = registry.measure("step")
    with timer, timer:
        pass
    assert registry.snapshot()["components"]["step"]["total_requests"] == 2


async def test_measure_decorates_sync_and_async_functions() -> None:
    registry = MetricsRegistry()

    @registry.measure("npc.generate")
    def generate(text: str) -> str:
        if not text:
            raise ValueError("empty")
        return text.upper()

    @registry.measure("intent.classify")
    async def classify(text: str) -> str:
        await asyncio.sleep(0)
        if not text:
            raise LookupError("no intent")
        return "refund"

    assert generate("hi") == "HI"
    assert await classify("refund please") == "refund"
    with pytest.raises(ValueError, match="empty"):
        generate("")
    with pytest.raises(LookupError):
        await classify("")
    assert generate.__name__ == "generate"
    assert asyncio.iscoroutinefunction(classify)

    components = registry.snapshot()["components"]
    for name, error in (("npc.generate", "ValueError"), ("intent.classify", "LookupError")):
        assert components[name]["total_requests"] == 2
        assert components[name]["success_rate"] == 0.5
        assert components[name]["errors"] == {error: 1}


@pytest.mark.parametrize(
    ("data", "status", "reason"),
    [
        (stats(0, 0.0, 0.0), Health.HEALTHY, "no requests"),
        (stats(100, 0.985, 112.3), Health.HEALTHY, "within thresholds"),
        (stats(100, 0.972, 3102.1), Health.WARNING, "P99 3,102 ms > 2,000 ms"),
        (stats(100, 0.99, 5000.0), Health.WARNING, "P99 5,000 ms > 2,000 ms"),
        (stats(100, 0.99, 6100.0), Health.CRITICAL, "P99 6,100 ms > 5,000 ms"),
        (stats(100, 0.93, 10.0), Health.WARNING, "success rate 93.0% < 95.0%"),
        (stats(100, 0.91, 10.0), Health.WARNING, "success rate 91.0% < 95.0%"),
        (stats(100, 0.85, 10.0), Health.CRITICAL, "success rate 85.0% < 90.0%"),
        (stats(100, 0.93, 7000.0), Health.CRITICAL, "P99 7,000 ms > 5,000 ms; success rate 93.0% < 95.0%"),
        (stats(19, 0.0, 10.0), Health.HEALTHY, "within thresholds"),
        (stats(20, 0.5, 10.0), Health.CRITICAL, "success rate 50.0% < 90.0%"),
    ],
)
def test_health_with_default_thresholds(data: dict[str, Any], status: Health, reason: str) -> None:
    assert health(data) == (status, reason)


def test_health_reads_thresholds_from_any_object() -> None:
    config = ThresholdsConfig(p99_ms_warning=100, p99_ms_critical=200)
    assert health(stats(50, 1.0, 150.0), config) == ("warning", "P99 150 ms > 100 ms")
    assert health(stats(50, 0.5, 3000.0), SimpleNamespace(min_success_rate=None)) == (
        Health.CRITICAL,
        "success rate 50.0% < 90.0%; P99 3,000 ms > 2,000 ms",
    )
    tight = SimpleNamespace(min_success_rate=0.999, min_samples=5, p99_ms_warning=0.5)
    assert health(stats(5, 0.998, 0.75), tight) == (
        Health.WARNING,
        "P99 0.75 ms > 0.5 ms; success rate 99.8% < 99.9%",
    )


def test_health_judges_a_real_snapshot_window() -> None:
    registry = MetricsRegistry()
    for i in range(100):
        registry.record("npc.generate", 2500.0 if i >= 95 else 100.0, ok=True)
    window = registry.snapshot()["components"]["npc.generate"]["window"]
    status, reason = health(window)
    assert status == Health.WARNING
    assert re.fullmatch(r"P99 2,[45]\d\d ms > 2,000 ms", reason)


def test_successes_wait_and_are_folded_in_when_the_figures_are_read() -> None:
    from turnout.telemetry.metrics import FOLD_AT, MetricsRegistry

    registry = MetricsRegistry()
    for latency in (1.0, 2.0, 3.0):
        registry.record("decide", latency, True)
    registry.record("decide", 5.0, False, "UnknownFlagError")
    figures = registry.snapshot(reset_window=False)["components"]["decide"]
    assert figures["total_requests"] == 4 and figures["success_rate"] == 0.75
    assert figures["latency_ms"]["max"] == 5.0
    assert figures["errors"] == {"UnknownFlagError": 1}
    # Without a reader, the waiting latencies never exceed FOLD_AT: the caller folds them.
    for _ in range(FOLD_AT * 2 + 10):
        registry.record("decide", 1.0, True)
    assert len(registry._components["decide"].waiting) < FOLD_AT
    assert registry.snapshot()["components"]["decide"]["total_requests"] == 4 + FOLD_AT * 2 + 10


def test_waiting_variant_successes_count_in_totals_and_snapshots() -> None:
    from turnout.telemetry.metrics import MetricsRegistry

    registry = MetricsRegistry()
    for latency in (10.0, 20.0, 30.0):
        registry.record_variant("canary", "coordinator", "workflow", latency, True)
    registry.record_variant("canary", "coordinator", "workflow", 40.0, False, "Boom")
    # The guardrails read totals (no window closed): the waiting successes are in them.
    totals = registry.totals("canary")["workflow"]
    assert (totals.count, totals.failures, totals.total_ms) == (4, 1, 100.0)
    variant = registry.snapshot()["experiments"]["canary"]["variants"]["workflow"]
    assert variant["total_requests"] == 4 and variant["success_rate"] == 0.75
    assert variant["window"]["latency_ms"]["max"] == 40.0


def test_successes_recorded_from_many_threads_are_all_counted() -> None:
    import threading

    from turnout.telemetry.metrics import MetricsRegistry

    registry = MetricsRegistry()

    def work() -> None:
        for _ in range(10_000):
            registry.record("decide", 0.5, True)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    reads = [registry.snapshot(reset_window=False) for _ in range(20)]  # folding while they append
    for thread in threads:
        thread.join()
    assert reads and registry.snapshot()["components"]["decide"]["total_requests"] == 40_000
