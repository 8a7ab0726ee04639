import math
import random
import statistics
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnout.telemetry.sketch import MAX_BUCKETS, RELATIVE_ACCURACY, QuantileSketch

QS = (0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1.0)
# 1 µs .. 1 hour in milliseconds: the latencies the sketch is built for.
latencies = st.floats(min_value=1e-3, max_value=3.6e6, allow_nan=False, allow_infinity=False)


def exact(sorted_values: list[float], q: float) -> float:
    """The element at sorted index floor(q * (n - 1)): what the sketch promises to approximate."""
    return sorted_values[int(q * (len(sorted_values) - 1))]


def sketch_of(values: list[float], max_buckets: int = MAX_BUCKETS) -> QuantileSketch:
    sketch = QuantileSketch(max_buckets)
    for v in values:
        sketch.add(v)
    return sketch


def assert_close(estimate: float, truth: float, rel: float = RELATIVE_ACCURACY) -> None:
    assert abs(estimate - truth) <= rel * truth * (1 + 1e-9), (estimate, truth)


@given(st.lists(latencies, min_size=1, max_size=300))
def test_every_quantile_is_within_the_relative_accuracy(values: list[float]) -> None:
    sketch = sketch_of(values)
    ordered = sorted(values)
    assert sketch.count == len(values)
    for q, estimate in zip(QS, sketch.quantiles(QS), strict=True):
        assert_close(estimate, exact(ordered, q))
        assert sketch.quantile(q) == estimate


@given(st.lists(latencies, max_size=200), st.lists(latencies, max_size=200))
def test_merge_equals_one_sketch_of_both(left: list[float], right: list[float]) -> None:
    merged = sketch_of(left)
    merged.merge(sketch_of(right))
    combined = sketch_of(left + right)
    assert merged.count == combined.count == len(left) + len(right)
    assert merged.quantiles(QS) == combined.quantiles(QS)


@given(st.lists(st.floats(min_value=1e-12, max_value=1e12), max_size=200), st.integers(1, 50))
def test_merge_into_a_small_sketch_keeps_the_count_and_the_top(values: list[float], max_buckets: int) -> None:
    merged = QuantileSketch(max_buckets)
    merged.merge(sketch_of(values))
    assert merged.count == len(values)
    assert merged.bucket_count <= max_buckets
    assert merged.quantile(1.0) == sketch_of(values, max_buckets).quantile(1.0)


def test_zero_negative_and_non_finite_values_count_as_zero() -> None:
    sketch = sketch_of([0.0, -3.0, math.nan, math.inf, -math.inf])
    assert sketch.count == 5
    assert sketch.quantiles((0.0, 0.5, 1.0)) == [0.0, 0.0, 0.0]
    for v in (10.0, 20.0, 30.0, 40.0, 50.0):
        sketch.add(v)
    assert sketch.quantile(0.4) == 0.0
    assert_close(sketch.quantile(1.0), 50.0)
    assert_close(sketch.quantile(0.6), 10.0)


def test_tiny_and_huge_floats_do_not_break_the_mapping() -> None:
    sketch = sketch_of([5e-324, sys.float_info.max])
    assert sketch.count == 2
    assert sketch.bucket_count <= MAX_BUCKETS
    assert_close(sketch.quantile(1.0), sys.float_info.max)


def test_an_empty_sketch_reads_zero() -> None:
    sketch = QuantileSketch()
    assert sketch.count == 0
    assert sketch.quantile(0.99) == 0.0


@pytest.mark.parametrize("q", [-0.1, 1.5, math.nan])
def test_a_quantile_outside_zero_one_is_rejected(q: float) -> None:
    with pytest.raises(ValueError, match="quantile"):
        QuantileSketch().quantile(q)


def test_max_buckets_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_buckets"):
        QuantileSketch(0)


def test_collapsing_keeps_counts_and_the_high_quantiles_accurate() -> None:
    rng = random.Random(7)
    values = [math.exp(rng.uniform(math.log(1e-9), math.log(1e9))) for _ in range(20_000)]
    sketch = sketch_of(values, max_buckets=500)
    assert sketch.bucket_count <= 500
    assert sketch.count == len(values)
    ordered = sorted(values)
    # 500 buckets cover a factor of e^5 ≈ 148 at the top: p99 and max stay exact to 0.5 %.
    for q in (0.99, 0.999, 1.0):
        assert_close(sketch.quantile(q), exact(ordered, q))


def test_memory_stays_bounded_after_ten_million_observations_from_1us_to_1h() -> None:
    rng = random.Random(3)
    sketch = QuantileSketch()
    for _ in range(100_000):
        sketch.add(math.exp(rng.uniform(math.log(1e-3), math.log(3.6e6))))
    sketch.add(1e-3)
    sketch.add(3.6e6)
    for _ in range(7):  # doubling: 12.8 M observations without adding them one by one
        sketch.merge(sketch.copy())
    assert sketch.count == 100_002 * 2**7 > 10_000_000
    assert sketch.bucket_count <= MAX_BUCKETS
    assert sketch.memory_bytes() <= 32 * 1024
    assert_close(sketch.quantile(1.0), 3.6e6)
    assert_close(sketch.quantile(0.0), 1e-3)


def test_reset_forgets_and_copy_is_independent() -> None:
    sketch = sketch_of([1.0, 2.0, 3.0])
    twin = sketch.copy()
    sketch.reset()
    assert sketch.count == 0
    assert sketch.quantile(0.5) == 0.0
    assert twin.count == 3
    twin.add(100.0)
    assert sketch.count == 0
    sketch.add(2.0)
    assert_close(sketch.quantile(0.5), 2.0)


@pytest.mark.slow
@pytest.mark.parametrize("distribution", ["lognormal", "pareto"])
def test_one_million_heavy_tailed_latencies(distribution: str) -> None:
    rng = random.Random(20260129)
    if distribution == "lognormal":
        values = [rng.lognormvariate(math.log(40.0), 1.2) for _ in range(1_000_000)]
    else:
        values = [5.0 * rng.paretovariate(1.3) for _ in range(1_000_000)]
    sketch = sketch_of(values)
    ordered = sorted(values)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    for q, estimate in zip((0.5, 0.95, 0.99), sketch.quantiles((0.5, 0.95, 0.99)), strict=True):
        assert_close(estimate, cuts[round(q * 100) - 1], rel=0.01)
        assert_close(estimate, exact(ordered, q))
