"""How many users an experiment needs, and how likely it is to find an effect with the users it has.

Two-sided tests at level `alpha`, normal approximation. For a yes/no metric give the
control's rate as `baseline`; for a numeric metric give its per-user `variance`. `mde`
(minimum detectable effect) is the smallest change worth finding, in the metric's own
units, or as a fraction of the baseline (or of `mean`) with `relative=True`.
"""

from __future__ import annotations

import math
from statistics import NormalDist

_NORMAL = NormalDist()


def sample_size(
    *,
    baseline: float | None = None,
    variance: float | None = None,
    mde: float,
    relative: bool = False,
    mean: float | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> int:
    """Users needed in each of two equal groups to find a change of `mde` with probability `power`."""
    if not 0 < power < 1:
        raise ValueError(f"power must be between 0 and 1, not {power!r}")
    delta, var_control, var_treatment = _design(baseline, variance, mde, relative, mean, alpha)
    z = _NORMAL.inv_cdf(1 - alpha / 2) + _NORMAL.inv_cdf(power)
    return math.ceil(z * z * (var_control + var_treatment) / (delta * delta))


def power(
    n: int | tuple[int, int],
    *,
    baseline: float | None = None,
    variance: float | None = None,
    mde: float,
    relative: bool = False,
    mean: float | None = None,
    alpha: float = 0.05,
) -> float:
    """The chance of a significant result when the true change is `mde`.

    `n` is the users in each group, or (control users, treatment users).
    """
    n_control, n_treatment = (n, n) if isinstance(n, int) else n
    if n_control < 1 or n_treatment < 1:
        raise ValueError(f"n must be at least 1 per group, not {n!r}")
    delta, var_control, var_treatment = _design(baseline, variance, mde, relative, mean, alpha)
    shift = abs(delta) / math.sqrt(var_control / n_control + var_treatment / n_treatment)
    z = _NORMAL.inv_cdf(1 - alpha / 2)
    return _NORMAL.cdf(shift - z) + _NORMAL.cdf(-shift - z)


def _design(
    baseline: float | None,
    variance: float | None,
    mde: float,
    relative: bool,
    mean: float | None,
    alpha: float,
) -> tuple[float, float, float]:
    """(absolute change, control variance, treatment variance) from the arguments, checked."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1, not {alpha!r}")
    if (baseline is None) == (variance is None):
        raise ValueError("give either baseline (a yes/no metric's rate) or variance (a numeric metric's)")
    if not mde or not math.isfinite(mde):
        raise ValueError(f"mde must be a finite number other than 0, not {mde!r}")
    if baseline is not None:
        if not 0 < baseline < 1:
            raise ValueError(f"baseline must be a rate between 0 and 1, not {baseline!r}")
        delta = mde * baseline if relative else mde
        treated = baseline + delta
        if not 0 < treated < 1:
            raise ValueError(f"baseline + mde must stay between 0 and 1, not {treated!r}")
        return delta, baseline * (1 - baseline), treated * (1 - treated)
    if variance is None or variance <= 0:
        raise ValueError(f"variance must be positive, not {variance!r}")
    if relative:
        if not mean:
            raise ValueError("a relative mde for a numeric metric needs its mean (mean=...)")
        delta = mde * mean
    else:
        delta = mde
    return delta, variance, variance
