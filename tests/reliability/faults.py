"""Faulty parts for the reliability suite: engines, exporters, sinks and a classifier that fail."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from typing import Any

from turnout.events import Event, EventSink
from turnout.telemetry.exporters import Exporter
from turnout.telemetry.snapshot import MetricsSnapshot
from turnout.types import Intent

HANG_S = 0.05
"""How long a hanging sync engine sleeps: past its timeout, short enough for CI."""


class EngineDown(RuntimeError):
    """What the raising engines raise."""


def raise_sync(message: str) -> str:
    raise EngineDown("sync engine is down")


async def raise_async(message: str) -> str:
    raise EngineDown("async engine is down")


def hang_sync(message: str) -> str:
    time.sleep(HANG_S)
    return "too late"


async def hang_async(message: str) -> str:
    await asyncio.sleep(3600)
    return "never"


def legacy(message: str) -> str:
    return f"legacy:{message}"


class RaisingClassifier:
    """A classifier whose model is broken."""

    calls = 0

    def predict(self, text: str) -> Intent:
        self.calls += 1
        raise RuntimeError("model file is corrupt")


class RaisingExporter(Exporter):
    name = "raising"

    def __init__(self) -> None:
        self.calls = 0

    def export(self, snapshot: MetricsSnapshot) -> None:
        self.calls += 1
        raise ConnectionError("collector unreachable")


class HangingExporter(Exporter):
    name = "hanging"

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, snapshot: MetricsSnapshot) -> None:
        self.release.wait(5.0)  # bounded, so a failed test leaves no thread behind for long


class RaisingSink(EventSink):
    name = "raising"

    def __init__(self) -> None:
        self.calls = 0

    async def write(self, batch: Sequence[Event]) -> None:
        self.calls += 1
        raise ConnectionError("warehouse is down")

    def write_sync(self, batch: Sequence[Event]) -> None:
        raise ConnectionError("warehouse is down")


class HangingSink(EventSink):
    name = "hanging"

    async def write(self, batch: Sequence[Event]) -> None:
        await asyncio.sleep(3600)

    def write_sync(self, batch: Sequence[Event]) -> None:
        raise TimeoutError("hung")

    async def close(self) -> None:
        await asyncio.sleep(3600)


def count(snapshot: dict[str, dict[str, int]], component: str) -> int:
    """Failures counted under `component`, of any type."""
    return sum(snapshot.get(component, {}).values())


def body(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = response.json()
    return data
