"""Exporters receive `MetricsSnapshot`s: jsonl (the default), logging, and plugins."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import structlog

from turnout.telemetry.snapshot import MetricsSnapshot

_log = structlog.get_logger("turnout")


class Exporter:
    """Base exporter: every method has a no-op default."""

    name = "exporter"

    def export(self, snapshot: MetricsSnapshot) -> None:
        """Deliver one snapshot."""

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        """Push out anything buffered; True if done."""
        return True

    def shutdown(self) -> None:
        """Release resources; called once on stop."""


class JsonlExporter(Exporter):
    """Appends one JSON line per snapshot; rotates the file past `max_bytes`."""

    name = "jsonl"

    def __init__(
        self,
        path: str | os.PathLike[str] = "logs/metrics.jsonl",
        *,
        max_bytes: int = 50_000_000,
        backups: int = 5,
    ) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self.writable = self._prepare()

    def _prepare(self, *, report: bool = True) -> bool:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8"):
                pass
        except OSError as exc:
            if report:
                _log.error(
                    "turnout.metrics_not_writable",
                    path=str(self.path),
                    error=str(exc),
                    note="metrics will not be written there; requests are served as usual",
                )
            return False
        return True

    def export(self, snapshot: MetricsSnapshot) -> None:
        data = (snapshot.model_dump_json() + "\n").encode("utf-8")
        with self._lock:
            # Reported once at start; retried quietly, so a directory fixed later is used.
            if not self.writable and not self._prepare(report=False):
                raise OSError(f"cannot write {self.path}")
            self.writable = True
            self._rotate_if_needed(len(data))
            # One write of the whole line with O_APPEND: several processes can share the file.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)

    def _rotate_if_needed(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        # An empty file is never rotated: a line longer than `max_bytes` gets a file to itself.
        if size == 0 or size + incoming <= self.max_bytes:
            return
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for index in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{index}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{index + 1}"))
        self.path.replace(self.path.with_name(f"{self.path.name}.1"))


class LoggingExporter(Exporter):
    """Logs a one-line summary per component, variant and shadow series through structlog."""

    name = "logging"

    def export(self, snapshot: MetricsSnapshot) -> None:
        for component, stats in snapshot.components.items():
            _log.info("turnout.metrics", component=component, **_summary(stats.model_dump()))
        for experiment, exp in snapshot.experiments.items():
            for variant, stats in exp.variants.items():
                _log.info(
                    "turnout.metrics",
                    experiment=experiment,
                    flag=exp.flag,
                    variant=variant,
                    exposures=stats.exposures,
                    **_summary(stats.model_dump()),
                )
        for flag, pairs in snapshot.shadows.items():
            for pair in pairs.values():
                for intent, stats in pair.get("intents", {}).items():
                    _log.info(
                        "turnout.shadow",
                        flag=flag,
                        served=pair.get("served"),
                        shadow=pair.get("shadow"),
                        intent=intent,
                        compared=stats.get("compared"),
                        match_rate=stats.get("match_rate"),
                        error_rate=stats.get("error_rate"),
                        skipped=stats.get("skipped"),
                        latency_diff_ms=(stats.get("latency_diff_ms") or {}).get("mean"),
                    )


def _summary(stats: dict[str, Any]) -> dict[str, Any]:
    latency = stats.get("latency_ms") or {}
    return {
        "requests": stats.get("total_requests"),
        "success_rate": stats.get("success_rate"),
        "p50_ms": latency.get("p50"),
        "p95_ms": latency.get("p95"),
        "p99_ms": latency.get("p99"),
        "status": stats.get("status"),
        "reason": stats.get("status_reason") or None,
    }
