"""OpenTelemetry spans and feature-flag evaluation events, through the API only.

With no SDK configured (the global provider is still the API's proxy or no-op one),
`Tracing.tracer` is None and callers skip span work entirely: a no-op span still costs
about 3 µs, which is more than a whole decision.
"""

from __future__ import annotations

from typing import Any, cast

from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, Span, Tracer, TracerProvider

from turnout.decision import Decision, Reason

PROVIDER_NAME = "turnout"
EVALUATION_EVENT = "feature_flag.evaluation"
ENGINE_SPAN = "turnout.engine"
INTENT_SPAN = "turnout.intent"

# OpenTelemetry's feature-flag semantic conventions name a fixed set of reasons.
_SEMCONV_REASON = {
    Reason.DEFAULT: "default",
    Reason.TARGETING_MATCH: "targeting_match",
    Reason.SPLIT: "split",
    Reason.OVERRIDE: "static",
    Reason.DISABLED: "disabled",
    Reason.FALLBACK: "error",
    Reason.ERROR: "error",
}


class Tracing:
    """Finds the tracer to use (an explicit provider, else the global one) and shapes span data."""

    def __init__(self, tracer_provider: TracerProvider | None = None, *, version: str = "") -> None:
        self._explicit = tracer_provider
        self._version = version
        # (provider, its tracer) in one tuple: threads read and replace it atomically.
        self._cached: tuple[TracerProvider | None, Tracer | None] = (None, None)
        trace.get_tracer_provider()  # once: sets up a provider named by OTEL_PYTHON_TRACER_PROVIDER

    @property
    def tracer(self) -> Tracer | None:
        """The tracer, or None when no SDK is configured (so no span is worth starting)."""
        provider = self._explicit if self._explicit is not None else _global_provider()
        seen, tracer = self._cached
        if provider is not seen:
            tracer = (
                None
                if provider is None or isinstance(provider, ProxyTracerProvider | NoOpTracerProvider)
                else provider.get_tracer("turnout", self._version)
            )
            self._cached = (provider, tracer)
        return tracer

    def record_evaluation(self, decision: Decision, targeting_key: str) -> None:
        """Add a `feature_flag.evaluation` event to the current span, if it records."""
        # Not gated on `self.tracer`: the current span may come from another provider (say,
        # one given only to the ASGI instrumentation).
        span = trace.get_current_span()
        if span.is_recording():
            span.add_event(EVALUATION_EVENT, evaluation_attributes(decision, targeting_key))


_UNSET = object()


def _global_provider() -> TracerProvider | None:
    """The globally set tracer provider, or None while there is none.

    `trace.get_tracer_provider()` reads an environment variable on every call while no
    provider is set: about 0.4 µs, paid on every decision. The module global it consults
    holds the same answer; should a future API drop it, the public call is used.
    """
    provider = getattr(trace, "_TRACER_PROVIDER", _UNSET)
    if provider is _UNSET:
        return trace.get_tracer_provider()
    return cast("TracerProvider | None", provider)


def evaluation_attributes(decision: Decision, targeting_key: str) -> dict[str, Any]:
    """Semantic-convention attributes of a flag evaluation, plus turnout's own details."""
    attributes: dict[str, Any] = {
        "feature_flag.key": decision.flag,
        "feature_flag.provider.name": PROVIDER_NAME,
        "feature_flag.result.variant": decision.variant,
        "feature_flag.result.reason": _SEMCONV_REASON[decision.reason],
        "feature_flag.context.id": targeting_key,
        "turnout.reason": decision.reason.value,
    }
    _optional(attributes, decision)
    return attributes


def engine_attributes(engine: str, version: str, decision: Decision) -> dict[str, Any]:
    """Attributes of a `turnout.engine` span."""
    attributes: dict[str, Any] = {
        "turnout.engine.name": engine,
        "turnout.engine.version": version,
        "feature_flag.key": decision.flag,
        "feature_flag.result.variant": decision.variant,
        "turnout.reason": decision.reason.value,
    }
    _optional(attributes, decision)
    return attributes


def mark_fallback(span: Span, failed: str, fallback: str, error: BaseException) -> None:
    """Record on the failed engine's span that the fallback engine takes over."""
    span.add_event(
        "turnout.fallback",
        {
            "turnout.engine.failed": failed,
            "turnout.engine.fallback": fallback,
            "exception.type": type(error).__name__,
            "exception.message": str(error)[:500],
        },
    )


def _optional(attributes: dict[str, Any], decision: Decision) -> None:
    if decision.rule is not None:
        attributes["turnout.rule"] = decision.rule
    if decision.experiment is not None:
        attributes["turnout.experiment"] = decision.experiment
    if decision.intent is not None:
        attributes["turnout.intent"] = decision.intent
    if decision.bucket is not None:
        attributes["turnout.bucket"] = decision.bucket
