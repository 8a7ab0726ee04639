"""Live agreement with GrowthBook's gbstats and Spotify's confidence, where they are installed.

The pinned figures in test_statistics.py are the contract; these tests run the libraries
themselves on a few hundred random inputs when they can be imported (they are not turnout
dependencies: gbstats pins numpy < 2, so they live in a separate environment:
`pip install gbstats==0.8.0 spotify-confidence`, then `pip install -e . --no-deps`).
"""

from __future__ import annotations

import math
import random
import warnings

import pytest

from turnout.analysis import Means, Proportions, bayesian, compare, srm


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9)


def random_means(rng: random.Random) -> Means:
    n = rng.randrange(30, 5000)
    mean, sd = rng.uniform(0.5, 50), rng.uniform(0.1, 30)
    return Means(n=n, sum=mean * n, sum_squares=sd * sd * (n - 1) + n * mean * mean)


def random_proportions(rng: random.Random) -> Proportions:
    n = rng.randrange(30, 5000)
    return Proportions(n=n, successes=rng.randrange(1, n))


def test_agrees_with_gbstats() -> None:
    pytest.importorskip("gbstats")
    from gbstats.bayesian.tests import EffectBayesianABTest
    from gbstats.frequentist.tests import (
        FrequentistConfig,
        SequentialConfig,
        SequentialTwoSidedTTest,
        TwoSidedTTest,
    )
    from gbstats.gbstats import check_srm
    from gbstats.models.statistics import ProportionStatistic, SampleMeanStatistic

    rng = random.Random(2026)
    for i in range(300):
        if i % 2:
            a, b = random_means(rng), random_means(rng)
            stat_a: object = SampleMeanStatistic(n=a.n, sum=a.sum, sum_squares=a.sum_squares)
            stat_b: object = SampleMeanStatistic(n=b.n, sum=b.sum, sum_squares=b.sum_squares)
        else:
            a, b = random_proportions(rng), random_proportions(rng)  # type: ignore[assignment]
            stat_a = ProportionStatistic(n=a.n, sum=a.successes)  # type: ignore[union-attr]
            stat_b = ProportionStatistic(n=b.n, sum=b.successes)  # type: ignore[union-attr]
        theirs = TwoSidedTTest(stat_a, stat_b, FrequentistConfig()).compute_result()
        ours = compare(a, b, relative=True)
        assert close(ours.effect, theirs.expected) and close(ours.p_value, theirs.p_value)
        assert close(ours.ci[0], theirs.ci[0]) and close(ours.ci[1], theirs.ci[1])
        absolute = TwoSidedTTest(
            stat_a, stat_b, FrequentistConfig(difference_type="absolute")
        ).compute_result()
        if isinstance(a, Means):  # proportions' absolute difference follows Spotify, below
            mine = compare(a, b)
            assert close(mine.ci[0], absolute.ci[0]) and close(mine.p_value, absolute.p_value)
        sequential = SequentialTwoSidedTTest(stat_a, stat_b, SequentialConfig()).compute_result()
        always = compare(a, b, relative=True, sequential=True)
        assert close(always.ci[0], sequential.ci[0]) and close(always.ci[1], sequential.ci[1])
        posterior = EffectBayesianABTest(stat_a, stat_b).compute_result()
        mine_b = bayesian(a, b)
        assert close(mine_b.chance_to_win, posterior.chance_to_win)
        assert close(mine_b.risk[0], posterior.risk[0]) and close(mine_b.risk[1], posterior.risk[1])
        counts = [rng.randrange(900, 1100) for _ in range(3)]
        assert close(srm(counts, [1, 1, 1]), check_srm(counts, [1 / 3] * 3))


def test_agrees_with_spotify_confidence() -> None:
    pytest.importorskip("spotify_confidence")
    import pandas as pd
    import spotify_confidence

    rng = random.Random(7)
    for _ in range(100):
        a, b = random_proportions(rng), random_proportions(rng)
        frame = pd.DataFrame(
            {
                "variation_name": ["control", "test"],
                "success": [a.successes, b.successes],
                "total": [a.n, b.n],
            }
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            test = spotify_confidence.ChiSquared(frame, "success", "total", "variation_name")
            theirs = test.difference("control", "test").iloc[0]
        ours = compare(a, b)
        assert close(ours.effect, theirs["difference"]) and close(ours.p_value, theirs["p-value"])
        assert close(ours.ci[0], theirs["ci_lower"]) and close(ours.ci[1], theirs["ci_upper"])
