"""scipy, imported where the statistics need it, with one clear error when it is missing."""

from __future__ import annotations

import importlib
from types import ModuleType

from turnout.errors import MissingExtraError


def scipy_stats() -> ModuleType:
    """`scipy.stats`, or MissingExtraError naming the `stats` extra."""
    try:
        return importlib.import_module("scipy.stats")
    except ImportError as exc:
        raise MissingExtraError("stats", "scipy", "experiment analysis") from exc
