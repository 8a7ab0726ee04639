"""Bayesian reading of a comparison: how likely the treatment is better, and what choosing wrong costs.

A Gaussian posterior on the effect with a flat (improper) prior, as GrowthBook's gbstats
computes it: its mean is the observed effect and its spread the effect's standard error
(the delta method for a relative lift).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from turnout.analysis.summaries import Summary


@dataclass(frozen=True, slots=True)
class BayesianResult:
    """`chance_to_win`: P(treatment better); `expected_lift`; its credible interval `ci`;
    `risk` (control, treatment): the expected loss of choosing each.

    "Better" means a larger value; for a metric where lower is better, read
    `1 - chance_to_win` and swap the two risks.
    """

    chance_to_win: float
    expected_lift: float
    ci: tuple[float, float]
    risk: tuple[float, float]
    relative: bool
    warning: str | None = None


def bayesian(
    control: Summary, treatment: Summary, *, relative: bool = True, alpha: float = 0.05
) -> BayesianResult:
    """The posterior of treatment against control (a relative lift unless `relative=False`)."""
    if type(control) is not type(treatment):
        raise TypeError(
            f"control and treatment must be of one kind, not {type(control).__name__} "
            f"and {type(treatment).__name__}"
        )
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha!r}")
    mc, mt = control.mean, treatment.mean
    vc, vt = control.variance, treatment.variance
    nc, nt = control.n, treatment.n
    if nc < 2 or nt < 2 or vc + vt <= 0 or (relative and mc == 0):
        return BayesianResult(0.5, 0.0, (0.0, 0.0), (0.0, 0.0), relative, "not enough data to compare")
    if relative:
        mean = (mt - mc) / mc
        sd = math.sqrt(vt / (mc * mc * nt) + vc * mt * mt / (mc**4 * nc))
    else:
        mean = mt - mc
        sd = math.sqrt(vt / nt + vc / nc)
    if not sd > 0 or not math.isfinite(sd):
        return BayesianResult(0.5, mean, (mean, mean), (0.0, 0.0), relative, "no variance to compare")
    standard = NormalDist()
    z = standard.inv_cdf(1 - alpha / 2)
    chance = standard.cdf(mean / sd)
    # E[max(effect, 0)]: what choosing control gives up; E[max(-effect, 0)]: choosing treatment.
    gain = mean * chance + sd * standard.pdf(mean / sd)
    return BayesianResult(chance, mean, (mean - z * sd, mean + z * sd), (gain, gain - mean), relative)
