"""Node timing: a LangChain callback handler that turns each node run into a span or a span event.

LangGraph runs every node task as a child run tagged `graph:step:<n>` whose name and
`langgraph_node` metadata are the node's name; the handler times exactly those runs
(the graph's own run, its routers and channel writers are not nodes). Nodes of a
subgraph nest under the node that runs the subgraph.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import langgraph.errors
from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import trace
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, Span, Status, StatusCode, Tracer

NODE_SPAN = "langgraph.node"
_STEP_TAG = "graph:step:"
# Interrupts and parent commands travel as exceptions but are control flow, not failures.
_CONTROL_FLOW: tuple[type[BaseException], ...] = tuple(
    kind
    for kind in (getattr(langgraph.errors, "GraphBubbleUp", None), langgraph.errors.GraphInterrupt)
    if isinstance(kind, type)
)


class NodeTracing:
    """Finds the tracer for node spans: an explicit provider, else the global one if an SDK is set."""

    def __init__(self, tracer_provider: trace.TracerProvider | None, version: str) -> None:
        self._explicit = tracer_provider
        self._version = version
        self._seen: trace.TracerProvider | None = None
        self._tracer: Tracer | None = None

    def timer(self, graph: str) -> NodeTimer | None:
        """A handler for one run, or None when nothing would record what it measures.

        Node spans need a tracer that records. Without one (say turnout got its own
        `tracer_provider=` and no global SDK is set) the nodes become events on the
        current span, the `turnout.engine` span, if that one records.
        """
        parent = trace.get_current_span()
        tracer = self._current_tracer()
        if tracer is None and not parent.is_recording():
            return None
        return NodeTimer(graph, tracer, parent)

    def _current_tracer(self) -> Tracer | None:
        provider = self._explicit or trace.get_tracer_provider()
        if provider is not self._seen:
            self._seen = provider
            inactive = isinstance(provider, ProxyTracerProvider | NoOpTracerProvider)
            self._tracer = None if inactive else provider.get_tracer("turnout_langgraph", self._version)
        return self._tracer


@dataclass(slots=True)
class _Node:
    name: str
    step: int
    started: float
    start_ns: int
    span: Span | None


class NodeTimer(BaseCallbackHandler):
    """Times the node runs of one graph run (a fresh handler per call)."""

    # Called in the event loop's thread, not through an executor: the work is a few dict operations.
    run_inline = True

    def __init__(self, graph: str, tracer: Tracer | None, parent: Span) -> None:
        self._graph = graph
        self._tracer = tracer
        self._parent = parent
        self._parent_context = trace.set_span_in_context(parent)
        self._parents: dict[UUID, UUID | None] = {}
        self._nodes: dict[UUID, _Node] = {}

    @property
    def ignore_llm(self) -> bool:
        return True

    @property
    def ignore_chat_model(self) -> bool:
        return True

    @property
    def ignore_retriever(self) -> bool:
        return True

    @property
    def ignore_agent(self) -> bool:
        return True

    @property
    def ignore_retry(self) -> bool:
        return True

    @property
    def ignore_custom_event(self) -> bool:
        return True

    def on_chain_start(
        self,
        serialized: dict[str, Any],
        inputs: dict[str, Any],
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self._parents[run_id] = parent_run_id
        name = kwargs.get("name")
        if (
            not isinstance(name, str)
            or name.startswith("__")
            or (metadata or {}).get("langgraph_node") != name
        ):
            return
        step = _step(tags)
        if step is None:
            return
        start_ns = time.time_ns()
        span = None
        if self._tracer is not None:
            span = self._tracer.start_span(
                f"{NODE_SPAN} {name}",
                context=self._context_for(parent_run_id),
                attributes=self._attributes(name, step),
                start_time=start_ns,
            )
        self._nodes[run_id] = _Node(name, step, time.perf_counter(), start_ns, span)

    def on_chain_end(
        self, outputs: Any, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._parents.pop(run_id, None)
        node = self._nodes.pop(run_id, None)
        if node is not None:
            self._finish(node, None)

    def on_chain_error(
        self, error: BaseException, *, run_id: UUID, parent_run_id: UUID | None = None, **kwargs: Any
    ) -> None:
        self._parents.pop(run_id, None)
        node = self._nodes.pop(run_id, None)
        if node is not None:
            self._finish(node, error)

    def _context_for(self, parent_run_id: UUID | None) -> Any:
        run = parent_run_id
        while run is not None:
            enclosing = self._nodes.get(run)
            if enclosing is not None and enclosing.span is not None:
                return trace.set_span_in_context(enclosing.span)
            run = self._parents.get(run)
        return self._parent_context

    def _attributes(self, name: str, step: int) -> dict[str, Any]:
        return {"langgraph.graph": self._graph, "langgraph.node": name, "langgraph.step": step}

    def _finish(self, node: _Node, error: BaseException | None) -> None:
        duration_ms = (time.perf_counter() - node.started) * 1000.0
        failed = error is not None and not isinstance(error, _CONTROL_FLOW)
        if node.span is not None:
            node.span.set_attribute("langgraph.node.duration_ms", duration_ms)
            if failed and error is not None:
                node.span.record_exception(error)
                node.span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:300]))
            elif error is not None:
                node.span.set_attribute("langgraph.node.interrupted", True)
            node.span.end()
        elif self._parent.is_recording():
            attributes = self._attributes(node.name, node.step)
            attributes["langgraph.node.duration_ms"] = duration_ms
            if failed:
                attributes["exception.type"] = type(error).__name__
                attributes["exception.message"] = str(error)[:500]
            elif error is not None:
                attributes["langgraph.node.interrupted"] = True
            self._parent.add_event(NODE_SPAN, attributes, timestamp=node.start_ns)


def _step(tags: list[str] | None) -> int | None:
    """The step of a node task's run (LangGraph tags it `graph:step:<n>`); None for other runs."""
    for tag in tags or ():
        if tag.startswith(_STEP_TAG) and tag[len(_STEP_TAG) :].isdigit():
            return int(tag[len(_STEP_TAG) :])
    return None
