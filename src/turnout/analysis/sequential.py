"""Always-valid inference: a confidence sequence that holds at every peek, not just the last.

The two-sided asymptotic confidence sequence of Waudby-Smith et al. (2023, eq. 9) with its
mixing parameter tuned for a planned total sample size (eq. 161), as GrowthBook's gbstats
does. `tuning` is the total number of units (both groups) at which the sequence is
tightest; too small or too large only makes it wider, never wrong.
"""

from __future__ import annotations

import math

DEFAULT_TUNING = 5000.0


def rho(alpha: float, tuning: float) -> float:
    """The mixture's spread, chosen so the sequence is tightest after `tuning` units."""
    log_alpha = math.log(alpha)
    return math.sqrt((-2.0 * log_alpha + math.log(-2.0 * log_alpha + 1.0)) / tuning)


def halfwidth(se: float, n: int, alpha: float, tuning: float = DEFAULT_TUNING) -> float:
    """Half the width of the sequence around an estimate with standard error `se` from `n` units."""
    r2 = rho(alpha, tuning) ** 2
    s2 = se * se * n  # the per-unit variance the paper's bound is written in
    spread = n * r2 + 1.0
    return math.sqrt(s2) * math.sqrt(2.0 * spread * math.log(math.sqrt(spread) / alpha) / (n * n * r2))


def p_value(effect: float, se: float, n: int, alpha: float, tuning: float = DEFAULT_TUNING) -> float:
    """The always-valid p-value: 1 / the mixture's e-value, at most 1.

    It is below `alpha` exactly when the sequence at `alpha` leaves out 0.
    """
    r2 = rho(alpha, tuning) ** 2
    spread = n * r2 + 1.0
    z2 = effect * effect / (se * se)
    log_evalue = r2 * n * z2 / (2.0 * spread) - 0.5 * math.log(spread)
    return min(1.0, math.exp(-log_evalue)) if log_evalue < 700 else 0.0
