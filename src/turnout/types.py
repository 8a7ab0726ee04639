"""Shared type aliases and the small protocols the parts of turnout plug into."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NamedTuple, Protocol, runtime_checkable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

Clock = Callable[[], float]
"""Seconds since the epoch; injectable so rollouts and breakers can be tested."""

EngineCallable = Callable[..., Any]
"""A sync or async callable that serves a request (its result may be awaitable)."""


class Intent(NamedTuple):
    """A classified message: the label served to rules and the model's confidence."""

    label: str
    confidence: float
    raw_label: str | None = None


@runtime_checkable
class Classifier(Protocol):
    """Turns a message into an `Intent`."""

    def predict(self, text: str) -> Intent: ...


class NoOpClassifier:
    """The classifier used when intent is disabled: everything is `unknown`."""

    def __init__(self, unknown_label: str = "unknown") -> None:
        self._intent = Intent(unknown_label, 0.0)

    def predict(self, text: str) -> Intent:
        return self._intent
