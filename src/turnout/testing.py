"""Helpers for testing code that uses turnout: a fake clock, in-memory exporter and sink, contexts."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from turnout.context import RoutingContext
from turnout.events.sinks import MemorySink
from turnout.telemetry.exporters import Exporter
from turnout.telemetry.snapshot import MetricsSnapshot

__all__ = ["FakeClock", "InMemoryExporter", "MemorySink", "context"]


class FakeClock:
    """An injectable clock (`Turnout(..., clock=FakeClock())`) that moves only when told."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


class InMemoryExporter(Exporter):
    """Keeps every exported snapshot in `snapshots` (thread-safe)."""

    name = "memory"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: list[MetricsSnapshot] = []
        self.shut_down = False

    def export(self, snapshot: MetricsSnapshot) -> None:
        with self._lock:
            self._snapshots.append(snapshot)

    def shutdown(self) -> None:
        self.shut_down = True

    @property
    def snapshots(self) -> list[MetricsSnapshot]:
        """The snapshots received so far, oldest first."""
        with self._lock:
            return list(self._snapshots)

    def clear(self) -> None:
        """Forget the snapshots received so far."""
        with self._lock:
            self._snapshots.clear()


def context(key: str = "user-1", /, **attributes: Any) -> RoutingContext:
    """A routing context for tests: `context("u1", plan="premium")`."""
    text = attributes.pop("text", None)
    overrides: Mapping[str, str] = attributes.pop("overrides", {})
    return RoutingContext(key, attributes, text=text, overrides=overrides)
