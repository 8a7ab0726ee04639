"""Who and what is being routed, held in a contextvar for the duration of a request."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from turnout.decision import Decision
from turnout.types import Intent

if TYPE_CHECKING:
    from turnout.router import Turnout

_current: ContextVar[RoutingContext | None] = ContextVar("turnout_context", default=None)


@dataclass(slots=True, eq=False)
class RoutingContext:
    """The subject of routing: a targeting key, attributes and, lazily, the message intent."""

    targeting_key: str
    attributes: Mapping[str, Any] = field(default_factory=dict)
    text: str | None = None
    session_id: str | None = None
    anonymous: bool = False
    overrides: Mapping[str, str] = field(default_factory=dict)
    """Variants forced by the request (header/query); honoured only where a flag allows it."""
    decisions: dict[str, Decision] = field(default_factory=dict, repr=False)
    intent: Intent | None = None
    turnout: Turnout | None = field(default=None, repr=False)
    """The `Turnout` that built this context (set by the middleware), so decorators find it."""
    intent_view: dict[str, Any] | None = field(default=None, init=False, repr=False)
    """Attributes plus `intent`/`intent_confidence`, built once when a rule first needs them."""
    key_from_request: bool = False
    """The targeting key came from the request (header, query, cookie), not from the app's code."""

    def set_user(self, user_id: str) -> None:
        """Make `user_id`, known to the app (say, from its auth), the targeting key.

        Per-user `overrides` apply to it even when `http.overrides_from_headers` is false.
        """
        self.targeting_key = user_id
        self.anonymous = False
        self.key_from_request = False
        self.intent_view = None
        self.decisions.clear()

    def value(self, attribute: str | None) -> str:
        """The string to bucket on: the attribute if present and non-empty, else the key."""
        if attribute is not None:
            found = self.attributes.get(attribute)
            if found is not None and found != "":
                return str(found)
        return self.targeting_key


def current_context() -> RoutingContext | None:
    """The routing context of the request being served, if any."""
    return _current.get()


def current_decision(flag: str) -> Decision | None:
    """The decision already made for `flag` in the current request, if any."""
    context = _current.get()
    return None if context is None else context.decisions.get(flag)


@contextmanager
def use_context(context: RoutingContext) -> Iterator[RoutingContext]:
    """Make `context` current inside the block (and reset it afterwards)."""
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)
