"""`Telemetry`: the metrics registry, tracing and the snapshot loop of one Turnout."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from opentelemetry.trace import TracerProvider

from turnout.config import PluginsConfig, TelemetryConfig, ThresholdsConfig
from turnout.errors import TurnoutError
from turnout.failures import Failures
from turnout.plugins import build_plugin
from turnout.telemetry.decisions import DecisionCounter
from turnout.telemetry.exporters import Exporter, JsonlExporter, LoggingExporter
from turnout.telemetry.logs import configure_logging
from turnout.telemetry.loop import SnapshotLoop
from turnout.telemetry.metrics import MetricsRegistry, health
from turnout.telemetry.shadows import ShadowStats
from turnout.telemetry.snapshot import MetricsSnapshot, snapshot_from
from turnout.telemetry.tracing import Tracing
from turnout.types import ASGIApp, Receive, Scope, Send


class Telemetry:
    """Everything turnout measures: per-component and per-variant metrics, spans, exporters."""

    def __init__(
        self,
        failures: Failures,
        *,
        tracer_provider: TracerProvider | None = None,
        exporters: Sequence[Exporter] = (),
        version: str = "",
    ) -> None:
        self.failures = failures
        self.metrics = MetricsRegistry()
        self.shadows = ShadowStats()
        self.decisions = DecisionCounter()
        self.tracing = Tracing(tracer_provider, version=version)
        self._extra = list(exporters)
        self._loop: SnapshotLoop | None = None
        self._prometheus: Any = None
        self.config = TelemetryConfig()

    @property
    def exporters(self) -> list[Exporter]:
        """The exporters of the running snapshot loop (empty before start)."""
        return self._loop.exporters if self._loop is not None else []

    def live(self) -> dict[str, Any]:
        """Cumulative figures now, with health, without closing the current window."""
        data = self._judged(self.metrics.snapshot(reset_window=False))
        data["shadows"] = self.shadows.snapshot(reset_window=False)
        data["decisions"] = self.decisions.take(reset_window=False)
        return data

    def take(self) -> MetricsSnapshot:
        """A snapshot for exporters: closes the current window."""
        data = self._judged(self.metrics.snapshot(reset_window=True))
        data["shadows"] = self.shadows.snapshot(reset_window=True)
        data["decisions"] = self.decisions.take(reset_window=True)
        return snapshot_from(
            data, interval_s=self.config.snapshot_interval_s, failures=self.failures.snapshot()
        )

    def _judged(self, data: dict[str, Any]) -> dict[str, Any]:
        for name, stats in data.get("components", {}).items():
            _judge(stats, self._thresholds(name))
        for experiment in data.get("experiments", {}).values():
            for stats in experiment.get("variants", {}).values():
                _judge(stats, self.config.thresholds)
        return data

    def _thresholds(self, component: str) -> ThresholdsConfig:
        return self.config.components.get(component, self.config.thresholds)

    async def start(self, config: TelemetryConfig, plugins: PluginsConfig | None = None) -> None:
        """Configure logging (unless the app did) and start the snapshot loop."""
        self.config = config
        configure_logging(config.log_format)
        if self._loop is not None:
            return
        exporters = [*build_exporters(config, self, plugins or PluginsConfig()), *self._extra]
        self._loop = SnapshotLoop(
            self.take,
            exporters,
            interval_s=config.snapshot_interval_s,
            timeout_s=config.exporter_timeout_s,
            failures=self.failures,
        )
        self._loop.start()

    async def stop(self) -> None:
        """Stop the loop after a final snapshot."""
        loop, self._loop = self._loop, None
        if loop is not None:
            await loop.stop()

    async def publish(self) -> MetricsSnapshot | None:
        """Take and export a snapshot now (the loop must be running)."""
        return await self._loop.publish() if self._loop is not None else None

    def prometheus(self) -> Any:
        """The Prometheus exporter over live figures (created on first use)."""
        if self._prometheus is None:
            from turnout.telemetry.prometheus import PrometheusExporter

            self._prometheus = PrometheusExporter(self.live)
        # A stop() shut it down (unregistered its collector); a new start() or app brings it back.
        self._prometheus.register()
        return self._prometheus

    def metrics_app(self) -> ASGIApp:
        """An ASGI app serving Prometheus' text format: `app.add_route("/metrics", ...)`."""
        return _Endpoint(self.prometheus().asgi_app())


class _Endpoint:
    """An ASGI app as an object, which Starlette's `Route` serves as it is at its exact path.

    Mounted instead, `/metrics` would answer `/metrics` with a 307 redirect to `/metrics/`.
    """

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


def build_exporters(config: TelemetryConfig, telemetry: Telemetry, plugins: PluginsConfig) -> list[Exporter]:
    """Exporters named in config: jsonl, logging, prometheus, otel, or `turnout.exporters` plugins."""
    built: list[Exporter] = []
    factories: Mapping[str, Callable[[], Exporter]] = {
        "jsonl": lambda: JsonlExporter(
            config.jsonl_path, max_bytes=config.jsonl_max_bytes, backups=config.jsonl_backups
        ),
        "logging": LoggingExporter,
        "prometheus": telemetry.prometheus,
        "otel": lambda: _otel(telemetry),
    }
    for name in config.exporters:
        factory = factories.get(name)
        if factory is not None:
            built.append(factory())
        else:
            options = config.exporter_options.get(name, {})
            built.append(
                build_plugin(
                    "turnout.exporters", name, options, block=plugins.block, autoload=plugins.autoload
                )
            )
    return built


BUILTIN_EXPORTERS = ("jsonl", "logging", "prometheus", "otel")


def check_exporters(config: TelemetryConfig, plugins: PluginsConfig) -> list[tuple[int, str, str]]:
    """(index, name, problem) for each exporter name that is neither built in nor a loadable plugin."""
    from turnout.plugins import load_plugin

    problems = []
    for index, name in enumerate(config.exporters):
        if name in BUILTIN_EXPORTERS:
            continue
        try:
            load_plugin("turnout.exporters", name, block=plugins.block, autoload=plugins.autoload)
        except TurnoutError as exc:
            problems.append((index, name, f"{exc} (built in: {', '.join(BUILTIN_EXPORTERS)})"))
    return problems


def _otel(telemetry: Telemetry) -> Exporter:
    from turnout.telemetry.otel import OtelExporter

    return OtelExporter(telemetry.live)


def _judge(stats: dict[str, Any], thresholds: ThresholdsConfig) -> None:
    status, reason = health(stats, thresholds)
    stats["status"], stats["status_reason"] = status.value, reason
    window = stats.get("window")
    if isinstance(window, dict):
        status, reason = health(window, thresholds)
        window["status"], window["status_reason"] = status.value, reason
