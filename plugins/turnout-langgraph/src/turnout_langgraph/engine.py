"""`LangGraphEngine`: a compiled LangGraph graph as a turnout engine."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from typing import Any

from opentelemetry.trace import TracerProvider

from turnout.context import RoutingContext, current_context
from turnout.imports import ImportTargetError, resolve
from turnout_langgraph.tracing import NodeTracing

InputMapper = Callable[[tuple[Any, ...], dict[str, Any]], Any]
"""Builds the graph input from the call's positional and keyword arguments."""
OutputMapper = Callable[[Any], Any]
"""Builds the engine's result from the graph's final state."""
ThreadId = Callable[[RoutingContext | None], str | None]
"""Names the checkpointer thread of a call from the routing context (None when there is none)."""


class LangGraphEngine:
    """A turnout engine that runs a compiled LangGraph graph (anything with `ainvoke`).

    `graph` is the compiled graph, a zero-argument factory that returns one (called once,
    here), or an import string `"package.module:attribute"` naming either. The call's first
    positional argument becomes `state[input]` and keyword arguments are added as they are
    (a single mapping argument is the state itself); the result is `state[output]`, or the
    whole state when that key is absent. `input` and `output` may be callables instead.

    When the graph has a checkpointer, each call runs in the thread named by the routing
    context (`session_id`, else `targeting_key`), or by `thread_id(context)` if given.
    With `stream=True` a call returns an async iterator of LangGraph "updates" chunks
    (`{node: update}`); `stream()` does the same without that setting.

    Each node run is a span `langgraph.node <name>` under the current span (`turnout.engine`
    inside turnout), from `tracer_provider` or the global provider; when neither has an SDK,
    nodes become `langgraph.node` events on the current span if that one records.
    """

    def __init__(
        self,
        graph: Any,
        *,
        input: str | InputMapper = "message",
        output: str | OutputMapper | None = "response",
        recursion_limit: int = 25,
        stream: bool = False,
        thread_id: ThreadId | None = None,
        config: Mapping[str, Any] | None = None,
        name: str = "langgraph",
        tracer_provider: TracerProvider | None = None,
    ) -> None:
        from turnout_langgraph import __version__

        self.graph = _resolve_graph(graph)
        self.name = _checked_name(name)
        self.recursion_limit = _checked_limit(recursion_limit)
        if not (isinstance(input, str) and input) and not callable(input):
            raise TypeError(f"input must be a state key or a callable (args, kwargs) -> input, got {input!r}")
        if output is not None and not isinstance(output, str) and not callable(output):
            raise TypeError(
                f"output must be a state key, a callable (state) -> result or None, got {output!r}"
            )
        if not isinstance(stream, bool):
            raise TypeError(f"stream must be true or false, got {stream!r}")
        if stream and not callable(getattr(self.graph, "astream", None)):
            raise TypeError(f"stream=True needs a graph with astream(); {_describe(self.graph)} has none")
        if thread_id is not None and not callable(thread_id):
            raise TypeError(f"thread_id must be a callable (RoutingContext | None) -> str, got {thread_id!r}")
        self._input = input
        self._output = output
        self.streaming = stream
        self._thread_id = thread_id
        self._config = _checked_config(config)
        checkpointer = getattr(self.graph, "checkpointer", None)
        # True/False on a graph mean "inherit the parent's" / "none": only a saver needs a thread.
        self._needs_thread = checkpointer is not None and not isinstance(checkpointer, bool)
        self._tracing = NodeTracing(tracer_provider, __version__)

    def __repr__(self) -> str:
        return f"LangGraphEngine({_describe(self.graph)}, name={self.name!r})"

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the graph; the mapped final state, or with `stream=True` an async iterator of updates."""
        if self.streaming:
            return await self._open_stream(args, kwargs)
        return await self.invoke(*args, **kwargs)

    async def invoke(self, *args: Any, **kwargs: Any) -> Any:
        """Run the graph to its end and return the mapped final state."""
        state = await self.graph.ainvoke(self._graph_input(args, kwargs), config=self._run_config())
        return self._result(state)

    def stream(self, *args: Any, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
        """Run the graph, yielding each node's update as `{node: update}` (LangGraph "updates" mode)."""
        if not callable(getattr(self.graph, "astream", None)):
            raise TypeError(f"{_describe(self.graph)} has no astream(): it cannot stream")
        return self._updates(args, kwargs)

    async def _updates(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        graph_input = self._graph_input(args, kwargs)
        async for chunk in self.graph.astream(graph_input, config=self._run_config(), stream_mode="updates"):
            yield chunk

    async def _open_stream(
        self, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> AsyncIterator[dict[str, Any]]:
        # The first update is awaited here, inside the engine call, so a graph that fails
        # before producing anything fails the call (turnout counts it and falls back).
        updates = self._updates(args, kwargs)
        try:
            first = await anext(updates)
        except StopAsyncIteration:
            return _replay(None, updates)
        return _replay(first, updates)

    def _graph_input(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if not isinstance(self._input, str):
            return self._input(args, kwargs)
        if len(args) > 1:
            raise TypeError(
                f"langgraph engine {self.name!r} takes at most one positional argument "
                f"(it becomes state[{self._input!r}]), got {len(args)}; pass input= to map more"
            )
        if len(args) == 1 and isinstance(args[0], Mapping) and not kwargs:
            return dict(args[0])
        state = dict(kwargs)
        if args:
            state[self._input] = args[0]
        return state

    def _result(self, state: Any) -> Any:
        if self._output is None:
            return state
        if not isinstance(self._output, str):
            return self._output(state)
        if isinstance(state, Mapping) and self._output in state:
            return state[self._output]
        return state

    def _run_config(self) -> dict[str, Any]:
        config = dict(self._config)
        configurable = dict(config.get("configurable", {}))
        if self._needs_thread or self._thread_id is not None:
            thread = self._thread()
            if thread is not None:
                configurable["thread_id"] = thread
            elif self._needs_thread and not configurable.get("thread_id"):
                raise LookupError(
                    f"langgraph engine {self.name!r}: the graph has a checkpointer but this call has no "
                    "thread id (no routing context with a session_id or targeting_key, and thread_id= "
                    "gave none)"
                )
        config["configurable"] = configurable
        config["recursion_limit"] = self.recursion_limit
        timer = self._tracing.timer(self.name)
        if timer is not None:
            config["callbacks"] = [*config.get("callbacks", ()), timer]
        return config

    def _thread(self) -> str | None:
        context = current_context()
        if self._thread_id is not None:
            return self._thread_id(context)
        if context is None:
            return None
        return context.session_id or context.targeting_key or None


async def _replay(
    first: dict[str, Any] | None, rest: AsyncGenerator[dict[str, Any], None]
) -> AsyncGenerator[dict[str, Any], None]:
    try:
        if first is not None:
            yield first
        async for chunk in rest:
            yield chunk
    finally:
        await rest.aclose()


def _resolve_graph(graph: Any) -> Any:
    """The graph itself, built by its factory or imported; bad ones raise TypeError/ValueError."""
    source = graph
    if isinstance(graph, str):
        graph = _import(graph)
    if not callable(getattr(graph, "ainvoke", None)) and callable(graph):
        try:
            graph = graph()
        except Exception as exc:
            raise ValueError(f"graph factory {_describe(source)} raised {type(exc).__name__}: {exc}") from exc
    if not callable(getattr(graph, "ainvoke", None)):
        hint = " (a StateGraph must be compiled: .compile())" if hasattr(graph, "compile") else ""
        raise TypeError(
            f"graph {_describe(source)} is {_describe(graph)}, which has no ainvoke(){hint}; pass a compiled "
            "graph, a zero-argument factory returning one, or 'package.module:attribute'"
        )
    return graph


def _import(target: str) -> Any:
    try:
        return resolve(target)
    except ImportTargetError as exc:
        if exc.kind == "form":
            raise ValueError(
                f"graph {target!r} must be an import string like 'package.module:attribute'"
            ) from None
        if exc.kind == "attribute":
            module, _, attribute = target.partition(":")
            raise ValueError(f"cannot import graph {target!r}: {module} has no {attribute!r}") from None
        raise ValueError(f"cannot import graph {target!r}: {exc}") from exc


def _checked_name(name: Any) -> str:
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    return name


def _checked_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"recursion_limit must be an integer, got {limit!r}")
    if limit < 1:
        raise ValueError(f"recursion_limit must be at least 1, got {limit}")
    return limit


def _checked_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise TypeError(f"config must be a mapping (a LangChain RunnableConfig), got {config!r}")
    if "recursion_limit" in config:
        raise ValueError("set the recursion limit with the recursion_limit option, not in config")
    if not isinstance(config.get("configurable", {}), Mapping):
        raise TypeError(f"config['configurable'] must be a mapping, got {config['configurable']!r}")
    if not isinstance(config.get("callbacks", []), list | tuple):
        raise TypeError(f"config['callbacks'] must be a list of handlers, got {config['callbacks']!r}")
    return dict(config)


def _describe(obj: Any) -> str:
    if isinstance(obj, str):
        return repr(obj)
    if isinstance(getattr(obj, "__qualname__", None), str):  # a function or a class
        return f"{obj.__module__}.{obj.__qualname__}"
    return f"a {type(obj).__module__}.{type(obj).__qualname__}"
