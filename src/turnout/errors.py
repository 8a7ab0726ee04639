"""Exceptions raised by turnout. Evaluation never raises these into a request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from turnout.redact import redact_text, redact_value


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
        # Every error passes through here: secrets in values and messages never leave it.
        self.issues = tuple(_redacted(issue) for issue in issues)
        self.source = source
        where = f" in {source}" if source else ""
        lines = "\n".join(f"  - {issue}" for issue in self.issues)
        count = len(self.issues)
        super().__init__(f"{count} configuration error{'s' if count != 1 else ''}{where}:\n{lines}")


def _redacted(issue: ConfigIssue) -> ConfigIssue:
    name = issue.path.rsplit(".", 1)[-1]  # `http.override_secret` holds a secret by its name
    return ConfigIssue(issue.path, redact_value(issue.value, name), redact_text(issue.message))


class ConditionError(TurnoutError, ValueError):
    """A targeting condition cannot be compiled (unknown operator, bad operand)."""

    def __init__(self, path: str, value: Any, message: str) -> None:
        self.path = path
        self.value = value
        self.message = message
        super().__init__(f"{path}: {message} (got {_short_repr(value)})")


class UnknownFlagError(TurnoutError, KeyError):
    """A decision named a flag the configuration does not declare."""

    def __init__(self, flag: str) -> None:
        self.flag = flag
        super().__init__(f"flag {flag!r} is not in the configuration")

    def __str__(self) -> str:
        return str(self.args[0])


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
        super().__init__(f"engine {engine!r}: {message}" if engine else f"no engine {message}")


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


def redact(text: str) -> str:
    """Mask credentials in text (URL passwords, `api_key=`-like values) for messages."""
    return redact_text(text)


def _short_repr(value: Any, limit: int = 80) -> str:
    try:
        text = redact(repr(value))  # before truncating, which could cut a URL's "@"
    except (RecursionError, ValueError):  # nested too deep, or an int too long to print
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."
