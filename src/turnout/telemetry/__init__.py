"""Request metrics with accurate percentiles, health judgement and quantile sketches."""

from turnout.telemetry.metrics import Health, Measure, MetricsRegistry, health
from turnout.telemetry.sketch import QuantileSketch

__all__ = ["Health", "Measure", "MetricsRegistry", "QuantileSketch", "health"]
