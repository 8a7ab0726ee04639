"""Figures merged from several processes or windows of metrics.jsonl: exact counts, estimated percentiles."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnout.config import ThresholdsConfig
from turnout.telemetry.figures import Figures, Latency, merge


def figures(n: int, p50: float, p95: float, p99: float, top: float) -> Figures:
    return Figures(n, 1.0, Latency(p50, p50, p95, p99, top))


@given(
    st.lists(
        st.tuples(
            st.integers(1, 10_000),
            st.lists(st.floats(0.01, 1e5, allow_nan=False), min_size=4, max_size=4).map(sorted),
        ),
        min_size=2,
        max_size=6,
    )
)
def test_merged_percentiles_lie_within_the_parts(parts: list[tuple[int, list[float]]]) -> None:
    merged = merge([figures(n, *values) for n, values in parts], ThresholdsConfig()).latency
    for index, value in enumerate((merged.p50, merged.p95, merged.p99)):
        known = [values[index] for _, values in parts]
        assert value is not None
        assert min(known) * (1 - 1e-9) <= value <= max(known) * (1 + 1e-9)
    assert merged.p50 is not None and merged.p95 is not None and merged.p99 is not None
    assert merged.p50 <= merged.p95 * (1 + 1e-9) and merged.p95 <= merged.p99 * (1 + 1e-9)


def test_merged_percentiles_are_exact_for_uniform_latencies() -> None:
    # Uniform on [0, 100] and [0, 200] are exactly what the interpolation assumes, so the mix is exact.
    narrow, wide = figures(500, 50.0, 95.0, 99.0, 100.0), figures(500, 100.0, 190.0, 198.0, 200.0)
    merged = merge([narrow, wide], ThresholdsConfig()).latency
    assert merged.p50 == pytest.approx(200 / 3)  # 0.75 * x / 100 = 0.5
    assert merged.p95 == pytest.approx(180.0)  # (1 + x / 200) / 2 = 0.95
    assert merged.p99 == pytest.approx(196.0)
    assert merged.max == 200.0


def test_merge_of_equal_parts_keeps_their_percentiles_and_weighs_the_tail() -> None:
    same = merge([figures(100, 40.0, 80.0, 120.0, 300.0)] * 3, ThresholdsConfig())
    assert same.total_requests == 300 and same.sources == 3
    assert same.latency.p50 == pytest.approx(40.0)
    assert same.latency.p95 == pytest.approx(80.0)
    assert same.latency.p99 == pytest.approx(120.0)
    # 2 % of the traffic all slow: the p99 of the mix is slow, which averaging p99s would hide.
    fast, slow = figures(9_800, 40.0, 80.0, 120.0, 300.0), figures(200, 5000.0, 5500.0, 5900.0, 6000.0)
    mixed = merge([fast, slow], ThresholdsConfig())
    assert mixed.latency.p99 is not None and mixed.latency.p99 > 4000.0
    assert mixed.status == "critical" or mixed.latency.p99 <= 5000.0
