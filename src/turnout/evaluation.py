"""Flag evaluation in OpenFeature's terms: a typed value, variant, reason, metadata, error code.

What the OFREP endpoint answers and what the OpenFeature provider resolves: both go through
`Turnout.decide`, so a remote or an in-process caller gets the same sticky variant for the
same targeting key and attributes, and exposures are tracked the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from turnout.config import FlagConfig, value_type
from turnout.context import RoutingContext
from turnout.decision import Decision, Reason
from turnout.limits import depth_message, too_deep

if TYPE_CHECKING:
    from turnout.router import Turnout

Metadata = dict[str, bool | int | float | str]
"""Flag metadata as OpenFeature allows it: flat, with boolean, number or string values."""

TARGETING_KEY = "targetingKey"

# turnout's reasons that OpenFeature does not have: a per-user override is targeting, and a
# fallback (only after an engine failed) serves the flag's default.
_REASONS = {
    Reason.OVERRIDE: "TARGETING_MATCH",
    Reason.FALLBACK: "DEFAULT",
}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One flag evaluated for one context: OpenFeature's resolution details."""

    key: str
    value: Any
    variant: str | None
    reason: str
    metadata: Metadata = field(default_factory=dict)
    error_code: str | None = None
    """FLAG_NOT_FOUND, TARGETING_KEY_MISSING, INVALID_CONTEXT, PARSE_ERROR or GENERAL; None on success."""
    error_message: str | None = None

    @property
    def type(self) -> str:
        """The value's OpenFeature type: boolean, string, integer, float or object."""
        return value_type(self.value)


class ContextError(ValueError):
    """An evaluation context that cannot be used; `code` is the OpenFeature error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_context(context: Any) -> tuple[str | None, dict[str, Any]]:
    """(targeting key, attributes) from an OpenFeature evaluation context given as JSON data."""
    if context is None:
        return None, {}
    if not isinstance(context, Mapping):
        raise ContextError("INVALID_CONTEXT", f"the context must be an object, got {type(context).__name__}")
    deep = too_deep(context, "context")
    if deep is not None:
        raise ContextError("INVALID_CONTEXT", f"{deep}: {depth_message()}")
    attributes = {str(name): value for name, value in context.items() if name != TARGETING_KEY}
    key = context.get(TARGETING_KEY)
    if key is not None and not isinstance(key, str):
        raise ContextError("INVALID_CONTEXT", f"targetingKey must be a string, got {type(key).__name__}")
    return (key or None), attributes


def flag_value(flag: FlagConfig, variant: str) -> Any:
    """The value a variant stands for: its entry in `values`, else its name.

    In a float flag (`{ low = 0.5, all = 1 }`) every value is a float, so typed clients that
    check for one get it for each variant.
    """
    value = flag.values.get(variant, variant)
    if type(value) is int and any(type(other) is float for other in flag.values.values()):
        return float(value)
    return value


def openfeature_reason(reason: Reason) -> str:
    """turnout's reason as one of OpenFeature's (OVERRIDE counts as TARGETING_MATCH)."""
    return _REASONS.get(reason, reason.value)


def needs_targeting_key(flag: FlagConfig, attributes: Mapping[str, Any]) -> bool:
    """True if the flag splits users and the context gives nothing to bucket on."""
    if flag.hash_by is not None and attributes.get(flag.hash_by) not in (None, ""):
        return False
    return any(rule.split is not None and rule.enabled for rule in flag.rules)


def evaluate(
    turnout: Turnout,
    key: str,
    targeting_key: str | None,
    attributes: Mapping[str, Any],
    *,
    key_from_request: bool = False,
) -> Evaluation:
    """Decide `key` for a context and describe the result as OpenFeature does. Never raises.

    `key_from_request` marks a targeting key that an untrusted caller supplied: per-user
    `overrides` then apply only where `http.overrides_from_headers` allows.
    """
    flag = turnout.config.flags.get(key)
    if flag is None:
        return _failed(key, "FLAG_NOT_FOUND", f"flag {key!r} is not configured")
    if targeting_key is None and needs_targeting_key(flag, attributes):
        return _failed(
            key, "TARGETING_KEY_MISSING", f"flag {key!r} splits users: the context needs a targetingKey"
        )
    context = RoutingContext(targeting_key or "", attributes, key_from_request=key_from_request)
    return describe(flag, turnout.decide(key, context))


def describe(flag: FlagConfig, decision: Decision) -> Evaluation:
    """A decision as OpenFeature resolution details, with turnout's details as metadata."""
    metadata: Metadata = {"turnoutReason": decision.reason.value}
    if decision.rule is not None:
        metadata["rule"] = decision.rule
    if decision.experiment is not None:
        metadata["experiment"] = decision.experiment
    if decision.engine is not None:
        metadata["engine"] = decision.engine
    value = flag_value(flag, decision.variant)
    if decision.reason is Reason.ERROR:
        return Evaluation(
            decision.flag,
            value,
            decision.variant,
            "ERROR",
            metadata,
            "GENERAL",
            decision.error or "evaluation failed",
        )
    return Evaluation(decision.flag, value, decision.variant, openfeature_reason(decision.reason), metadata)


def _failed(key: str, code: str, message: str) -> Evaluation:
    return Evaluation(key, None, None, "ERROR", {}, code, message)
