"""Who and what is being routed, held in a contextvar for the duration of a request."""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import Any

from turnout.decision import Decision
from turnout.types import Intent

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


class UsingContext:
    """Make `context` current inside the block (and reset it afterwards): `with use_context(ctx):`.

    The one place turnout sets the current context: the middleware, `@experiment`, bound engines
    and shadow calls all go through it. Nothing is set when `context` is already current. One
    object serves one `with` at a time.
    """

    __slots__ = ("_token", "context")

    def __init__(self, context: RoutingContext) -> None:
        self.context = context
        self._token: Token[RoutingContext | None] | None = None

    def __enter__(self) -> RoutingContext:
        if _current.get() is not self.context:
            self._token = _current.set(self.context)
        return self.context

    def __exit__(self, *exc: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            _current.reset(token)


use_context = UsingContext
"""`with use_context(ctx):` — the class itself, so entering a block costs no extra call."""
