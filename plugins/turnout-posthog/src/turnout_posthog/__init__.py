"""turnout-posthog: turnout's events and metrics snapshots to PostHog, through the official SDK.

Entry points: `turnout.sinks:posthog` (`PostHogSink`) and `turnout.exporters:posthog`
(`PostHogExporter`).
"""

from turnout_posthog.connection import PostHogConfigError, PostHogDeliveryError, PostHogSettings, redact
from turnout_posthog.exporter import PostHogExporter, snapshot_captures
from turnout_posthog.sink import PostHogSink, options_from_url, to_capture

__all__ = [
    "PostHogConfigError",
    "PostHogDeliveryError",
    "PostHogExporter",
    "PostHogSettings",
    "PostHogSink",
    "options_from_url",
    "redact",
    "snapshot_captures",
    "to_capture",
]

__version__ = "0.1.0"
