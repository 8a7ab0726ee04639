"""A circuit breaker: skip an engine after consecutive failures, then try it again."""

from __future__ import annotations

import threading

from turnout.types import Clock

_CLOSED, _OPEN, _HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    """Opens after `failures` consecutive failures; lets one trial call through after `reset_s`."""

    __slots__ = ("_clock", "_failures", "_lock", "_opened_at", "reset_s", "state", "threshold")

    def __init__(self, failures: int, reset_s: float, clock: Clock) -> None:
        self.threshold = failures
        self.reset_s = reset_s
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._lock = threading.Lock()
        self.state = _CLOSED

    def allow(self) -> bool:
        """Whether a call may go to the engine now."""
        if self.state == _CLOSED:
            return True
        with self._lock:
            if self.state == _OPEN and self._clock() - self._opened_at >= self.reset_s:
                self.state = _HALF_OPEN
                return True
            return False

    def succeeded(self) -> None:
        """Record a success: the breaker closes."""
        if self._failures or self.state != _CLOSED:
            with self._lock:
                self._failures = 0
                self.state = _CLOSED

    def failed(self) -> None:
        """Record a failure; the threshold (or any failure while half-open) opens the breaker."""
        with self._lock:
            self._failures += 1
            if self.state == _HALF_OPEN or self._failures >= self.threshold:
                self.state = _OPEN
                self._opened_at = self._clock()

    def abandoned(self) -> None:
        """A call ended without a verdict (cancelled): a half-open breaker lets the next call try."""
        # Without this a cancelled trial call would leave the breaker half-open, refusing every call.
        if self.state == _HALF_OPEN:
            with self._lock:
                if self.state == _HALF_OPEN:
                    self.state = _OPEN
