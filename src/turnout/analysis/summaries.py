"""What a comparison takes for each group: summary statistics, never the raw rows.

`Means` holds a numeric metric per unit (latency, cost, handle time) as a count, a sum
and a sum of squares; `Proportions` holds a yes/no metric as a count and how many were
yes. Both add up: the summaries of two days are the summary of both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Means:
    """A numeric metric over `n` units: their `sum` and `sum_squares`."""

    n: int
    sum: float
    sum_squares: float

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"Means.n must be 0 or more, not {self.n!r}")
        if not (math.isfinite(self.sum) and math.isfinite(self.sum_squares)):
            raise ValueError(
                f"Means.sum and Means.sum_squares must be finite, not {self.sum!r}, {self.sum_squares!r}"
            )
        if self.sum_squares < 0:
            raise ValueError(f"Means.sum_squares must be 0 or more, not {self.sum_squares!r}")

    @classmethod
    def from_samples(cls, values: Iterable[float]) -> Means:
        """The summary of one value per unit."""
        n, total, squares = 0, 0.0, 0.0
        for value in values:
            n += 1
            total += value
            squares += value * value
        return cls(n=n, sum=total, sum_squares=squares)

    @property
    def mean(self) -> float:
        """The average value (0 with no units)."""
        return self.sum / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """The sample variance (n - 1 in the denominator; 0 below two units)."""
        if self.n < 2:
            return 0.0
        return max(0.0, (self.sum_squares - self.sum * self.sum / self.n) / (self.n - 1))

    def __add__(self, other: Means) -> Means:
        return Means(self.n + other.n, self.sum + other.sum, self.sum_squares + other.sum_squares)


@dataclass(frozen=True, slots=True)
class Proportions:
    """A yes/no metric over `n` units, `successes` of them yes."""

    n: int
    successes: int

    def __post_init__(self) -> None:
        if self.n < 0:
            raise ValueError(f"Proportions.n must be 0 or more, not {self.n!r}")
        if not 0 <= self.successes <= self.n:
            raise ValueError(
                f"Proportions.successes must be between 0 and n={self.n}, not {self.successes!r}"
            )

    @classmethod
    def from_samples(cls, outcomes: Iterable[bool | int]) -> Proportions:
        """The summary of one yes/no outcome per unit."""
        n = successes = 0
        for outcome in outcomes:
            n += 1
            successes += bool(outcome)
        return cls(n=n, successes=successes)

    @property
    def mean(self) -> float:
        """The share of units that said yes (0 with no units)."""
        return self.successes / self.n if self.n else 0.0

    @property
    def variance(self) -> float:
        """The Bernoulli variance p(1 - p)."""
        p = self.mean
        return p * (1.0 - p)

    def __add__(self, other: Proportions) -> Proportions:
        return Proportions(self.n + other.n, self.successes + other.successes)


Summary = Means | Proportions
"""Either kind of summary; both groups of one comparison are of the same kind."""
