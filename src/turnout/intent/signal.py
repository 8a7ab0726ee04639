"""Intent as a routing signal: which classifier a config names, and a traced, fail-open classify."""

from __future__ import annotations

import os
from time import perf_counter
from typing import Any

from turnout.config import IntentConfig, TurnoutConfig
from turnout.errors import ConfigError, ConfigIssue, TurnoutError
from turnout.failures import Failures
from turnout.telemetry.hub import Telemetry
from turnout.telemetry.tracing import INTENT_SPAN
from turnout.types import Classifier, Intent, NoOpClassifier

ClassifierKey = tuple[Any, ...]


def classifier_key(config: TurnoutConfig) -> ClassifierKey:
    """What the classifier depends on: its settings, the plugin policy and the model file's stamp
    (so a model retrained in place is picked up by the next reload)."""
    model = config.intent.model
    try:
        stamp = os.stat(model).st_mtime_ns if model and model != "builtin" else None
    except OSError:
        stamp = None
    return (config.intent, config.plugins, stamp)


def configured_classifier(config: TurnoutConfig) -> Classifier:
    """The classifier `config.intent` names (NoOp when intent is off); a bad one is a ConfigError."""
    settings = config.intent
    if not settings.enabled:
        return NoOpClassifier(settings.unknown_label)
    from turnout.intent import build_classifier

    try:
        return build_classifier(settings, block=config.plugins.block, autoload=config.plugins.autoload)
    except TurnoutError as exc:
        field = "model" if settings.classifier == "fasttext" else "classifier"
        raise ConfigError([ConfigIssue(f"intent.{field}", getattr(settings, field), str(exc))]) from exc


def classify(
    classifier: Classifier,
    settings: IntentConfig,
    text: str | None,
    *,
    telemetry: Telemetry,
    failures: Failures,
) -> Intent:
    """The intent of `text`; any classifier failure gives `unknown` (counted, logged once)."""
    if not text or not text.strip():
        return Intent(settings.unknown_label, 0.0)
    text = text[: settings.max_chars]
    tracer = telemetry.tracing.tracer
    if tracer is None:
        return _predict(classifier, settings, text, telemetry, failures)[0]
    with tracer.start_as_current_span(INTENT_SPAN, attributes={"turnout.text_length": len(text)}) as span:
        intent, error = _predict(classifier, settings, text, telemetry, failures)
        span.set_attributes({"turnout.intent": intent.label, "turnout.intent.confidence": intent.confidence})
        if intent.raw_label is not None:
            span.set_attribute("turnout.intent.raw", intent.raw_label)
        if error is not None:  # success stays UNSET, as OpenTelemetry asks of instrumentation
            telemetry.tracing.record_error(span, error)
        return intent


def _predict(
    classifier: Classifier, settings: IntentConfig, text: str, telemetry: Telemetry, failures: Failures
) -> tuple[Intent, Exception | None]:
    started = perf_counter()
    try:
        intent = classifier.predict(text)
    except Exception as exc:
        failures.record("intent.classify", exc)
        telemetry.metrics.record(
            "intent.classify", (perf_counter() - started) * 1000.0, False, type(exc).__name__
        )
        return Intent(settings.unknown_label, 0.0), exc
    telemetry.metrics.record("intent.classify", (perf_counter() - started) * 1000.0, True)
    if intent.confidence < settings.min_confidence and intent.label != settings.unknown_label:
        return Intent(settings.unknown_label, intent.confidence, intent.raw_label or intent.label), None
    return intent, None
