"""The result of evaluating a flag for one routing context."""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum


class Reason(StrEnum):
    """Why a variant was served; the codes are OpenFeature's resolution reasons."""

    DEFAULT = "DEFAULT"
    TARGETING_MATCH = "TARGETING_MATCH"
    SPLIT = "SPLIT"
    OVERRIDE = "OVERRIDE"
    DISABLED = "DISABLED"
    FALLBACK = "FALLBACK"
    ERROR = "ERROR"


@dataclass(frozen=True, slots=True)
class Decision:
    """Which variant (and engine) a flag served, and why."""

    flag: str
    variant: str
    engine: str | None
    reason: Reason
    rule: str | None = None
    experiment: str | None = None
    bucket: float | None = None
    intent: str | None = None
    error: str | None = None

    def fallen_back(self, engine: str, error: str) -> Decision:
        """The same decision, served by `engine` after the chosen one failed."""
        return replace(self, engine=engine, reason=Reason.FALLBACK, error=error)
