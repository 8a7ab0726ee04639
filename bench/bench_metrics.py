"""Cost of recording one observation, and quantile accuracy on 1M heavy-tailed latencies.

Run: .venv/bin/python bench/bench_metrics.py [--samples N]
"""

from __future__ import annotations

import argparse
import math
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable

from turnout.telemetry import MetricsRegistry, QuantileSketch

BATCH = 1_000
ROUNDS = 300


def median_ns(body: Callable[[list[float]], None], values: list[float]) -> float:
    """Median over ROUNDS of the per-call time of one batch of BATCH calls, loop cost removed."""

    def empty(batch: list[float]) -> None:
        for _ in batch:
            pass

    def per_call(fn: Callable[[list[float]], None]) -> list[float]:
        out = []
        for r in range(ROUNDS):
            batch = values[(r * BATCH) % len(values) :][:BATCH]
            start = time.perf_counter_ns()
            fn(batch)
            out.append((time.perf_counter_ns() - start) / len(batch))
        return out

    return statistics.median(per_call(body)) - statistics.median(per_call(empty))


def bench_record(values: list[float]) -> list[tuple[str, float]]:
    registry = MetricsRegistry()
    record, record_variant, sketch = registry.record, registry.record_variant, QuantileSketch()
    registry.record("engine.legacy", 1.0, True)
    registry.record("engine.legacy", 1.0, False, "TimeoutError")
    registry.record_variant("workflow-canary", "coordinator", "workflow", 1.0, True)

    def ok(batch: list[float]) -> None:
        for v in batch:
            record("engine.legacy", v, True)

    def failed(batch: list[float]) -> None:
        for v in batch:
            record("engine.legacy", v, False, "TimeoutError")

    def variant(batch: list[float]) -> None:
        for v in batch:
            record_variant("workflow-canary", "coordinator", "workflow", v, True)

    def sketch_only(batch: list[float]) -> None:
        add = sketch.add
        for v in batch:
            add(v)

    timed = registry.measure("user.step")

    @timed
    def step() -> None:
        return None

    def decorated(batch: list[float]) -> None:
        for _ in batch:
            step()

    return [
        ("record() ok", median_ns(ok, values)),
        ("record() error", median_ns(failed, values)),
        ("record_variant()", median_ns(variant, values)),
        ("QuantileSketch.add()", median_ns(sketch_only, values)),
        ("@measure call (incl. 2 perf_counter)", median_ns(decorated, values)),
    ]


def accuracy(name: str, values: list[float]) -> list[tuple[str, str, float, float, float]]:
    sketch = QuantileSketch()
    for v in values:
        sketch.add(v)
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=1000, method="inclusive")
    rows = []
    for q, label in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"), (0.999, "p99.9")):
        exact = cuts[round(q * 1000) - 1]
        estimate = sketch.quantile(q)
        rows.append((name, label, exact, estimate, abs(estimate - exact) / exact))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1_000_000)
    args = parser.parse_args()
    rng = random.Random(20260129)
    print(f"Python {platform.python_version()} on {platform.machine()}, {sys.platform}")

    latencies = [rng.lognormvariate(math.log(40.0), 1.2) for _ in range(100_000)]
    print(f"\nrecording cost: median over {ROUNDS} batches of {BATCH} calls (loop overhead removed)")
    print(f"{'operation':<40}{'ns/call':>10}")
    for label, ns in bench_record(latencies):
        print(f"{label:<40}{ns:>10.0f}")

    print(f"\nquantile accuracy, {args.samples:,} samples each (exact = statistics.quantiles, inclusive)")
    print(f"{'distribution':<30}{'q':>7}{'exact ms':>14}{'sketch ms':>14}{'rel. error':>12}")
    lognormal = [rng.lognormvariate(math.log(40.0), 1.2) for _ in range(args.samples)]
    pareto = [5.0 * rng.paretovariate(1.3) for _ in range(args.samples)]
    worst = 0.0
    for name, values in (("lognormal(ln 40, 1.2)", lognormal), ("pareto(1.3) × 5 ms", pareto)):
        for dist, label, exact, estimate, error in accuracy(name, values):
            worst = max(worst, error)
            print(f"{dist:<30}{label:>7}{exact:>14.3f}{estimate:>14.3f}{error:>11.3%}")
    print(f"worst relative error: {worst:.3%} (target < 1%)")


if __name__ == "__main__":
    main()
