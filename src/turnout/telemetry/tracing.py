"""OpenTelemetry spans and feature-flag evaluation events, through the API only.

With no SDK configured (the global provider is still the API's proxy or no-op one),
`Tracing.tracer` is None and callers skip span work entirely: a no-op span still costs
about 3 µs, which is more than a whole decision.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import (
    NoOpTracerProvider,
    ProxyTracerProvider,
    Span,
    Status,
    StatusCode,
    Tracer,
    TracerProvider,
)

from turnout.decision import Decision, Reason
from turnout.privacy import Privacy

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
        self.privacy = Privacy()
        """How keys and error texts are stored in spans (the configuration's, set by `Turnout`)."""
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
        span = _current_span()
        if span is not None and span.is_recording():
            span.add_event(EVALUATION_EVENT, evaluation_attributes(decision, self.privacy.key(targeting_key)))

    def record_error(self, span: Span, error: BaseException) -> None:
        """Mark `span` failed by `error`, keeping of its text what the privacy settings allow."""
        record_error(span, error, self.privacy)


_UNSET: Any = object()
_DEFAULT_PRIVACY = Privacy()


def _span_reader() -> Callable[[], Span | None]:
    """A function giving the current span, or None when there is none.

    `trace.get_current_span()` goes through four calls to read one contextvar: a third of the
    bookkeeping of a decision. With OpenTelemetry's default runtime context (a contextvar holding
    the context mapping) the mapping is read directly; any other runtime context, or an API that
    no longer has these names, gets the public call.
    """
    runtime = getattr(otel_context, "_RUNTIME_CONTEXT", None)
    var = getattr(runtime, "_current_context", None)
    key = getattr(trace, "_SPAN_KEY", None)
    if not isinstance(var, ContextVar) or not isinstance(key, str):
        return trace.get_current_span

    def current() -> Span | None:
        span = var.get().get(key)
        # Span is an ABC: checking None against it would take ABCMeta's slow path on every decision.
        return span if span is not None and isinstance(span, Span) else None

    return current


_current_span = _span_reader()


def _global_provider() -> TracerProvider | None:
    """The globally set tracer provider, or None while there is none.

    `trace.get_tracer_provider()` reads an environment variable on every call while no
    provider is set: about 0.4 µs, paid on every decision. The module global it consults
    holds the same answer; should a future API drop it, the public call is used.
    """
    provider: TracerProvider | None = getattr(trace, "_TRACER_PROVIDER", _UNSET)
    if provider is _UNSET:
        return trace.get_tracer_provider()
    return provider


def evaluation_attributes(decision: Decision, targeting_key: str | None) -> dict[str, Any]:
    """Semantic-convention attributes of a flag evaluation, plus turnout's own details.

    `targeting_key` is None when the privacy settings drop it.
    """
    attributes: dict[str, Any] = {
        "feature_flag.key": decision.flag,
        "feature_flag.provider.name": PROVIDER_NAME,
        "feature_flag.result.variant": decision.variant,
        "feature_flag.result.reason": _SEMCONV_REASON[decision.reason],
        "turnout.reason": decision.reason.value,
    }
    if targeting_key is not None:
        attributes["feature_flag.context.id"] = targeting_key
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


def mark_fallback(
    span: Span, failed: str, fallback: str, error: BaseException, privacy: Privacy | None = None
) -> None:
    """Record on the failed engine's span that the fallback engine takes over."""
    attributes = {
        "turnout.engine.failed": failed,
        "turnout.engine.fallback": fallback,
        "exception.type": type(error).__name__,
    }
    message = (privacy or _DEFAULT_PRIVACY).error_message(error)
    if message is not None:
        attributes["exception.message"] = message
    span.add_event("turnout.fallback", attributes)


def record_error(span: Span, error: BaseException, privacy: Privacy) -> None:
    """An `exception` event and status ERROR on `span`, texts cut and masked per `privacy`.

    Used instead of `Span.record_exception`, which stores the whole message and traceback.
    """
    attributes = {"exception.type": type(error).__name__}
    message = privacy.error_message(error)
    if message is not None:
        attributes["exception.message"] = message
        frames = "".join(traceback.format_tb(error.__traceback__))
        attributes["exception.stacktrace"] = f"{frames}{privacy.error_text(error)}\n"
    span.add_event("exception", attributes)
    span.set_status(Status(StatusCode.ERROR, privacy.error_text(error)))


def _optional(attributes: dict[str, Any], decision: Decision) -> None:
    if decision.rule is not None:
        attributes["turnout.rule"] = decision.rule
    if decision.experiment is not None:
        attributes["turnout.experiment"] = decision.experiment
    if decision.intent is not None:
        attributes["turnout.intent"] = decision.intent
    if decision.bucket is not None:
        attributes["turnout.bucket"] = decision.bucket
