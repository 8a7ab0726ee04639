"""Exceptions raised by turnout. Evaluation never raises these into a request."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


class TurnoutError(Exception):
    """Base class for every error turnout raises on purpose."""


class _Nothing:
    def __repr__(self) -> str:
        return "NOTHING"


NOTHING: Any = _Nothing()
"""The `value` of a `ConfigIssue` about something absent (a missing key, an unreadable file)."""


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a configuration: where it is, what was there, what is wrong."""

    path: str
    value: Any
    message: str

    def __str__(self) -> str:
        if self.value is NOTHING:
            return f"{self.path}: {self.message}"
        return f"{self.path}: {self.message} (got {_short_repr(self.value)})"


class ConfigError(TurnoutError, ValueError):
    """A configuration did not validate; `issues` lists every problem found."""

    def __init__(self, issues: Sequence[ConfigIssue], *, source: str | None = None) -> None:
        self.issues = tuple(issues)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        count = len(self.issues)
        super().__init__(f"{count} configuration error{'s' if count != 1 else ''}{where}:\n{lines}")


class ConditionError(TurnoutError, ValueError):
    """A targeting condition cannot be compiled (unknown operator, bad operand)."""

    def __init__(self, path: str, value: Any, message: str) -> None:
        self.path = path
        self.value = value
        self.message = message
        super().__init__(f"{path}: {message} (got {_short_repr(value)})")


class MissingExtraError(TurnoutError, ImportError):
    """An optional dependency is needed; names the extra that installs it."""

    def __init__(self, extra: str, module: str, feature: str) -> None:
        self.extra = extra
        super().__init__(
            f'{feature} needs the optional dependency {module!r}: pip install "turnout[{extra}]"'
        )


class EngineError(TurnoutError):
    """An engine could not serve a call."""

    def __init__(self, engine: str, message: str) -> None:
        self.engine = engine
        super().__init__(f"engine {engine!r}: {message}")


class EngineNotFoundError(EngineError):
    """A decision named an engine that is not registered."""


class EngineTimeoutError(EngineError, TimeoutError):
    """An engine call ran past its `timeout_ms`."""


class CircuitOpenError(EngineError):
    """The engine's circuit breaker is open after repeated failures."""


class WorkflowStepError(EngineError):
    """A step of a `Workflow` raised; `step` names it, the cause is chained."""

    def __init__(self, engine: str, step: str, cause: BaseException) -> None:
        self.step = step
        super().__init__(engine, f"step {step!r} failed: {type(cause).__name__}: {cause}")


_SECRET_QUERY = re.compile(r"(?i)([?&][^=&#]*(?:key|token|secret|password|passwd|pwd)[^=&#]*=)[^&#]*")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@")


def redact(text: str) -> str:
    """Mask credentials in URLs (passwords, `api_key=`/`token=`-like query values) for messages."""
    return _SECRET_QUERY.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def _short_repr(value: Any, limit: int = 80) -> str:
    text = redact(repr(value))  # before truncating, which could cut a URL's "@"
    return text if len(text) <= limit else text[: limit - 3] + "..."
