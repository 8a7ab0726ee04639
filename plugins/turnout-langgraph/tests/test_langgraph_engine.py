"""The LangGraph engine plugin, installed as a real distribution and run through `turnout.Turnout`.

The graphs are pure Python (no LLM); a guard fails any test that tries to open a connection.
"""

from __future__ import annotations

import operator
import socket
import sys
import types
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import MemorySaver
from langgraph.errors import GraphRecursionError
from langgraph.graph import END, START, StateGraph
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from turnout_langgraph import LangGraphEngine

from turnout import ConfigError, Reason, RoutingContext, Turnout
from turnout.context import use_context
from turnout.plugins import clear_cache, discover

FLAG = "coordinator"
GRAPHS = "turnout_langgraph_test_graphs"
LEGACY_REPLY = "legacy: we will get back to you"


class SupportState(TypedDict, total=False):
    message: str
    plan: str
    route: str
    response: str
    turns: Annotated[list[str], operator.add]


def classify(state: SupportState) -> dict[str, Any]:
    wants_human = any(word in state["message"].lower() for word in ("refund", "human", "人工"))
    return {"route": "human" if wants_human else "answer", "turns": [state["message"]]}


async def answer(state: SupportState) -> dict[str, Any]:
    turn = len(state.get("turns", []))
    return {"response": f"answer #{turn} ({state.get('plan') or 'free'}): {state['message']}"}


def escalate(state: SupportState) -> dict[str, Any]:
    return {"response": "escalated to a human agent"}


def support_builder() -> StateGraph[SupportState]:
    builder = StateGraph(SupportState)
    builder.add_node("classify", classify)
    builder.add_node("answer", answer)
    builder.add_node("human", escalate)
    builder.add_edge(START, "classify")
    builder.add_conditional_edges(
        "classify", lambda state: state["route"], {"answer": "answer", "human": "human"}
    )
    builder.add_edge("answer", END)
    builder.add_edge("human", END)
    return builder


def support_graph(checkpointer: MemorySaver | None = None) -> Any:
    return support_builder().compile(checkpointer=checkpointer)


class LoopState(TypedDict):
    laps: int


def looping_graph() -> Any:
    builder = StateGraph(LoopState)
    builder.add_node("again", lambda state: {"laps": state["laps"] + 1})
    builder.add_edge(START, "again")
    builder.add_edge("again", "again")
    return builder.compile()


class OrderError(RuntimeError):
    pass


def failing_graph() -> Any:
    def lookup_order(state: SupportState) -> dict[str, Any]:
        raise OrderError(f"order service down for {state['message']!r}")

    builder = StateGraph(SupportState)
    builder.add_node("lookup_order", lookup_order)
    builder.add_edge(START, "lookup_order")
    builder.add_edge("lookup_order", END)
    return builder.compile()


def nested_graph() -> Any:
    builder = StateGraph(SupportState)
    builder.add_node("triage", lambda state: {"plan": state.get("plan") or "free"})
    builder.add_node("support", support_graph())
    builder.add_edge(START, "triage")
    builder.add_edge("triage", "support")
    builder.add_edge("support", END)
    return builder.compile()


def legacy(message: str, **_: Any) -> str:
    return LEGACY_REPLY


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """LangSmith tracing off, and any attempt to open a connection recorded and refused."""
    for name in ("LANGSMITH_TRACING", "LANGSMITH_TRACING_V2", "LANGCHAIN_TRACING_V2", "LANGCHAIN_TRACING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TURNOUT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    attempts: list[Any] = []

    def refuse(sock: socket.socket, address: Any) -> None:
        attempts.append(address)
        raise OSError(f"test is offline: connection to {address!r} refused")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    yield attempts
    assert attempts == []


@pytest.fixture
def graphs(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """An importable module (fresh per test) holding the graphs that configs name by import string."""
    module = types.ModuleType(GRAPHS)
    module.support = support_graph()  # type: ignore[attr-defined]
    module.support_factory = support_graph  # type: ignore[attr-defined]
    module.remembering = support_graph(MemorySaver())  # type: ignore[attr-defined]
    module.looping = looping_graph()  # type: ignore[attr-defined]
    module.failing = failing_graph()  # type: ignore[attr-defined]
    module.uncompiled = support_builder()  # type: ignore[attr-defined]
    module.legacy = legacy  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, GRAPHS, module)
    return module


@pytest.fixture
def spans() -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider()
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def serving(options: dict[str, Any], **kwargs: Any) -> Turnout:
    """A Turnout whose flag serves the `langgraph` plugin engine, falling back to `legacy`."""
    return Turnout(
        {
            "engines": {
                "langgraph": {"plugin": "langgraph", "options": options, "fallback": "legacy"},
                "legacy": {"target": f"{GRAPHS}:legacy"},
            },
            "flags": {FLAG: {"variants": ["legacy", "langgraph"], "default": "langgraph"}},
        },
        **kwargs,
    )


def by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in finished if span.name == name]


# -- discovery and configuration -----------------------------------------------------------


def test_the_installed_distribution_registers_the_engine_entry_point() -> None:
    clear_cache()
    found = discover("turnout.engines")["langgraph"]
    assert found.dist is not None
    assert found.dist.name == "turnout-langgraph"
    assert found.load() is LangGraphEngine


@pytest.mark.parametrize("message", ["where is my order?", "我要人工客服"])
async def test_plugin_engine_answers_or_escalates_through_the_conditional_edge(
    graphs: types.ModuleType, message: str
) -> None:
    turnout = serving({"graph": f"{GRAPHS}:support"})
    ctx = RoutingContext("u1", {"plan": "premium"})
    reply = await turnout.run(FLAG, message, context=ctx, plan="premium")
    if "人工" in message:
        assert reply == "escalated to a human agent"
    else:
        assert reply == f"answer #1 (premium): {message}"
    assert ctx.decisions[FLAG].engine == "langgraph"
    assert ctx.decisions[FLAG].reason is Reason.DEFAULT


async def test_graph_option_may_name_a_factory(graphs: types.ModuleType) -> None:
    turnout = serving({"graph": f"{GRAPHS}:support_factory", "output": None})
    state = await turnout.run(FLAG, "refund please", context=RoutingContext("u1"))
    assert state == {
        "message": "refund please",
        "route": "human",
        "response": "escalated to a human agent",
        "turns": ["refund please"],
    }


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"graph": f"{GRAPHS}:support", "temperature": 0.2}, "temperature"),
        ({"graph": "no_such_package.graphs:support"}, "cannot import graph 'no_such_package.graphs:support'"),
        ({"graph": f"{GRAPHS}:missing"}, "has no 'missing'"),
        ({"graph": "support_graph_without_colon"}, "must be an import string"),
        ({"graph": f"{GRAPHS}:uncompiled"}, "must be compiled"),
        ({"graph": "os:sep"}, "has no ainvoke()"),
        ({"graph": f"{GRAPHS}:support", "recursion_limit": 0}, "recursion_limit must be at least 1"),
        ({"graph": f"{GRAPHS}:support", "recursion_limit": "many"}, "recursion_limit must be an integer"),
        ({"graph": f"{GRAPHS}:support", "config": {"recursion_limit": 5}}, "recursion_limit option"),
        ({}, "graph"),
    ],
)
def test_bad_options_fail_at_load_naming_the_plugin_field(
    graphs: types.ModuleType, options: dict[str, Any], complaint: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        serving(options)
    [issue] = caught.value.issues
    assert issue.path == "engines.langgraph.plugin"
    assert complaint in issue.message


def test_a_factory_that_raises_is_a_load_error(graphs: types.ModuleType) -> None:
    def broken_factory() -> Any:
        raise OrderError("no database")

    graphs.broken_factory = broken_factory  # type: ignore[attr-defined]
    with pytest.raises(ConfigError) as caught:
        serving({"graph": f"{GRAPHS}:broken_factory"})
    [issue] = caught.value.issues
    assert issue.path == "engines.langgraph.plugin"
    assert "raised OrderError: no database" in issue.message


# -- input, output and checkpointer threads -------------------------------------------------


async def test_input_and_output_mappings() -> None:
    def to_state(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"message": " ".join(args), "plan": kwargs["tier"]}

    engine = LangGraphEngine(
        support_graph(), input=to_state, output=lambda state: (state["route"], state["response"])
    )
    assert await engine("where", "is", "it", tier="enterprise") == (
        "answer",
        "answer #1 (enterprise): where is it",
    )

    keyed = LangGraphEngine(support_graph(), input="message", output="route")
    assert await keyed("refund now") == "human"
    assert await keyed({"message": "hello", "plan": "free"}) == "answer"  # a mapping is the state

    # an output key the final state lacks gives the whole state
    whole = LangGraphEngine(support_graph(), output="summary")
    assert (await whole("hi"))["response"] == "answer #1 (free): hi"


async def test_more_than_one_positional_argument_needs_an_input_mapping() -> None:
    engine = LangGraphEngine(support_graph())
    with pytest.raises(TypeError, match="at most one positional argument"):
        await engine("a", "b")


async def test_checkpointer_thread_follows_the_session(graphs: types.ModuleType) -> None:
    turnout = serving({"graph": f"{GRAPHS}:remembering"})
    first = RoutingContext("u1", session_id="chat-1")
    assert await turnout.run(FLAG, "hello", context=first) == "answer #1 (free): hello"
    # the same session (a new request, a new context object) continues the conversation
    again = RoutingContext("u1", session_id="chat-1")
    assert await turnout.run(FLAG, "still there?", context=again) == "answer #2 (free): still there?"
    # another session of the same user starts afresh
    other = RoutingContext("u1", session_id="chat-2")
    assert await turnout.run(FLAG, "new chat", context=other) == "answer #1 (free): new chat"
    state = graphs.remembering.get_state({"configurable": {"thread_id": "chat-1"}})
    assert state.values["turns"] == ["hello", "still there?"]


async def test_without_a_session_the_thread_is_the_targeting_key() -> None:
    graph = support_graph(MemorySaver())
    engine = LangGraphEngine(graph)
    with use_context(RoutingContext("user-7")):
        await engine("one")
        assert await engine("two") == "answer #2 (free): two"
    assert graph.get_state({"configurable": {"thread_id": "user-7"}}).values["turns"] == ["one", "two"]


async def test_thread_id_callable_overrides_the_context() -> None:
    graph = support_graph(MemorySaver())
    seen: list[RoutingContext | None] = []

    def per_plan(context: RoutingContext | None) -> str:
        seen.append(context)
        return f"plan:{context.attributes['plan']}" if context else "nobody"

    engine = LangGraphEngine(graph, thread_id=per_plan)
    ctx = RoutingContext("u1", {"plan": "premium"}, session_id="s1")
    with use_context(ctx):
        await engine("hi")
    assert seen == [ctx]
    assert graph.get_state({"configurable": {"thread_id": "plan:premium"}}).values["turns"] == ["hi"]
    assert not graph.get_state({"configurable": {"thread_id": "s1"}}).values.get("turns")


async def test_no_thread_for_a_checkpointed_graph_is_a_counted_fallback(graphs: types.ModuleType) -> None:
    direct = LangGraphEngine(graphs.remembering)
    with pytest.raises(LookupError, match="has a checkpointer but this call has no thread id"):
        await direct("hi")

    turnout = serving({"graph": f"{GRAPHS}:remembering"})
    ctx = RoutingContext("")
    assert await turnout.run(FLAG, "hi", context=ctx) == LEGACY_REPLY
    assert ctx.decisions[FLAG].reason is Reason.FALLBACK
    assert turnout.failures.count("engine.langgraph") == 1


async def test_config_option_is_passed_to_the_graph() -> None:
    seen: list[Any] = []

    def spy(state: SupportState, config: RunnableConfig) -> dict[str, Any]:
        seen.append((config["configurable"].get("tenant"), config["recursion_limit"], config["tags"]))
        return {"response": "ok"}

    builder = StateGraph(SupportState)
    builder.add_node("spy", spy)
    builder.add_edge(START, "spy")
    builder.add_edge("spy", END)
    engine = LangGraphEngine(
        builder.compile(), config={"configurable": {"tenant": "acme"}, "tags": ["support"]}, recursion_limit=7
    )
    assert await engine("hi") == "ok"
    assert seen == [("acme", 7, ["support"])]


# -- streaming --------------------------------------------------------------------------------


async def test_stream_yields_each_node_update_in_order() -> None:
    engine = LangGraphEngine(support_graph())
    updates = [chunk async for chunk in engine.stream("refund my order")]
    assert updates == [
        {"classify": {"route": "human", "turns": ["refund my order"]}},
        {"human": {"response": "escalated to a human agent"}},
    ]


async def test_stream_option_makes_the_turnout_call_return_the_updates(graphs: types.ModuleType) -> None:
    turnout = serving({"graph": f"{GRAPHS}:remembering", "stream": True})
    ctx = RoutingContext("u1", session_id="s1")
    updates = await turnout.run(FLAG, "hello", context=ctx)
    assert isinstance(updates, AsyncIterator)
    assert [list(chunk) async for chunk in updates] == [["classify"], ["answer"]]
    assert ctx.decisions[FLAG].engine == "langgraph"


async def test_a_stream_that_fails_before_its_first_update_falls_back(graphs: types.ModuleType) -> None:
    turnout = serving({"graph": f"{GRAPHS}:failing", "stream": True})
    ctx = RoutingContext("u1")
    assert await turnout.run(FLAG, "order 42", context=ctx) == LEGACY_REPLY
    assert ctx.decisions[FLAG].reason is Reason.FALLBACK


# -- failures ---------------------------------------------------------------------------------


async def test_a_graph_that_raises_propagates_the_original_error(graphs: types.ModuleType) -> None:
    with pytest.raises(OrderError, match="order service down for 'order 42'"):
        await LangGraphEngine(graphs.failing)("order 42")


async def test_a_graph_that_raises_is_counted_and_falls_back(graphs: types.ModuleType) -> None:
    turnout = serving({"graph": f"{GRAPHS}:failing"})
    ctx = RoutingContext("u1")
    assert await turnout.run(FLAG, "order 42", context=ctx) == LEGACY_REPLY
    decision = ctx.decisions[FLAG]
    assert decision.reason is Reason.FALLBACK
    assert decision.engine == "legacy"
    assert decision.error is not None
    assert decision.error.startswith("langgraph: OrderError: order service down")
    assert turnout.failures.snapshot()["engine.langgraph"] == {"OrderError": 1}


async def test_a_graph_looping_past_its_recursion_limit_raises(graphs: types.ModuleType) -> None:
    engine = LangGraphEngine(graphs.looping, input=lambda args, kwargs: {"laps": 0}, recursion_limit=5)
    with pytest.raises(GraphRecursionError):
        await engine()


async def test_a_graph_looping_past_its_recursion_limit_falls_back(graphs: types.ModuleType) -> None:
    turnout = serving({"graph": f"{GRAPHS}:looping", "recursion_limit": 5})
    ctx = RoutingContext("u1")
    # The loop graph's state needs `laps`: passed as a keyword argument it goes into the state.
    assert await turnout.run(FLAG, "spin", context=ctx, laps=0) == LEGACY_REPLY
    assert ctx.decisions[FLAG].reason is Reason.FALLBACK
    assert turnout.failures.snapshot()["engine.langgraph"] == {"GraphRecursionError": 1}


# -- node spans ---------------------------------------------------------------------------------


async def test_each_node_is_a_child_span_of_the_engine_span(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    turnout = Turnout(
        {"flags": {FLAG: {"variants": ["langgraph"], "default": "langgraph"}}},
        tracer_provider=provider,
    )
    turnout.add_engine(
        "langgraph", LangGraphEngine(support_graph(), tracer_provider=provider, name="support")
    )
    assert await turnout.run(FLAG, "refund", context=RoutingContext("u1")) == "escalated to a human agent"

    finished = exporter.get_finished_spans()
    [engine_span] = by_name(finished, "turnout.engine")
    nodes = [span for span in finished if span.name.startswith("langgraph.node ")]
    assert [span.name for span in nodes] == ["langgraph.node classify", "langgraph.node human"]
    for span, step in zip(nodes, (1, 2), strict=True):
        assert span.parent is not None
        assert span.parent.span_id == engine_span.context.span_id
        assert span.attributes is not None
        assert span.attributes["langgraph.graph"] == "support"
        assert span.attributes["langgraph.node"] == span.name.removeprefix("langgraph.node ")
        assert span.attributes["langgraph.step"] == step
        assert isinstance(span.attributes["langgraph.node.duration_ms"], float)
        assert span.attributes["langgraph.node.duration_ms"] >= 0
        assert span.start_time is not None
        assert engine_span.start_time is not None
        assert span.start_time >= engine_span.start_time


async def test_subgraph_nodes_nest_under_the_node_that_runs_them(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    engine = LangGraphEngine(nested_graph(), tracer_provider=provider)
    assert await engine("hello") == "answer #1 (free): hello"
    finished = {span.name: span for span in exporter.get_finished_spans()}
    support = finished["langgraph.node support"]
    for inner in ("classify", "answer"):
        parent = finished[f"langgraph.node {inner}"].parent
        assert parent is not None
        assert parent.span_id == support.context.span_id
    assert finished["langgraph.node triage"].parent is None  # no span was current: a root span


async def test_a_failing_node_span_records_the_error_and_the_engine_span_the_fallback(
    graphs: types.ModuleType, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = spans
    turnout = Turnout(
        {
            "engines": {"langgraph": {"fallback": "legacy"}, "legacy": {"target": f"{GRAPHS}:legacy"}},
            "flags": {FLAG: {"variants": ["legacy", "langgraph"], "default": "langgraph"}},
        },
        tracer_provider=provider,
    )
    turnout.add_engine("langgraph", LangGraphEngine(graphs.failing, tracer_provider=provider))
    assert await turnout.run(FLAG, "order 42", context=RoutingContext("u1")) == LEGACY_REPLY
    finished = exporter.get_finished_spans()
    [node] = by_name(finished, "langgraph.node lookup_order")
    assert node.status.status_code is StatusCode.ERROR
    assert [event.name for event in node.events] == ["exception"]
    failed_engine = next(
        span
        for span in by_name(finished, "turnout.engine")
        if span.attributes and span.attributes["turnout.engine.name"] == "langgraph"
    )
    assert node.parent is not None
    assert node.parent.span_id == failed_engine.context.span_id
    assert "turnout.fallback" in [event.name for event in failed_engine.events]


async def test_without_a_node_tracer_nodes_are_events_on_the_engine_span(
    graphs: types.ModuleType, spans: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    # Only turnout has a provider (the global one has no SDK): the engine span records, so
    # the nodes become events on it, named and timed.
    provider, exporter = spans
    turnout = serving({"graph": f"{GRAPHS}:support"}, tracer_provider=provider)
    assert await turnout.run(FLAG, "hello", context=RoutingContext("u1")) == "answer #1 (free): hello"
    [engine_span] = by_name(exporter.get_finished_spans(), "turnout.engine")
    events = [dict(event.attributes or {}) for event in engine_span.events if event.name == "langgraph.node"]
    assert [(event["langgraph.node"], event["langgraph.step"]) for event in events] == [
        ("classify", 1),
        ("answer", 2),
    ]
    for event in events:
        assert event["langgraph.graph"] == "langgraph"
        assert isinstance(event["langgraph.node.duration_ms"], float)
        assert event["langgraph.node.duration_ms"] >= 0
    assert len(exporter.get_finished_spans()) == 1
