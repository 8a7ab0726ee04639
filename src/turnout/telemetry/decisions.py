"""How many decisions each flag made, by reason: what the dashboard's "decision reasons" chart draws.

Counting runs on every `decide()`, so it is one dictionary update under an uncontended lock — no
histogram, no allocation once a (flag, reason) pair has been seen. The window of a snapshot is the
difference between the cumulative count now and at the previous snapshot, so closing a window
touches no counter the request path writes.
"""

from __future__ import annotations

import threading

from turnout.decision import Reason

DecisionCounts = dict[str, dict[str, dict[str, int]]]
"""{flag: {reason: {"total": cumulative count, "window": count in the last interval}}}."""


class DecisionCounter:
    """Decisions per flag and reason since the process started, and since the last snapshot."""

    def __init__(self, *, max_flags: int = 1000) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, Reason], int] = {}
        self._taken: dict[tuple[str, Reason], int] = {}
        self._flags: set[str] = set()
        self._max_flags = max_flags
        self.dropped = 0
        """Decisions not counted because `max_flags` distinct flags were already being counted."""

    def count(self, flag: str, reason: Reason) -> None:
        """Count one decision of `flag` made for `reason`."""
        key = (flag, reason)
        with self._lock:
            known = self._counts.get(key)
            if known is not None:
                self._counts[key] = known + 1
            elif flag in self._flags or len(self._flags) < self._max_flags:
                # Unknown flag names come from callers; a bound keeps a typo loop from growing memory.
                self._flags.add(flag)
                self._counts[key] = 1
            else:
                self.dropped += 1

    def take(self, *, reset_window: bool = True) -> DecisionCounts:
        """The counts as plain data; `reset_window` starts the next window (the snapshot loop's call)."""
        with self._lock:
            counts = dict(self._counts)
            if reset_window:
                taken, self._taken = self._taken, counts
            else:
                taken = self._taken
        result: DecisionCounts = {}
        for (flag, reason), total in sorted(counts.items()):
            entry = {"total": total, "window": total - taken.get((flag, reason), 0)}
            result.setdefault(flag, {})[reason.value] = entry
        return result
