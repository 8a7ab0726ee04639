"""`PostHogExporter`: each metrics snapshot as PostHog events, one per component and per variant.

Flat numeric properties (`latency_p99_ms`, `success_rate`, `window_…`) so a PostHog
trend can chart, say, the average `latency_p99_ms` broken down by `engine` or by
`variant`. The events are personless (`$process_person_profile: false`): the sender
is a process, not a user.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from turnout.events.model import check_name
from turnout.telemetry.exporters import Exporter
from turnout.telemetry.snapshot import ComponentStats, MetricsSnapshot, WindowStats
from turnout_posthog.connection import Capture, Connection, PostHogConfigError, PostHogSettings, redact

METRICS_EVENT = "turnout_metrics"
_IDS = uuid.UUID("0f3c2a4e-64a8-4b8e-9d0b-6f1f4a7c2d90")
"""Namespace of the events' uuids: one snapshot sent twice is stored once."""


def _figures(stats: WindowStats, prefix: str = "") -> dict[str, Any]:
    latency = stats.latency_ms
    return {
        f"{prefix}total_requests": stats.total_requests,
        f"{prefix}success_rate": stats.success_rate,
        f"{prefix}latency_mean_ms": latency.mean,
        f"{prefix}latency_p50_ms": latency.p50,
        f"{prefix}latency_p95_ms": latency.p95,
        f"{prefix}latency_p99_ms": latency.p99,
        f"{prefix}latency_max_ms": latency.max,
        f"{prefix}error_count": sum(stats.errors.values()),
        f"{prefix}errors": dict(stats.errors),
    }


def _stats(stats: ComponentStats) -> dict[str, Any]:
    figures = {**_figures(stats), "status": stats.status, "status_reason": stats.status_reason}
    if stats.window is not None:
        figures.update(_figures(stats.window, "window_"))
    return figures


def snapshot_captures(
    snapshot: MetricsSnapshot, *, event: str = METRICS_EVENT, distinct_id: str | None = None
) -> list[Capture]:
    """The SDK calls that send `snapshot`: one event per component, one per experiment variant."""
    who = distinct_id or f"turnout:{snapshot.process}"
    stamp = snapshot.timestamp
    common = {
        "process": snapshot.process,
        "interval_s": snapshot.interval_s,
        "$process_person_profile": False,
    }

    def capture(key: str, properties: dict[str, Any]) -> Capture:
        identity = uuid.uuid5(_IDS, f"{snapshot.process}|{stamp.isoformat()}|{key}")
        return Capture(event, who, {**common, **properties}, stamp, str(identity))

    captures = []
    for name, stats in snapshot.components.items():
        engine = name.removeprefix("engine.") if name.startswith("engine.") else None
        captures.append(
            capture(f"c:{name}", {"kind": "component", "component": name, "engine": engine, **_stats(stats)})
        )
    for experiment, figures in snapshot.experiments.items():
        for variant, stats in figures.variants.items():
            properties = {
                "kind": "variant",
                "experiment": experiment,
                "flag": figures.flag,
                "variant": variant,
                "exposures": stats.exposures,
                **_stats(stats),
            }
            captures.append(capture(f"v:{experiment}:{variant}", properties))
    return captures


class PostHogExporter(Exporter):
    """Sends metrics snapshots to PostHog (`telemetry.exporters = ["posthog"]`)."""

    name = "posthog"

    def __init__(
        self,
        api_key: str | None = None,
        host: str | None = None,
        *,
        event: str = METRICS_EVENT,
        distinct_id: str | None = None,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        try:
            self.event = check_name(event)
        except ValueError as exc:
            raise PostHogConfigError(f"PostHog exporter event: {exc}") from None
        self.distinct_id = distinct_id
        self.settings = PostHogSettings.resolve(api_key, host, env=env, **options)
        self._connection = Connection(self.settings)

    def __repr__(self) -> str:
        return f"PostHogExporter(host={self.settings.host!r}, api_key={redact(self.settings.api_key)!r})"

    def export(self, snapshot: MetricsSnapshot) -> None:
        self._connection.send(snapshot_captures(snapshot, event=self.event, distinct_id=self.distinct_id))

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        return self._connection.flush(timeout_s)

    def shutdown(self) -> None:
        self._connection.close()
