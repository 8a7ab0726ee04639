"""Fail-open bookkeeping: a failure is logged once per kind, counted always, never raised."""

from __future__ import annotations

import threading
from collections import Counter

import structlog

from turnout.redact import redact_text

_log = structlog.get_logger("turnout")
_MAX_KINDS = 1024


class Failures:
    """Counts failures by (component, error type) and logs the first of each kind."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self.exception_text = "full"
        """"full": log the error's repr; "type": its type alone (`privacy.exception_text`)."""
        self.exception_text_length = 500
        """Longest error text logged (`privacy.exception_text_length`)."""

    def record(self, component: str, error: BaseException, *, log: bool = True, **details: object) -> None:
        """Count `error` under `component`; log it if this kind was not seen before (and `log`)."""
        key = (component, type(error).__name__)
        with self._lock:
            first = key not in self._counts
            if first and len(self._counts) >= _MAX_KINDS:
                key = (component, "other")
                first = key not in self._counts
            self._counts[key] += 1
        if first and log:
            # `event` is structlog's own first argument: a detail of that name must not clash.
            details = {("event_name" if k == "event" else k): v for k, v in details.items()}
            _log.warning(
                "turnout.failure",
                component=component,
                error=self._text(error),
                note="logged once per kind; later ones are only counted",
                **details,
            )

    def _text(self, error: BaseException) -> str:
        if self.exception_text == "type":
            return type(error).__name__
        try:
            text, message = repr(error), str(error)
        except Exception:  # a broken __repr__ must not break the error path
            return type(error).__name__
        limit = self.exception_text_length
        if len(message) > limit:
            text = f"{type(error).__name__}({message[:limit] + '...'!r})"
        return redact_text(text)

    def count(self, component: str | None = None) -> int:
        """How many failures were recorded (for one component, or in all)."""
        with self._lock:
            return sum(n for (c, _), n in self._counts.items() if component is None or c == component)

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Counts as {component: {error type: count}}."""
        result: dict[str, dict[str, int]] = {}
        with self._lock:
            for (component, kind), n in self._counts.items():
                result.setdefault(component, {})[kind] = n
        return result
