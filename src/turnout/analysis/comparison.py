"""Frequentist comparison of a treatment with its control: effect, standard error, CI, p-value.

- Means: Welch's t-test (unequal variances, Welch–Satterthwaite degrees of freedom).
- Proportions, absolute difference: the unpooled normal interval with Pearson's
  chi-square p-value without continuity correction, as Spotify's `confidence` computes it.
- Relative lift (treatment / control - 1), either kind: the delta method with Welch's
  degrees of freedom, as GrowthBook's gbstats computes it.
- `sequential=True`: an always-valid confidence sequence and p-value (see `sequential`),
  so looking at the result every day does not raise the false-positive rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from turnout.analysis import sequential as _sequential
from turnout.analysis._scipy import scipy_stats
from turnout.analysis.summaries import Proportions, Summary

_NORMAL = NormalDist()


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment against control: `effect` with its `se`, `ci` (low, high) and two-sided `p_value`.

    `warning` says why a comparison could not be made (too few units, no variance, a control
    mean of 0 for a relative lift); such a result has `p_value` 1 and is never significant.
    """

    effect: float
    se: float
    ci: tuple[float, float]
    p_value: float
    significant: bool
    relative: bool
    sequential: bool
    alpha: float
    control_mean: float
    treatment_mean: float
    df: float | None = None
    """Degrees of freedom of the t distribution used (None: the normal distribution)."""
    warning: str | None = None


def compare(
    control: Summary,
    treatment: Summary,
    *,
    relative: bool = False,
    alpha: float = 0.05,
    sequential: bool = False,
    tuning: float = _sequential.DEFAULT_TUNING,
) -> Comparison:
    """Compare `treatment` with `control` (both `Means` or both `Proportions`).

    `relative=True` gives the lift as a fraction of the control mean (0.05 = 5% more).
    `sequential=True` gives an always-valid result; `tuning` is the total number of units
    at which its interval is tightest.
    """
    if type(control) is not type(treatment):
        raise TypeError(
            f"control and treatment must be of one kind, not {type(control).__name__} "
            f"and {type(treatment).__name__}"
        )
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha!r}")
    if tuning <= 0:
        raise ValueError(f"tuning must be positive, not {tuning!r}")
    mc, mt = control.mean, treatment.mean
    vc, vt = control.variance, treatment.variance
    nc, nt = control.n, treatment.n

    def empty(warning: str) -> Comparison:
        effect = (mt - mc) if not relative else ((mt - mc) / mc if mc else 0.0)
        return Comparison(
            effect, 0.0, (effect, effect), 1.0, False, relative, sequential, alpha, mc, mt, None, warning
        )

    if nc < 2 or nt < 2:
        return empty("each group needs at least 2 units")
    if vc + vt <= 0:
        return empty("no variance in either group")
    if relative:
        if mc == 0:
            return empty("a relative lift needs a control mean other than 0")
        effect = (mt - mc) / mc
        se = math.sqrt(vt / (mc * mc * nt) + vc * mt * mt / (mc**4 * nc))
    else:
        effect = mt - mc
        se = math.sqrt(vt / nt + vc / nc)
    if not se > 0 or not math.isfinite(se):
        return empty("no variance to compare")
    if sequential:
        n = nc + nt
        width = _sequential.halfwidth(se, n, alpha, tuning)
        p = _sequential.p_value(effect, se, n, alpha, tuning)
        ci = (effect - width, effect + width)
        return Comparison(effect, se, ci, p, p < alpha, relative, True, alpha, mc, mt, None, None)
    if isinstance(control, Proportions) and isinstance(treatment, Proportions) and not relative:
        z = _NORMAL.inv_cdf(1 - alpha / 2)
        p = _pearson_p(control, treatment)
        ci = (effect - z * se, effect + z * se)
        return Comparison(effect, se, ci, p, p < alpha, False, False, alpha, mc, mt, None, None)
    stats = scipy_stats()
    df = _welch_df(vc, nc, vt, nt)
    t = float(stats.t.ppf(1 - alpha / 2, df))
    p = float(2 * stats.t.sf(abs(effect / se), df))
    ci = (effect - t * se, effect + t * se)
    return Comparison(effect, se, ci, p, p < alpha, relative, False, alpha, mc, mt, df, None)


def _welch_df(vc: float, nc: int, vt: float, nt: int) -> float:
    """Welch–Satterthwaite degrees of freedom."""
    a, b = vc / nc, vt / nt
    return (a + b) ** 2 / (a * a / (nc - 1) + b * b / (nt - 1))


def _pearson_p(control: Proportions, treatment: Proportions) -> float:
    """Pearson's chi-square test of the 2×2 table, no continuity correction (= the pooled z-test)."""
    n = control.n + treatment.n
    pooled = (control.successes + treatment.successes) / n
    if pooled in (0.0, 1.0):
        return 1.0
    z = (treatment.mean - control.mean) / math.sqrt(pooled * (1 - pooled) * (1 / control.n + 1 / treatment.n))
    # chi-square with 1 degree of freedom is z squared: its upper tail is erfc(|z| / sqrt 2)
    return math.erfc(abs(z) / math.sqrt(2.0))
