"""`MetricsSnapshot`: what the snapshot loop hands to exporters (one metrics.jsonl line)."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_serializer


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")


class LatencyStats(_Frozen):
    """Latency in milliseconds."""

    mean: float = 0.0
    p50: float = 0.0
    p95: float = 0.0
    p99: float = 0.0
    max: float = 0.0


class WindowStats(_Frozen):
    """Figures for one interval (or cumulative, in the enclosing object)."""

    total_requests: int = 0
    success_rate: float | None = None
    latency_ms: LatencyStats = LatencyStats()
    errors: dict[str, int] = Field(default_factory=dict)


class ComponentStats(WindowStats):
    """Cumulative figures of a component, its health, and the last interval's window."""

    status: str = "healthy"
    status_reason: str = ""
    window: WindowStats | None = None


class VariantStats(ComponentStats):
    """A component's figures for one variant of an experiment, plus its exposures."""

    exposures: int = 0


class ExperimentStats(_Frozen):
    """An experiment's variants side by side."""

    flag: str
    variants: dict[str, VariantStats] = Field(default_factory=dict)


class MetricsSnapshot(_Frozen):
    """One snapshot: cumulative figures since the process started, with per-interval windows."""

    timestamp: datetime
    interval_s: float
    process: str
    components: dict[str, ComponentStats] = Field(default_factory=dict)
    experiments: dict[str, ExperimentStats] = Field(default_factory=dict)
    failures: dict[str, dict[str, int]] = Field(default_factory=dict)
    shadows: dict[str, Any] = Field(default_factory=dict)
    """Shadow results: {flag: {"<served>-><shadow>": {"served", "shadow", "intents": {intent: figures}}}}."""
    decisions: dict[str, dict[str, dict[str, int]]] = Field(default_factory=dict)
    """Decisions per flag and reason: {flag: {reason: {"total": since start, "window": last interval}}}."""

    @field_serializer("timestamp")
    def _utc(self, value: datetime) -> str:
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def process_name() -> str:
    """host:pid, so lines from several processes sharing a file never mix."""
    return f"{socket.gethostname()}:{os.getpid()}"


def now_utc() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


def snapshot_from(
    data: dict[str, Any],
    *,
    interval_s: float,
    timestamp: datetime | None = None,
    failures: dict[str, dict[str, int]] | None = None,
) -> MetricsSnapshot:
    """Build a snapshot from a metrics registry's plain data."""
    return MetricsSnapshot(
        timestamp=timestamp or now_utc(),
        interval_s=interval_s,
        process=process_name(),
        components=data.get("components", {}),
        experiments=data.get("experiments", {}),
        failures=failures or {},
        shadows=data.get("shadows", {}),
        decisions=data.get("decisions", {}),
    )
