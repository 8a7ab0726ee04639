"""Engine and intent spans, flag-evaluation events and the sampler, with the real OpenTelemetry SDK."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.util._once import Once
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from turnout import Reason, RoutingContext, Turnout, experiment
from turnout.asgi import TurnoutMiddleware
from turnout.decorators import BoundEngine
from turnout.testing import make_turnout
from turnout.types import Intent

FLAG = "coordinator"
EXPERIMENT = "workflow-canary"
VERSIONS = {"legacy": "1.0", "workflow": "2.0"}


def config(*, intent: bool = False) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {"name": "canary", "experiment": EXPERIMENT, "split": {"legacy": 50, "workflow": 50}}
    ]
    if intent:
        rules.insert(0, {"name": "refunds", "when": {"intent": "refund"}, "serve": "workflow"})
    return {
        "engines": {"legacy": {}, "workflow": {"fallback": "legacy"}},
        "flags": {
            FLAG: {"variants": ["legacy", "workflow"], "default": "legacy", "rules": rules},
            "plain": {
                "variants": ["legacy", "workflow"],
                "default": "legacy",
                "overrides": {"vip": "workflow"},
            },
            "off": {"variants": ["legacy", "workflow"], "default": "legacy", "enabled": False},
        },
        "intent": {"enabled": intent},
        "telemetry": {"exporters": []},
    }


def key_for(variant: str) -> str:
    """A targeting key the canary split assigns to `variant` (found on a throwaway Turnout)."""
    probe = Turnout(config())
    return next(
        f"u{i}" for i in range(1000) if probe.decide(FLAG, RoutingContext(f"u{i}")).variant == variant
    )


KEYS = {variant: key_for(variant) for variant in VERSIONS}


class FakeClassifier:
    def __init__(self, label: str = "refund", confidence: float = 0.9) -> None:
        self.intent = Intent(label, confidence)
        self.calls = 0

    def predict(self, text: str) -> Intent:
        self.calls += 1
        return self.intent


def make(
    provider: TracerProvider | None,
    *,
    fail: Iterable[str] = (),
    intent: bool = False,
    classifier: FakeClassifier | None = None,
) -> Turnout:
    t = make_turnout(config(intent=intent), tracer_provider=provider, classifier=classifier)
    failing = set(fail)
    for name, version in VERSIONS.items():
        t.add_engine(name, engine_named(name, failing), version=version)
    return t


def engine_named(name: str, failing: set[str]) -> Callable[[str], Any]:
    async def engine(message: str) -> str:
        if name in failing:
            raise RuntimeError(f"{name} is down")
        return f"{name}:{message}"

    return engine


def named(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def clean_global_provider() -> Iterator[None]:
    """A pristine global tracer provider for the test, restored afterwards.

    The same reset OpenTelemetry's own test helpers (`opentelemetry.test.globals_test`) do.
    """
    saved = (trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE, trace._PROXY_TRACER_PROVIDER)
    trace._TRACER_PROVIDER = None
    trace._TRACER_PROVIDER_SET_ONCE = Once()
    trace._PROXY_TRACER_PROVIDER = trace.ProxyTracerProvider()
    try:
        yield
    finally:
        trace._TRACER_PROVIDER, trace._TRACER_PROVIDER_SET_ONCE, trace._PROXY_TRACER_PROVIDER = saved


# -- engine spans ------------------------------------------------------------------------------


async def test_engine_span_is_a_child_of_the_current_span_and_carries_the_decision(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    t = make(provider)

    with provider.get_tracer("test").start_as_current_span("request") as parent:
        reply = await t.run(FLAG, "hi", context=RoutingContext(KEYS["workflow"]))

    assert reply == "workflow:hi"
    (span,) = named(exporter, "turnout.engine")
    assert span.context.trace_id == parent.get_span_context().trace_id
    assert parent_id(span) == parent.get_span_context().span_id
    attributes = dict(span.attributes or {})
    bucket = attributes.pop("turnout.bucket")
    assert attributes == {
        "turnout.engine.name": "workflow",
        "turnout.engine.version": "2.0",
        "feature_flag.key": FLAG,
        "feature_flag.result.variant": "workflow",
        "turnout.reason": "SPLIT",
        "turnout.rule": "canary",
        "turnout.experiment": EXPERIMENT,
    }
    assert isinstance(bucket, float)
    assert 0.0 <= bucket < 1.0
    assert span.status.status_code is StatusCode.UNSET
    assert span.kind is SpanKind.INTERNAL


async def test_one_engine_span_per_run(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    t = make(provider)

    for variant in ("legacy", "workflow", "legacy"):
        await t.run(FLAG, "hi", context=RoutingContext(KEYS[variant]))

    engines = [
        dict(span.attributes or {})["turnout.engine.name"] for span in named(exporter, "turnout.engine")
    ]
    assert engines == ["legacy", "workflow", "legacy"]
    # Without a current span each run starts its own trace.
    assert len({span.context.trace_id for span in named(exporter, "turnout.engine")}) == 3


async def test_a_decision_without_rule_or_experiment_leaves_those_attributes_out(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    t = make(provider)

    await t.run("plain", "hi", context=RoutingContext("someone"))

    (span,) = named(exporter, "turnout.engine")
    attributes = dict(span.attributes or {})
    assert attributes["turnout.reason"] == "DEFAULT"
    assert attributes["feature_flag.result.variant"] == "legacy"
    assert not {"turnout.rule", "turnout.experiment", "turnout.bucket"} & set(attributes)


async def test_fallback_marks_the_failed_span_and_the_fallback_engine_gets_its_own(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    t = make(provider, fail=["workflow"])

    with provider.get_tracer("test").start_as_current_span("request") as parent:
        reply = await t.run(FLAG, "hi", context=RoutingContext(KEYS["workflow"]))

    assert reply == "legacy:hi"
    failed, fallback = named(exporter, "turnout.engine")
    assert dict(failed.attributes or {})["turnout.engine.name"] == "workflow"
    assert failed.status.status_code is StatusCode.ERROR
    events = {event.name: dict(event.attributes or {}) for event in failed.events}
    assert events["turnout.fallback"] == {
        "turnout.engine.failed": "workflow",
        "turnout.engine.fallback": "legacy",
        "exception.type": "RuntimeError",
        "exception.message": "workflow is down",
    }
    assert events["exception"]["exception.type"] == "RuntimeError"

    attributes = dict(fallback.attributes or {})
    assert attributes["turnout.engine.name"] == "legacy"
    assert attributes["turnout.engine.version"] == "1.0"
    assert attributes["turnout.reason"] == "FALLBACK"
    # The variant stays the one the flag served: the canary's figures must show the failure.
    assert attributes["feature_flag.result.variant"] == "workflow"
    assert attributes["turnout.experiment"] == EXPERIMENT
    assert fallback.status.status_code is StatusCode.UNSET
    assert not [event for event in fallback.events if event.name == "turnout.fallback"]
    # Both attempts are siblings under the request's span.
    assert parent_id(failed) == parent_id(fallback) == parent.get_span_context().span_id


async def test_an_engine_error_without_fallback_sets_error_status_and_records_the_exception(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    t = make(provider, fail=["legacy"])

    with pytest.raises(RuntimeError, match="legacy is down"):
        await t.run(FLAG, "hi", context=RoutingContext(KEYS["legacy"]))

    (span,) = named(exporter, "turnout.engine")
    assert span.status.status_code is StatusCode.ERROR
    assert "legacy is down" in (span.status.description or "")
    (event,) = span.events
    assert event.name == "exception"
    assert dict(event.attributes or {})["exception.type"] == "RuntimeError"


def test_sync_runs_get_spans_too(provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
    t = Turnout(config(), tracer_provider=provider)
    t.add_engine("legacy", lambda message: f"sync:{message}", version="1.0")
    ctx = RoutingContext(KEYS["legacy"])

    with provider.get_tracer("test").start_as_current_span("request") as parent:
        reply = t.bind(FLAG, ctx).call_sync("hi")

    assert reply == "sync:hi"
    (span,) = named(exporter, "turnout.engine")
    assert parent_id(span) == parent.get_span_context().span_id
    assert span.status.status_code is StatusCode.UNSET


# -- the flag-evaluation event -----------------------------------------------------------------


def test_decide_adds_a_feature_flag_evaluation_event_to_the_current_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    t = make(provider)

    with provider.get_tracer("test").start_as_current_span("request"):
        decision = t.decide(FLAG, RoutingContext(KEYS["workflow"]))

    (request,) = named(exporter, "request")
    (event,) = request.events
    assert event.name == "feature_flag.evaluation"
    assert dict(event.attributes or {}) == {
        "feature_flag.key": FLAG,
        "feature_flag.provider.name": "turnout",
        "feature_flag.result.variant": "workflow",
        "feature_flag.result.reason": "split",
        "feature_flag.context.id": KEYS["workflow"],
        "turnout.reason": "SPLIT",
        "turnout.rule": "canary",
        "turnout.experiment": EXPERIMENT,
        "turnout.bucket": decision.bucket,
    }
    # Deciding starts no span of its own.
    assert [span.name for span in exporter.get_finished_spans()] == ["request"]


@pytest.mark.parametrize(
    ("flag", "key", "variant", "reason", "semconv"),
    [
        ("plain", "someone", "legacy", Reason.DEFAULT, "default"),
        ("plain", "vip", "workflow", Reason.OVERRIDE, "static"),
        ("off", "someone", "legacy", Reason.DISABLED, "disabled"),
        ("missing", "someone", "", Reason.ERROR, "error"),
    ],
)
def test_evaluation_reasons_follow_the_semantic_conventions(
    provider: TracerProvider,
    exporter: InMemorySpanExporter,
    flag: str,
    key: str,
    variant: str,
    reason: Reason,
    semconv: str,
) -> None:
    t = make(provider)

    with provider.get_tracer("test").start_as_current_span("request"):
        decision = t.decide(flag, RoutingContext(key))

    assert (decision.variant, decision.reason) == (variant, reason)
    (request,) = named(exporter, "request")
    if reason is Reason.ERROR:
        # An unknown flag is counted as a failure, not evaluated: there is nothing to record.
        assert request.events == ()
        return
    (event,) = request.events
    attributes = dict(event.attributes or {})
    assert attributes["feature_flag.key"] == flag
    assert attributes["feature_flag.result.variant"] == variant
    assert attributes["feature_flag.result.reason"] == semconv
    assert attributes["feature_flag.provider.name"] == "turnout"
    assert attributes["turnout.reason"] == reason.value


async def test_run_records_the_evaluation_on_the_current_span_before_the_engine_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    t = make(provider)

    with provider.get_tracer("test").start_as_current_span("request"):
        await t.run(FLAG, "hi", context=RoutingContext(KEYS["legacy"]))

    (request,) = named(exporter, "request")
    assert [event.name for event in request.events] == ["feature_flag.evaluation"]
    (engine,) = named(exporter, "turnout.engine")
    assert engine.events == ()


def test_decide_without_a_current_span_records_nothing(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    t = make(provider)

    assert t.decide(FLAG, RoutingContext(KEYS["legacy"])).variant == "legacy"
    assert exporter.get_finished_spans() == ()


# -- intent ------------------------------------------------------------------------------------


async def test_intent_classification_gets_its_own_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    classifier = FakeClassifier("refund", 0.9)
    t = make(provider, intent=True, classifier=classifier)
    ctx = RoutingContext(KEYS["legacy"], text="I want my money back")

    with provider.get_tracer("test").start_as_current_span("request") as parent:
        reply = await t.run(FLAG, "hi", context=ctx)

    assert reply == "workflow:hi"
    assert classifier.calls == 1
    (span,) = named(exporter, "turnout.intent")
    assert parent_id(span) == parent.get_span_context().span_id
    assert dict(span.attributes or {}) == {
        "turnout.text_length": len("I want my money back"),
        "turnout.intent": "refund",
        "turnout.intent.confidence": 0.9,
    }
    assert span.status.status_code is StatusCode.UNSET
    (engine,) = named(exporter, "turnout.engine")
    attributes = dict(engine.attributes or {})
    assert attributes["turnout.reason"] == "TARGETING_MATCH"
    assert attributes["turnout.rule"] == "refunds"
    assert attributes["turnout.intent"] == "refund"
    (request,) = named(exporter, "request")
    (event,) = request.events
    assert dict(event.attributes or {})["turnout.intent"] == "refund"


async def test_a_low_confidence_intent_span_shows_the_raw_label(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    t = make(provider, intent=True, classifier=FakeClassifier("refund", 0.2))

    await t.run(FLAG, "hi", context=RoutingContext(KEYS["legacy"], text="hmm"))

    (span,) = named(exporter, "turnout.intent")
    attributes = dict(span.attributes or {})
    assert attributes["turnout.intent"] == "unknown"
    assert attributes["turnout.intent.raw"] == "refund"
    # Not a refund after all: the canary split decides.
    (engine,) = named(exporter, "turnout.engine")
    assert dict(engine.attributes or {})["turnout.rule"] == "canary"


def test_no_intent_span_when_no_rule_needs_the_intent(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    classifier = FakeClassifier()
    t = make(provider, intent=True, classifier=classifier)

    with provider.get_tracer("test").start_as_current_span("request"):
        t.decide("plain", RoutingContext("someone", text="I want my money back"))

    assert classifier.calls == 0
    assert named(exporter, "turnout.intent") == []


# -- samplers, global provider, no SDK ---------------------------------------------------------


async def test_the_sampler_is_respected(exporter: InMemorySpanExporter) -> None:
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    t = make(provider, fail=["workflow"], intent=True, classifier=FakeClassifier())

    with provider.get_tracer("test").start_as_current_span("request") as parent:
        assert not parent.is_recording()
        reply = await t.run(FLAG, "hi", context=RoutingContext("u1", text="refund please"))

    assert reply == "legacy:hi"
    assert t.telemetry.tracing.tracer is not None
    assert exporter.get_finished_spans() == ()


async def test_without_an_sdk_no_tracer_is_used_and_runs_still_work() -> None:
    t = make(None, fail=["workflow"], intent=True, classifier=FakeClassifier())

    assert t.telemetry.tracing.tracer is None
    assert await t.run(FLAG, "hi", context=RoutingContext("u1", text="refund please")) == "legacy:hi"
    assert await t.run(FLAG, "hi", context=RoutingContext(KEYS["legacy"])) == "legacy:hi"
    assert t.decide("plain", RoutingContext("vip")).variant == "workflow"


async def test_the_global_provider_is_used_once_it_is_set(
    clean_global_provider: None, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    t = make(None)
    assert t.telemetry.tracing.tracer is None
    await t.run(FLAG, "before", context=RoutingContext(KEYS["legacy"]))

    trace.set_tracer_provider(provider)

    assert t.telemetry.tracing.tracer is not None
    with trace.get_tracer("test").start_as_current_span("request") as parent:
        await t.run(FLAG, "after", context=RoutingContext(KEYS["workflow"]))
    (span,) = named(exporter, "turnout.engine")
    assert parent_id(span) == parent.get_span_context().span_id
    assert dict(span.attributes or {})["turnout.engine.name"] == "workflow"


async def test_an_explicit_provider_wins_over_the_global_one(
    clean_global_provider: None, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    other = InMemorySpanExporter()
    global_provider = TracerProvider()
    global_provider.add_span_processor(SimpleSpanProcessor(other))
    trace.set_tracer_provider(global_provider)
    t = make(provider)

    await t.run(FLAG, "hi", context=RoutingContext(KEYS["legacy"]))

    assert [span.name for span in exporter.get_finished_spans()] == ["turnout.engine"]
    assert other.get_finished_spans() == ()
    global_provider.shutdown()


# -- inside an app instrumented with opentelemetry-instrumentation-asgi ------------------------


async def test_spans_are_children_of_the_asgi_server_span(
    provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    t = make(provider, fail=["workflow"])

    @experiment(FLAG)
    async def chat(request: Request, engine: BoundEngine) -> PlainTextResponse:
        return PlainTextResponse(await engine(request.query_params["q"]))

    app = Starlette(
        routes=[Route("/chat", chat)],
        middleware=[
            # Starlette runs the first middleware outermost: the server span is current inside.
            Middleware(OpenTelemetryMiddleware, tracer_provider=provider),
            Middleware(TurnoutMiddleware, turnout=t),
        ],
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/chat", params={"q": "hi"}, headers={"X-User-Id": KEYS["workflow"]})

    assert response.status_code == 200
    assert response.text == "legacy:hi"
    spans = exporter.get_finished_spans()
    by_id = {span.context.span_id: span for span in spans}
    (server,) = [span for span in spans if span.kind is SpanKind.SERVER]
    engines = named(exporter, "turnout.engine")
    assert [dict(span.attributes or {})["turnout.engine.name"] for span in engines] == ["workflow", "legacy"]
    for span in engines:
        assert span.context.trace_id == server.context.trace_id
        chain = [span]
        while (parent := parent_id(chain[-1])) is not None:
            chain.append(by_id[parent])
        assert chain[-1] is server
        assert chain[1] is server  # directly under it: nothing turnout-made in between
    evaluations = [event for event in server.events if event.name == "feature_flag.evaluation"]
    assert [dict(event.attributes or {})["feature_flag.result.variant"] for event in evaluations] == [
        "workflow"
    ]
