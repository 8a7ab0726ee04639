"""Multiple-testing control: p-values adjusted for looking at many metrics or segments at once."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

Method = Literal["holm", "bh"]


def adjust(p_values: Sequence[float], method: Method = "holm") -> list[float]:
    """Adjusted p-values in input order.

    `holm`: Holm–Bonferroni, controls the chance of any false positive (family-wise error).
    `bh`: Benjamini–Hochberg, controls the expected share of false positives among the
    significant ones (false discovery rate) — more power when there are many tests.
    """
    if method not in ("holm", "bh"):
        raise ValueError(f"method must be 'holm' or 'bh', not {method!r}")
    for p in p_values:
        if not 0 <= p <= 1:
            raise ValueError(f"p-values must be between 0 and 1, not {p!r}")
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    if method == "holm":
        running = 0.0
        for rank, i in enumerate(order):
            running = max(running, min(1.0, (m - rank) * p_values[i]))
            adjusted[i] = running
    else:
        running = 1.0
        for rank in range(m - 1, -1, -1):
            i = order[rank]
            running = min(running, m * p_values[i] / (rank + 1))
            adjusted[i] = min(1.0, running)
    return adjusted
