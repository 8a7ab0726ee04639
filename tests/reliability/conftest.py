"""Hypothesis profiles for the fuzz tests: `fuzz` in CI, `soak` for long runs (`make soak`).

The tests use `fuzz-run`, which is `fuzz` unless TURNOUT_FUZZ_PROFILE names another.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "fuzz",
    max_examples=2000,
    deadline=None,
    database=None,
    derandomize=True,  # the same cases every run: CI failures reproduce
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "soak",
    parent=settings.get_profile("fuzz"),
    max_examples=20_000,
    derandomize=False,
)
settings.register_profile("fuzz-run", settings.get_profile(os.environ.get("TURNOUT_FUZZ_PROFILE", "fuzz")))
