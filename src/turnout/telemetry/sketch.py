"""A relative-error quantile sketch (DDSketch-style log buckets) with bounded memory."""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_right
from collections.abc import Iterable
from itertools import accumulate

RELATIVE_ACCURACY = 0.005
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
MAX_BUCKETS = 2400  # 1 µs .. 7 h at 0.5 % accuracy; 19 KB of counts

_LOG_GAMMA = math.log(GAMMA)
_INV_LOG_GAMMA = 1 / _LOG_GAMMA
# Shifts every key of a positive finite float (even subnormal: ln ≈ -744) above zero, so int()
# truncation is a floor and no math.floor call is needed on the hot path.
_BIAS = 80_000
# Value that best represents bucket [γ^k, γ^(k+1)): relative error ≤ RELATIVE_ACCURACY either side.
_MIDPOINT = 2 * GAMMA / (1 + GAMMA)
_GROW = 64


class QuantileSketch:
    """Counts values in log-spaced buckets: any quantile is within 0.5 % relative error.

    Values that are not positive finite numbers (0, negatives, NaN, inf) count in a zero bucket and
    read back as 0.0. When the buckets needed exceed `max_buckets`, the lowest ones are collapsed,
    which keeps memory fixed and only blurs the fastest, least interesting latencies.
    """

    __slots__ = ("_buckets", "_offset", "_zero", "max_buckets")

    def __init__(self, max_buckets: int = MAX_BUCKETS) -> None:
        if max_buckets < 1:
            raise ValueError(f"max_buckets must be at least 1, got {max_buckets}")
        self.max_buckets = max_buckets
        self._buckets = array("q")
        self._offset = 0
        self._zero = 0

    def add(self, value: float) -> None:
        """Count one value."""
        self.add_all((value,))

    def add_all(self, values: Iterable[float]) -> None:
        """Count every value of `values` (one call for a batch: metrics fold successes this way)."""
        log, buckets, offset = math.log, self._buckets, self._offset
        for value in values:
            if not value > 0.0:
                self._zero += 1
                continue
            try:
                i = int(log(value) * _INV_LOG_GAMMA + _BIAS) - offset
            except OverflowError:  # +inf
                self._zero += 1
                continue
            if 0 <= i < len(buckets):
                buckets[i] += 1
            else:
                self._add_key(i + offset, 1)
                buckets, offset = self._buckets, self._offset

    @property
    def count(self) -> int:
        """Number of values counted."""
        return self._zero + sum(self._buckets)

    @property
    def bucket_count(self) -> int:
        """Number of buckets allocated (never more than `max_buckets`)."""
        return len(self._buckets)

    def quantile(self, q: float) -> float:
        """The value at quantile `q` (0..1); 0.0 when the sketch is empty."""
        return self.quantiles((q,))[0]

    def quantiles(self, qs: Iterable[float]) -> list[float]:
        """Several quantiles in one pass over the buckets."""
        qs = list(qs)
        for q in qs:
            if not 0.0 <= q <= 1.0:
                raise ValueError(f"quantile must be within [0, 1], got {q}")
        cumulative = list(accumulate(self._buckets, initial=self._zero))
        total = cumulative[-1]
        out = []
        for q in qs:
            if total == 0:
                out.append(0.0)
                continue
            # The bucket holding the element at sorted index floor(q * (n - 1)).
            i = bisect_right(cumulative, q * (total - 1))
            out.append(0.0 if i == 0 else self._value(i - 1 + self._offset))
        return out

    def merge(self, other: QuantileSketch) -> None:
        """Add all of `other`'s counts to this sketch."""
        self._zero += other._zero
        theirs = other._buckets
        used = [i for i, n in enumerate(theirs) if n]  # their range may end in empty slack
        if not used:
            return
        self._add_key(other._offset + used[-1], 0)  # the top first: collapsing drops the bottom
        self._add_key(other._offset + used[0], 0)
        shift = other._offset - self._offset
        if shift + used[0] >= 0:  # everything fits: no collapse, plain index arithmetic
            buckets = self._buckets
            for i in used:
                buckets[i + shift] += theirs[i]
            return
        for i in used:
            self._add_key(other._offset + i, theirs[i])

    def subtract(self, earlier: QuantileSketch) -> None:
        """Remove the counts of `earlier`, a past state of this same sketch (what was added since stays).

        Keys that have been collapsed into the lowest bucket since are taken from that bucket.
        """
        self._zero = max(0, self._zero - earlier._zero)
        buckets = self._buckets
        for i, n in enumerate(earlier._buckets):
            if n:
                slot = max(0, earlier._offset + i - self._offset)
                if slot < len(buckets):
                    buckets[slot] = max(0, buckets[slot] - n)

    def to_dict(self) -> dict[str, object]:
        """A JSON-friendly form: `{"zero": n, "offset": key, "counts": [...]}` (empty slack trimmed)."""
        used = [i for i, n in enumerate(self._buckets) if n]
        if not used:
            return {"zero": self._zero, "offset": 0, "counts": []}
        return {
            "zero": self._zero,
            "offset": self._offset + used[0],
            "counts": list(self._buckets[used[0] : used[-1] + 1]),
        }

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> QuantileSketch:
        """The sketch `to_dict` described."""
        sketch = cls()
        counts = data.get("counts", [])
        offset = data.get("offset", 0)
        zero = data.get("zero", 0)
        if not isinstance(counts, list) or not isinstance(offset, int) or not isinstance(zero, int):
            raise ValueError(f"not a sketch: {data!r}")
        sketch._zero = zero
        if counts:
            sketch._buckets = array("q", (int(n) for n in counts))
            sketch._offset = offset
        return sketch

    def reset(self) -> None:
        """Forget every value; keeps the allocated buckets for reuse."""
        self._buckets = array("q", bytes(8 * len(self._buckets)))
        self._zero = 0

    def copy(self) -> QuantileSketch:
        """An independent sketch with the same counts."""
        twin = QuantileSketch(self.max_buckets)
        twin._buckets = array("q", self._buckets)
        twin._offset = self._offset
        twin._zero = self._zero
        return twin

    def memory_bytes(self) -> int:
        """Approximate memory held by this sketch."""
        return sys.getsizeof(self) + sys.getsizeof(self._buckets)

    @staticmethod
    def _value(key: int) -> float:
        return math.exp((key - _BIAS) * _LOG_GAMMA) * _MIDPOINT

    def _add_key(self, key: int, n: int) -> None:
        """Add `n` at `key`, growing the range (and collapsing the lowest buckets) if needed."""
        buckets = self._buckets
        if not buckets:
            self._buckets = array("q", [n])
            self._offset = key
            return
        lo, hi = self._offset, self._offset + len(buckets)
        if lo <= key < hi:
            buckets[key - lo] += n
            return
        # Grow with some slack so a drifting range does not reallocate on every new bucket, but
        # never so much that the slack alone forces a collapse.
        if key < lo:
            if len(buckets) >= self.max_buckets:  # full: the range only moves up, the bottom absorbs
                buckets[0] += n
                return
            new_hi = hi
            new_lo = max(key - _GROW, hi - self.max_buckets)
        else:
            new_hi = min(key + 1 + _GROW, max(key + 1, lo + self.max_buckets))
            new_lo = max(lo, new_hi - self.max_buckets)
        grown = array("q", bytes(8 * (new_hi - new_lo)))
        cut = new_lo - lo  # buckets below the new range fold into its first bucket
        if cut > 0:
            grown[0] = sum(buckets[: cut + 1])
            rest = buckets[cut + 1 :]
            grown[1 : 1 + len(rest)] = rest
        else:
            grown[-cut : -cut + len(buckets)] = buckets
        self._buckets = grown
        self._offset = new_lo
        grown[max(key, new_lo) - new_lo] += n
