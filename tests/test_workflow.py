"""`Workflow`: ordered sync/async steps over a state dict, timings, errors, spans, as an engine."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from turnout import Reason, RoutingContext, Turnout, TurnoutError, Workflow, current_context
from turnout.decorators import BoundEngine
from turnout.errors import EngineError, WorkflowStepError


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def by_name(finished: tuple[ReadableSpan, ...]) -> dict[str, ReadableSpan]:
    return {span.name: span for span in finished}


# -- steps and state -------------------------------------------------------------------------


async def test_sync_and_async_steps_run_in_order_over_the_state() -> None:
    order: list[str] = []

    def normalize(state: dict[str, Any]) -> dict[str, Any]:
        order.append("normalize")
        return {"clean": state["message"].strip().lower()}

    async def classify(state: dict[str, Any]) -> dict[str, Any]:
        order.append("classify")
        await asyncio.sleep(0)
        return {"intent": "refund" if "refund" in state["clean"] else "other"}

    def respond(state: dict[str, Any]) -> dict[str, Any]:
        order.append("respond")
        return {"response": f"{state['intent']}: {state['clean']}"}

    wf = Workflow([normalize, classify, respond])

    assert [name for name, _ in wf.steps] == ["normalize", "classify", "respond"]
    assert await wf("  I want a REFUND ") == "refund: i want a refund"
    assert order == ["normalize", "classify", "respond"]


async def test_steps_may_mutate_the_state_or_return_nothing() -> None:
    def count(state: dict[str, Any]) -> None:
        state["words"] = len(state["message"].split())

    def ignored(state: dict[str, Any]) -> str:
        return "not a mapping: not merged"

    def respond(state: dict[str, Any]) -> dict[str, Any]:
        return {"response": state["words"]}

    assert await Workflow([count, ignored, respond])("three little words") == 3


async def test_a_later_step_overrides_an_earlier_value() -> None:
    wf = Workflow([("first", lambda s: {"response": 1}), ("second", lambda s: {"response": 2})])
    assert await wf("x") == 2


async def test_input_and_output_keys_are_configurable() -> None:
    wf = Workflow(
        [("echo", lambda s: {"answer": s["question"] * 2})], input_key="question", output_key="answer"
    )
    assert await wf("ab") == "abab"


async def test_keyword_arguments_join_the_state() -> None:
    wf = Workflow([("greet", lambda s: {"response": f"{s['message']}, {s['user']} ({s['lang']})"})])
    assert await wf("hello", user="ada", lang="en") == "hello, ada (en)"


async def test_a_single_mapping_argument_is_the_initial_state() -> None:
    wf = Workflow([("sum", lambda s: {"response": s["a"] + s["b"]})])
    given = {"a": 1, "b": 2}

    assert await wf(given) == 3
    assert given == {"a": 1, "b": 2}  # copied, not mutated


async def test_several_positional_arguments_become_a_tuple() -> None:
    wf = Workflow([("join", lambda s: {"response": "-".join(s["message"])})])
    assert await wf("a", "b", "c") == "a-b-c"


async def test_without_the_output_key_the_whole_state_is_returned() -> None:
    wf = Workflow([("tag", lambda s: {"tagged": True})])
    state = await wf("hi")

    assert state["message"] == "hi"
    assert state["tagged"] is True
    assert set(state["_timings_ms"]) == {"tag"}


async def test_an_empty_workflow_returns_its_state() -> None:
    state = await Workflow()("hi")
    assert state == {"message": "hi", "_timings_ms": {}}


# -- building ---------------------------------------------------------------------------------


async def test_step_decorator_registers_in_order_and_returns_the_function() -> None:
    wf = Workflow(name="support")

    @wf.step()
    def first(state: dict[str, Any]) -> dict[str, Any]:
        return {"trail": ["first"]}

    @wf.step("second-step")
    async def second(state: dict[str, Any]) -> dict[str, Any]:
        return {"response": [*state["trail"], "second"]}

    assert [name for name, _ in wf.steps] == ["first", "second-step"]
    assert first({}) == {"trail": ["first"]}  # still a plain function
    assert await wf("go") == ["first", "second"]


def test_add_and_tuples_name_steps_explicitly() -> None:
    wf = Workflow([("a", lambda s: None)])
    wf.add("b", lambda s: None)
    assert [name for name, _ in wf.steps] == ["a", "b"]


@pytest.mark.parametrize("how", ["add", "decorator", "constructor"])
def test_duplicate_step_names_are_rejected(how: str) -> None:
    def step(state: dict[str, Any]) -> None:
        return None

    wf = Workflow([("fetch", step)], name="orders")
    with pytest.raises(ValueError, match=r"'orders' already has a step named 'fetch'"):
        if how == "add":
            wf.add("fetch", step)
        elif how == "decorator":
            wf.step("fetch")(step)
        else:
            Workflow([("fetch", step), ("fetch", step)], name="orders")


# -- failures and timings ----------------------------------------------------------------------


async def test_a_failing_step_raises_workflow_step_error_naming_it() -> None:
    ran: list[str] = []
    original = ValueError("no order id in message")

    def parse(state: dict[str, Any]) -> None:
        ran.append("parse")
        raise original

    def reply(state: dict[str, Any]) -> None:
        ran.append("reply")

    wf = Workflow([("load", lambda s: None), ("parse", parse), ("reply", reply)], name="orders")

    with pytest.raises(WorkflowStepError) as info:
        await wf("hi")

    error = info.value
    assert error.step == "parse"
    assert error.engine == "orders"
    assert error.__cause__ is original
    assert isinstance(error, EngineError)
    assert "parse" in str(error)
    assert "no order id" in str(error)
    assert ran == ["parse"]  # later steps do not run


async def test_a_failing_async_step_is_reported_too() -> None:
    async def fetch(state: dict[str, Any]) -> None:
        await asyncio.sleep(0)
        raise ConnectionError("db down")

    with pytest.raises(WorkflowStepError) as info:
        await Workflow([fetch])("hi")
    assert info.value.step == "fetch"
    assert isinstance(info.value.__cause__, ConnectionError)


async def test_each_step_is_timed_in_the_state() -> None:
    seen: dict[str, Any] = {}

    async def slowish(state: dict[str, Any]) -> None:
        await asyncio.sleep(0)

    def look(state: dict[str, Any]) -> dict[str, Any]:
        seen["before_look"] = dict(state["_timings_ms"])
        return {}

    state = await Workflow([slowish, look])("hi")

    timings = state["_timings_ms"]
    assert list(timings) == ["slowish", "look"]
    assert all(isinstance(ms, float) and ms >= 0 for ms in timings.values())
    assert list(seen["before_look"]) == ["slowish"]  # a step sees the timings of those before it


# -- tracing -----------------------------------------------------------------------------------


async def test_each_step_is_a_child_span_of_the_workflow_span(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    wf = Workflow(
        [("plan", lambda s: {"plan": 1}), ("act", lambda s: {"response": "done"})],
        name="agent",
        tracer_provider=provider,
    )

    with provider.get_tracer("test").start_as_current_span("request") as request:
        assert await wf("go") == "done"

    found = by_name(exporter.get_finished_spans())
    assert set(found) == {"request", "turnout.workflow agent", "turnout.step plan", "turnout.step act"}
    root = found["turnout.workflow agent"]
    assert root.parent is not None
    assert root.parent.span_id == request.get_span_context().span_id
    assert root.attributes is not None
    assert root.attributes["turnout.workflow"] == "agent"
    assert root.attributes["turnout.workflow.steps"] == 2
    for step in ("plan", "act"):
        span = found[f"turnout.step {step}"]
        assert span.parent is not None
        assert span.parent.span_id == root.context.span_id
        assert span.context.trace_id == request.get_span_context().trace_id
        assert span.attributes is not None
        assert span.attributes["turnout.workflow"] == "agent"
        assert span.attributes["turnout.step"] == step
        assert span.attributes["turnout.step.duration_ms"] >= 0
        assert span.status.status_code is StatusCode.UNSET
    assert found["turnout.step plan"].end_time <= found["turnout.step act"].start_time


async def test_the_failing_steps_span_has_an_error_status_and_the_exception(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans

    def explode(state: dict[str, Any]) -> None:
        raise KeyError("customer")

    wf = Workflow(
        [("ok", lambda s: None), ("explode", explode), ("never", lambda s: None)],
        name="wf",
        tracer_provider=provider,
    )

    with pytest.raises(WorkflowStepError):
        await wf("go")

    found = by_name(exporter.get_finished_spans())
    assert set(found) == {"turnout.workflow wf", "turnout.step ok", "turnout.step explode"}
    assert found["turnout.step ok"].status.status_code is StatusCode.UNSET

    failed = found["turnout.step explode"]
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description is not None
    assert "explode" in failed.status.description
    (event,) = failed.events  # the original error, recorded once
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "KeyError"

    assert found["turnout.workflow wf"].status.status_code is StatusCode.ERROR


async def test_without_a_provider_the_global_one_is_used(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    # Whatever the global provider is (no-op unless the app set one), steps run; the explicit
    # provider of another workflow sees none of these spans.
    provider, exporter = spans
    assert await Workflow([("a", lambda s: {"response": "ok"})])("x") == "ok"
    assert await Workflow([("b", lambda s: {"response": "b"})], tracer_provider=provider)("x") == "b"
    assert [span.name for span in exporter.get_finished_spans()] == [
        "turnout.step b",
        "turnout.workflow workflow",
    ]


# -- as an engine ------------------------------------------------------------------------------


def coordinator(**engines: Any) -> Turnout:
    return Turnout(
        {
            "engines": engines,
            "flags": {"coordinator": {"variants": ["workflow", "legacy"], "default": "workflow"}},
        }
    )


async def test_a_workflow_registered_as_an_engine_runs_through_turnout() -> None:
    t = coordinator()
    wf = Workflow(name="support")

    @wf.step()
    def greet(state: dict[str, Any]) -> dict[str, Any]:
        ctx = current_context()
        assert ctx is not None
        return {"response": f"{state['message']} for {ctx.targeting_key} ({state['channel']})"}

    t.add_engine("workflow", wf, version="3.0")
    ctx = RoutingContext("u42")

    assert await t.run("coordinator", "hello", context=ctx, channel="web") == "hello for u42 (web)"
    assert t.engines["workflow"].is_async
    assert t.engines["workflow"].version == "3.0"
    assert ctx.decisions["coordinator"].engine == "workflow"
    assert ctx.decisions["coordinator"].reason == Reason.DEFAULT


async def test_a_failing_workflow_falls_back_and_is_counted() -> None:
    t = coordinator(workflow={"fallback": "legacy"}, legacy={})
    t.add_engine("workflow", Workflow([("broken", lambda s: 1 / 0)]))
    t.add_engine("legacy", lambda message: f"legacy:{message}")
    ctx = RoutingContext("u1")

    assert await t.run("coordinator", "hi", context=ctx) == "legacy:hi"
    assert ctx.decisions["coordinator"].reason == Reason.FALLBACK
    assert ctx.decisions["coordinator"].engine == "legacy"
    assert t.failures.snapshot() == {"engine.workflow": {"WorkflowStepError": 1}}


async def test_a_failing_workflow_without_fallback_raises_its_step_error() -> None:
    t = coordinator()
    t.add_engine("workflow", Workflow([("broken", lambda s: 1 / 0)]))

    with pytest.raises(WorkflowStepError) as info:
        await t.run("coordinator", "hi", context=RoutingContext("u1"))
    assert info.value.step == "broken"
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_a_workflow_cannot_run_from_the_sync_path() -> None:
    t = coordinator()
    t.add_engine("workflow", Workflow())
    ctx = RoutingContext("u1")

    with pytest.raises(TurnoutError, match="async"):
        BoundEngine(t, ctx, t.decide("coordinator", ctx)).call_sync("hi")


async def test_a_workflow_engine_is_traced_inside_the_callers_span(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    t = coordinator()
    t.add_engine("workflow", Workflow([("only", lambda s: {"response": 1})], tracer_provider=provider))

    with provider.get_tracer("test").start_as_current_span("http") as http:
        assert await t.run("coordinator", "x", context=RoutingContext("u1")) == 1

    found = by_name(exporter.get_finished_spans())
    assert found["turnout.workflow workflow"].parent is not None
    assert found["turnout.workflow workflow"].parent.span_id == http.get_span_context().span_id
    assert found["turnout.step only"].context.trace_id == http.get_span_context().trace_id
