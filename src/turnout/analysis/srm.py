"""Sample ratio mismatch: did each variant get the share of users the split promised?

A mismatch means the assignment or the logging is broken, and no comparison of the
variants can be trusted until it is explained.
"""

from __future__ import annotations

from collections.abc import Sequence

from turnout.analysis._scipy import scipy_stats


def srm(observed_counts: Sequence[int], expected_weights: Sequence[float]) -> float:
    """The p-value of the chi-square goodness-of-fit test of the counts against the weights.

    Weights need not sum to 1; a variant with weight 0 is left out. A p-value below 0.001
    is the usual alarm. No users at all gives 1.
    """
    if len(observed_counts) != len(expected_weights):
        raise ValueError(
            f"observed_counts ({len(observed_counts)}) and expected_weights "
            f"({len(expected_weights)}) must be as long as each other"
        )
    if any(w < 0 for w in expected_weights) or sum(expected_weights) <= 0:
        raise ValueError(
            f"expected_weights must be 0 or more with a positive sum, not {list(expected_weights)!r}"
        )
    pairs = [(o, w) for o, w in zip(observed_counts, expected_weights, strict=True) if w > 0]
    total = sum(o for o, _ in pairs)
    if total <= 0 or len(pairs) < 2:
        return 1.0
    weight = sum(w for _, w in pairs)
    statistic = 0.0
    for observed, w in pairs:
        expected = total * w / weight
        statistic += (observed - expected) ** 2 / expected
    return float(scipy_stats().chi2.sf(statistic, len(pairs) - 1))
