"""The statistics against the published test figures of GrowthBook's gbstats and Spotify's confidence.

Every expected number below is copied from those projects' own test files (cited per
test); they round to 5 decimals, so agreement is checked to 1e-4 relative or 1e-5 absolute.
"""

from __future__ import annotations

import math

import pytest

from turnout.analysis import Means, Proportions, adjust, bayesian, compare, power, sample_size, srm

# gbstats tests/frequentist/test_tests.py: SampleMeanStatistic inputs used throughout.
CONTROL = Means(n=3407, sum=1396.87, sum_squares=52377.9767)
TREATMENT = Means(n=3461, sum=2422.7, sum_squares=134698.29)


def close(actual: float, expected: float) -> bool:
    return math.isclose(actual, expected, rel_tol=1e-4, abs_tol=1e-5)


def test_welch_relative_lift_matches_gbstats_two_sided_ttest() -> None:
    # gbstats tests/frequentist/test_tests.py::TestTwoSidedTTest::test_two_sided_ttest
    r = compare(CONTROL, TREATMENT, relative=True)
    assert close(r.effect, 0.70732)
    assert close(r.se, 0.37879)
    assert close(r.ci[0], -0.03526) and close(r.ci[1], 1.44989)
    assert close(r.p_value, 0.06191)
    assert not r.significant


def test_welch_absolute_difference_matches_gbstats() -> None:
    # gbstats tests/frequentist/test_tests.py::TestTwoSidedTTest::test_two_sided_ttest_absolute
    r = compare(CONTROL, TREATMENT)
    assert close(r.effect, 0.29)
    assert close(r.se, 0.12478)
    assert close(r.ci[0], 0.04538) and close(r.ci[1], 0.53462)
    assert close(r.p_value, 0.02016)
    assert r.significant
    assert r.df is not None and r.df > 5000


def test_relative_lift_of_proportions_matches_gbstats_binomial() -> None:
    # gbstats tests/frequentist/test_tests.py::TestTwoSidedTTest::test_two_sided_ttest_binom
    r = compare(Proportions(n=28, successes=14), Proportions(n=30, successes=16), relative=True)
    assert close(r.effect, 0.06667)
    assert close(r.se, 0.2717)
    assert close(r.ci[0], -0.47767) and close(r.ci[1], 0.61101)
    assert close(r.p_value, 0.80707)


def test_sequential_means_match_gbstats() -> None:
    # gbstats tests/frequentist/test_tests.py::TestSequentialTTest::test_sequential_test_runs
    control = Means(n=3000, sum=1396.87, sum_squares=52377.9767)
    r = compare(control, TREATMENT, relative=True, sequential=True, tuning=1000)
    assert close(r.effect, 0.50336)
    assert close(r.se, 0.33341)
    assert close(r.ci[0], -0.55844) and close(r.ci[1], 1.56516)
    assert r.p_value == 1.0


def test_sequential_proportions_match_gbstats() -> None:
    # gbstats tests/frequentist/test_tests.py::TestSequentialTTest::test_sequential_test_runs_prop
    r = compare(
        Proportions(n=3000, successes=1396),
        Proportions(n=3461, successes=2422),
        relative=True,
        sequential=True,
    )
    assert close(r.effect, 0.50386)
    assert close(r.se, 0.03386)
    assert close(r.ci[0], 0.40098) and close(r.ci[1], 0.60675)
    assert round(r.p_value, 5) == 0.0
    assert r.significant


def test_sequential_interval_is_tightest_near_its_tuning() -> None:
    # gbstats tests/frequentist/test_tests.py::TestSequentialTTest::test_sequential_test_tuning_as_expected
    control = Means(n=3000, sum=1396.87, sum_squares=52377.9767)
    below, near, above = (
        compare(control, TREATMENT, relative=True, sequential=True, tuning=t) for t in (10, 6461, 10000)
    )
    assert below.ci[0] < above.ci[0] < near.ci[0]
    assert below.ci[1] > above.ci[1] > near.ci[1]


def test_sequential_interval_is_wider_than_the_fixed_one() -> None:
    fixed = compare(CONTROL, TREATMENT)
    always_valid = compare(CONTROL, TREATMENT, sequential=True)
    assert always_valid.ci[0] < fixed.ci[0] and always_valid.ci[1] > fixed.ci[1]
    assert always_valid.p_value > fixed.p_value


def test_absolute_proportions_match_spotify_chi_squared_us() -> None:
    # spotify/confidence tests/frequentist/test_chisquared.py::TestCategorical::test_difference
    # ('us', 'control') 42/104 against ('us', 'test') 500/1009
    r = compare(Proportions(n=104, successes=42), Proportions(n=1009, successes=500))
    assert close(r.effect, 0.091694)
    assert close(r.ci[0], -0.0075254411815593725) and close(r.ci[1], 0.190913)
    assert close(r.p_value, 0.074866)
    assert r.df is None


def test_absolute_proportions_match_spotify_chi_squared_gb() -> None:
    # spotify/confidence tests/frequentist/test_chisquared.py::TestCategorical::test_difference
    # (groupby country, gb)
    r = compare(Proportions(n=100, successes=40), Proportions(n=100, successes=50))
    assert close(r.effect, 0.1)
    assert close(r.ci[0], -0.03719748) and close(r.ci[1], 0.237197)
    assert close(r.p_value, 0.155218)


def test_interval_size_follows_alpha_as_spotify() -> None:
    # spotify/confidence tests/frequentist/test_chisquared.py::test_difference_with_interval_sizes
    # (interval sizes 0.99 and 0.999)
    control, treatment = Proportions(n=104, successes=42), Proportions(n=1009, successes=500)
    r99 = compare(control, treatment, alpha=0.01)
    assert close(r99.ci[0], -0.0387024) and close(r99.ci[1], 0.22209)
    r999 = compare(control, treatment, alpha=0.001)
    assert close(r999.ci[0], -0.074883) and close(r999.ci[1], 0.258271)
    assert close(r999.p_value, 0.074866)


def test_bayesian_proportions_match_gbstats_gaussian_effect() -> None:
    # gbstats tests/bayesian/test_tests.py::TestBinom::test_bayesian_binomial_ab_test (GaussianEffectABTest)
    r = bayesian(Proportions(n=100, successes=49), Proportions(n=100, successes=51))
    assert close(r.expected_lift, 0.04082)
    assert close(r.ci[0], -0.24779) and close(r.ci[1], 0.32943)
    assert close(r.chance_to_win, 0.60918)
    assert close(r.risk[0], 0.0814) and close(r.risk[1], 0.04058)


def test_bayesian_means_match_gbstats_gaussian_effect() -> None:
    # gbstats tests/bayesian/test_tests.py::TestNorm::test_bayesian_gaussian_ab_test (GaussianEffectABTest)
    r = bayesian(Means(n=10, sum=100, sum_squares=1002.25), Means(n=10, sum=105, sum_squares=1111.5))
    assert close(r.expected_lift, 0.05)
    assert close(r.ci[0], -0.02) and close(r.ci[1], 0.12)
    assert close(r.chance_to_win, 0.91923)
    assert close(r.risk[0], 0.05131) and close(r.risk[1], 0.00131)


def test_bayesian_without_data_is_a_coin_flip() -> None:
    # gbstats tests/bayesian/test_tests.py::TestNorm::test_missing_data
    r = bayesian(Means(n=0, sum=0, sum_squares=0), Means(n=0, sum=0, sum_squares=0))
    assert r.chance_to_win == 0.5 and r.expected_lift == 0 and r.warning


def test_srm_matches_gbstats() -> None:
    # gbstats tests/test_gbstats.py::TestHelpers::test_srm
    assert round(srm([1000, 1200], [0.5, 0.5]), 9) == 0.000020079


def test_srm_weights_need_not_sum_to_one_and_zero_weights_are_left_out() -> None:
    assert srm([900, 100], [90, 10]) == pytest.approx(1.0)
    assert srm([500, 500, 7], [1, 1, 0]) == pytest.approx(1.0)
    assert srm([0, 0], [1, 1]) == 1.0
    with pytest.raises(ValueError, match="as long as"):
        srm([1, 2, 3], [1, 1])


def test_power_matches_spotify_gpower_figures() -> None:
    # spotify/confidence tests/frequentist/test_chisquared.py::test_power_calculation_binomial and
    # ::test_power_calculation_continuous (G*Power figures; their tolerance is 0.5%)
    binomial = power((225725, 22572), variance=0.34 * 0.66, mde=0.01, alpha=0.03)
    assert binomial == pytest.approx(0.8, rel=0.005)
    continuous = power(859896, variance=45, mde=0.03)
    assert continuous == pytest.approx(0.8345828, rel=1e-4)


def test_sample_size_reaches_the_power_it_promises() -> None:
    n = sample_size(baseline=0.2, mde=0.05, relative=True)
    assert power(n, baseline=0.2, mde=0.05, relative=True) >= 0.8
    assert power(n - 50, baseline=0.2, mde=0.05, relative=True) < 0.8
    # the textbook figure for 20% → 21%, alpha 0.05, power 0.8, unpooled variances
    assert n == math.ceil((1.959964 + 0.841621) ** 2 * (0.2 * 0.8 + 0.21 * 0.79) / 0.01**2)


def test_sample_size_for_means() -> None:
    n = sample_size(variance=4.0, mde=0.5)
    assert n == math.ceil((1.959964 + 0.841621) ** 2 * 8.0 / 0.25)
    assert sample_size(variance=4.0, mde=0.05, relative=True, mean=10.0) == n
    with pytest.raises(ValueError, match="mean"):
        sample_size(variance=4.0, mde=0.05, relative=True)
    with pytest.raises(ValueError, match="either baseline"):
        sample_size(mde=0.1)


def test_holm_and_bh_by_hand() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    assert adjust(p) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert adjust(p, method="bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust([]) == []
    with pytest.raises(ValueError, match="holm"):
        adjust(p, method="bonferroni")  # type: ignore[arg-type]


def test_bh_agrees_with_scipy() -> None:
    from scipy.stats import false_discovery_control

    p = [0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216]
    assert adjust(p, method="bh") == pytest.approx(list(false_discovery_control(p)))


def test_degenerate_groups_are_never_significant() -> None:
    tiny = compare(Means(n=1, sum=1, sum_squares=1), Means(n=50, sum=60, sum_squares=90))
    assert tiny.p_value == 1.0 and not tiny.significant and tiny.warning
    flat = compare(Proportions(n=100, successes=0), Proportions(n=100, successes=0))
    assert flat.p_value == 1.0 and flat.warning
    zero = compare(Means(n=10, sum=0, sum_squares=0), Means(n=10, sum=5, sum_squares=5), relative=True)
    assert zero.warning and "control mean" in zero.warning
    # A treatment of only zeros against a varying control: the relative lift has no spread.
    none = Means(n=10, sum=0, sum_squares=0)
    varied = Means(n=10, sum=5, sum_squares=5)
    assert compare(varied, none, relative=True).warning == "no variance to compare"
    assert bayesian(varied, none).chance_to_win == 0.5


def test_kinds_must_match_and_summaries_validate() -> None:
    with pytest.raises(TypeError, match="one kind"):
        compare(Means(n=2, sum=1, sum_squares=1), Proportions(n=2, successes=1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Proportions.successes"):
        Proportions(n=3, successes=4)
    with pytest.raises(ValueError, match=r"Means.n"):
        Means(n=-1, sum=0, sum_squares=0)


def test_summaries_from_samples_and_sums() -> None:
    m = Means.from_samples([1.0, 2.0, 3.0])
    assert (m.n, m.mean, m.variance) == (3, 2.0, 1.0)
    p = Proportions.from_samples([True, False, True, True])
    assert (p.n, p.successes, p.mean) == (4, 3, 0.75)
    assert Means.from_samples([1.0]) + Means.from_samples([2.0, 3.0]) == m
    assert Proportions(2, 1) + Proportions(2, 2) == Proportions(4, 3)


def test_missing_scipy_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from turnout.errors import MissingExtraError

    monkeypatch.setitem(sys.modules, "scipy.stats", None)
    with pytest.raises(MissingExtraError, match=r"turnout\[stats\]"):
        compare(CONTROL, TREATMENT)
