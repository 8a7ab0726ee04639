"""Seeded simulations: the tests reject as often as they promise, no more, no less.

Data are drawn with vectorised numpy as per-group summaries; each check runs a few
thousand experiments in well under a second or two.
"""

from __future__ import annotations

import numpy as np

from turnout.analysis import Means, Proportions, compare, sample_size


def rejection_rate(rejections: list[bool]) -> float:
    return sum(rejections) / len(rejections)


def test_aa_proportions_reject_at_alpha() -> None:
    rng = np.random.default_rng(20260101)
    sims, n = 4000, 1000
    a = rng.binomial(n, 0.3, sims)
    b = rng.binomial(n, 0.3, sims)
    rate = rejection_rate(
        [
            compare(Proportions(n, int(x)), Proportions(n, int(y))).significant
            for x, y in zip(a, b, strict=True)
        ]
    )
    assert 0.04 <= rate <= 0.06


def test_aa_means_reject_at_alpha_even_when_skewed() -> None:
    rng = np.random.default_rng(7)
    sims, n = 4000, 200
    a = rng.lognormal(0.0, 0.75, (sims, n))  # latency-like: skewed, positive
    b = rng.lognormal(0.0, 0.75, (sims, n))
    sa, qa, sb, qb = a.sum(1), (a * a).sum(1), b.sum(1), (b * b).sum(1)
    rate = rejection_rate(
        [
            compare(Means(n, float(sa[i]), float(qa[i])), Means(n, float(sb[i]), float(qb[i]))).significant
            for i in range(sims)
        ]
    )
    assert 0.04 <= rate <= 0.06


def test_aa_relative_lift_rejects_at_alpha() -> None:
    rng = np.random.default_rng(11)
    sims, n = 4000, 2000
    a = rng.binomial(n, 0.2, sims)
    b = rng.binomial(n, 0.2, sims)
    rate = rejection_rate(
        [
            compare(Proportions(n, int(x)), Proportions(n, int(y)), relative=True).significant
            for x, y in zip(a, b, strict=True)
        ]
    )
    assert 0.04 <= rate <= 0.06


def _peeking(sequential: bool) -> float:
    rng = np.random.default_rng(2026)
    sims, peeks, batch = 2000, 10, 200
    a = rng.binomial(batch, 0.3, (sims, peeks)).cumsum(1)
    b = rng.binomial(batch, 0.3, (sims, peeks)).cumsum(1)
    rejected = []
    for i in range(sims):
        rejected.append(
            any(
                compare(
                    Proportions(batch * (k + 1), int(a[i, k])),
                    Proportions(batch * (k + 1), int(b[i, k])),
                    sequential=sequential,
                    tuning=2 * batch * peeks,
                ).significant
                for k in range(peeks)
            )
        )
    return rejection_rate(rejected)


def test_sequential_aa_with_ten_peeks_stays_within_alpha() -> None:
    assert _peeking(sequential=True) <= 0.05


def test_fixed_horizon_aa_with_ten_peeks_does_not() -> None:
    # Why the sequential option exists: peeking at a fixed-horizon test inflates false positives.
    assert _peeking(sequential=False) > 0.10


def test_planted_lift_is_found_at_the_promised_power() -> None:
    rng = np.random.default_rng(5)
    baseline, lift = 0.2, 0.05
    n = sample_size(baseline=baseline, mde=lift, relative=True)
    sims = 3000
    a = rng.binomial(n, baseline, sims)
    b = rng.binomial(n, baseline * (1 + lift), sims)
    rate = rejection_rate(
        [
            (r := compare(Proportions(n, int(x)), Proportions(n, int(y)))).significant and r.effect > 0
            for x, y in zip(a, b, strict=True)
        ]
    )
    assert abs(rate - 0.8) <= 0.03
