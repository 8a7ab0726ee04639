"""Sticky bucketing: deterministic hashes and weighted splits that survive ramps."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping
from fractions import Fraction
from typing import Literal, get_args

import mmh3

HashAlgorithm = Literal["murmur3", "growthbook-v1", "growthbook-v2"]
HASH_ALGORITHMS: tuple[str, ...] = get_args(HashAlgorithm)

_TWO_32 = 2.0**32
_LN_TWO_32 = math.log(_TWO_32)
_FNV_OFFSET = 0x811C9DC5
_FNV_PRIME = 0x01000193
_hash32 = mmh3.hash
_log = math.log


def _fnv1a32(text: str) -> int:
    # GrowthBook hashes UTF-16 code units (the JS SDK's charCodeAt loop), not UTF-8 bytes,
    # so non-ASCII ids only match the other SDKs this way.
    units: Iterable[int]
    if text.isascii():
        units = text.encode("ascii")
    else:
        raw = text.encode("utf-16-le", "surrogatepass")
        units = struct.unpack(f"<{len(raw) // 2}H", raw)
    hval = _FNV_OFFSET
    for unit in units:
        hval = ((hval ^ unit) * _FNV_PRIME) & 0xFFFFFFFF
    return hval


def bucket(seed: str, value: str, algorithm: HashAlgorithm = "murmur3") -> float:
    """Deterministic position in [0, 1) for `value` under `seed`."""
    if algorithm == "murmur3":
        return _hash32(seed + ":" + value, 0, False) / _TWO_32
    if algorithm == "growthbook-v1":
        return (_fnv1a32(value + seed) % 1000) / 1000
    if algorithm == "growthbook-v2":
        return (_fnv1a32(str(_fnv1a32(seed + value))) % 10000) / 10000
    raise ValueError(f"unknown hash algorithm {algorithm!r}; expected one of {HASH_ALGORITHMS}")


def _check_weight(name: str, weight: float) -> float:
    weight = float(weight)
    if not math.isfinite(weight) or weight < 0:
        raise ValueError(f"weight of {name!r} must be a finite number >= 0, got {weight!r}")
    return weight


def _normalise(weights: Mapping[str, float]) -> tuple[float, ...]:
    # Exact decimal arithmetic, so that 33.3 of 100 becomes the very double 0.333 a
    # GrowthBook payload carries, and contiguous ranges end exactly where the SDK's do.
    exact = [Fraction(repr(_check_weight(name, w))) for name, w in weights.items()]
    total = sum(exact, Fraction(0))
    if total == 0:
        raise ValueError("a split needs at least one variant with a positive weight")
    return tuple(float(w / total) for w in exact)


class Splitter:
    """A compiled weighted split of variants; assignment is sticky and ramp-monotone.

    `murmur3` uses weighted rendezvous hashing: every variant draws its own score per
    user, keyed by the variant's name, so raising a variant's weight never moves its
    users out and lowering it only moves its own users, for any number of variants.
    `growthbook-v1`/`-v2` reproduce GrowthBook's contiguous bucket ranges (declared
    order, coverage 1) and assign exactly as its SDKs do; those are ramp-monotone only
    for two variants.

    `coverage` below 1 takes in only that share of users: `assign` gives the variant `""` to
    the others. GrowthBook's ranges shrink to `coverage` of each variant's weight, as its SDK's do.
    """

    __slots__ = (
        "_coverage",
        "_ends",
        "_prefix",
        "_ranged",
        "_rivals",
        "_sole",
        "algorithm",
        "seed",
        "variants",
        "weights",
    )

    def __init__(
        self,
        weights: Mapping[str, float],
        *,
        seed: str,
        algorithm: HashAlgorithm = "murmur3",
        coverage: float = 1.0,
    ) -> None:
        if algorithm not in HASH_ALGORITHMS:
            raise ValueError(f"unknown hash algorithm {algorithm!r}; expected one of {HASH_ALGORITHMS}")
        if not weights:
            raise ValueError("a split needs at least one variant")
        if not 0 <= coverage <= 1:
            raise ValueError(f"coverage must be between 0 and 1, got {coverage!r}")
        self._coverage = float(coverage)
        self.variants: tuple[str, ...] = tuple(weights)
        self.weights: tuple[float, ...] = _normalise(weights)
        self.seed = seed
        self.algorithm: HashAlgorithm = algorithm
        self._prefix = seed + ":"
        self._ranged = algorithm != "murmur3"
        live = [(v, w) for v, w in zip(self.variants, self.weights, strict=True) if w > 0]
        # One live variant wins every draw; skip the per-variant hashing altogether.
        self._sole: str | None = live[0][0] if len(live) == 1 else None
        # (variant, mmh3 seed derived from its name, 1 / weight): tied to the name, not the
        # position, so adding, removing or reordering variants leaves the others' draws alone.
        self._rivals: tuple[tuple[str, int, float], ...] = tuple(
            (v, _hash32(self._prefix + v, 0, False), 1.0 / w) for v, w in live
        )
        # GrowthBook's getBucketRanges: the same float arithmetic, so boundaries match the
        # SDK bit for bit; zero-width ranges can never be hit.
        ends: list[tuple[str, float, float]] = []
        cumulative = 0.0
        for v, w in zip(self.variants, self.weights, strict=True):
            start = cumulative
            cumulative += w
            ends.append((v, start, start + self._coverage * w))
        self._ends: tuple[tuple[str, float, float], ...] = tuple(ends)

    def __repr__(self) -> str:
        split = dict(zip(self.variants, self.weights, strict=True))
        return (
            f"Splitter({split!r}, seed={self.seed!r}, algorithm={self.algorithm!r}, "
            f"coverage={self._coverage!r})"
        )

    def assign(self, value: str) -> tuple[str, float]:
        """Return (variant, bucket) for a hash-by value; the variant is `""` outside the coverage."""
        if self._ranged:
            return self._assign_growthbook(value)
        key = self._prefix + value
        position = _hash32(key, 0, False) / _TWO_32
        if position >= self._coverage:
            return "", position
        if self._sole is not None:
            return self._sole, position
        # Highest random weight: the least -ln(u_v) / w_v wins, u_v uniform in (0, 1).
        rivals = self._rivals
        if len(rivals) == 2:
            # Unrolled because two-way canaries are the common case (about 10% faster).
            (first, seed_a, inverse_a), (second, seed_b, inverse_b) = rivals
            score_a = (_LN_TWO_32 - _log(_hash32(key, seed_a, False) + 0.5)) * inverse_a
            score_b = (_LN_TWO_32 - _log(_hash32(key, seed_b, False) + 0.5)) * inverse_b
            return (first if score_a <= score_b else second), position
        best = ""
        best_score = math.inf
        for variant, variant_seed, inverse_weight in rivals:
            score = (_LN_TWO_32 - _log(_hash32(key, variant_seed, False) + 0.5)) * inverse_weight
            if score < best_score:
                best = variant
                best_score = score
        return best, position

    def _assign_growthbook(self, value: str) -> tuple[str, float]:
        n = bucket(self.seed, value, self.algorithm)
        for variant, start, end in self._ends:
            if start <= n < end:
                return variant, n
        if self._coverage < 1:
            return "", n
        # Only reachable if rounding left the last range short of 1; stay with a live variant.
        return self._rivals[-1][0], n


def weights_at_step(base: Mapping[str, float], baseline: str, treatment_share: float) -> dict[str, float]:
    """Weights giving the non-baseline variants `treatment_share` percent, split as in `base`."""
    if baseline not in base:
        raise ValueError(f"baseline {baseline!r} is not one of the variants {list(base)}")
    if not 0 <= treatment_share <= 100:
        raise ValueError(f"treatment_share must be between 0 and 100, got {treatment_share!r}")
    checked = {name: _check_weight(name, w) for name, w in base.items()}
    treatment_total = sum(w for name, w in checked.items() if name != baseline)
    if treatment_total == 0 and treatment_share > 0:
        raise ValueError("no non-baseline variant has a positive weight to receive the share")
    return {
        name: 100.0 - treatment_share
        if name == baseline
        else (treatment_share * w / treatment_total if treatment_total else 0.0)
        for name, w in checked.items()
    }
