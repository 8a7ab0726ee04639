"""A linear engine: named steps (sync or async) passing a state dict, each step traced."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import trace

from turnout.errors import WorkflowStepError

Step = Callable[[dict[str, Any]], Any]
_tracer = trace.get_tracer("turnout")


class Workflow:
    """Run steps in order over a state dict, like seed 003's WorkflowCoordinator.

    A step gets the state and may return a mapping, merged into the state. The call's
    first positional argument becomes `state[input_key]`, keyword arguments are added as
    they are, and the result is `state[output_key]` (the whole state if that is absent).
    Sync steps run inline: keep them light, or make them async.
    """

    def __init__(
        self,
        steps: Iterable[Step | tuple[str, Step]] = (),
        *,
        name: str = "workflow",
        input_key: str = "message",
        output_key: str = "response",
    ) -> None:
        self.name = name
        self.input_key = input_key
        self.output_key = output_key
        self.steps: list[tuple[str, Step]] = []
        for step in steps:
            if isinstance(step, tuple):
                self.add(*step)
            else:
                self.add(getattr(step, "__name__", f"step{len(self.steps)}"), step)

    def add(self, name: str, step: Step) -> None:
        """Append a step under `name`."""
        if any(existing == name for existing, _ in self.steps):
            raise ValueError(f"workflow {self.name!r} already has a step named {name!r}")
        self.steps.append((name, step))

    def step(self, name: str | None = None) -> Callable[[Step], Step]:
        """Decorator form of `add`."""

        def register(func: Step) -> Step:
            self.add(name or func.__name__, func)
            return func

        return register

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run every step; a failing step raises `WorkflowStepError` naming it."""
        state: dict[str, Any] = dict(kwargs)
        if len(args) == 1 and isinstance(args[0], Mapping) and not kwargs:
            state = dict(args[0])
        elif args:
            state[self.input_key] = args[0] if len(args) == 1 else args
        timings: dict[str, float] = {}
        state["_timings_ms"] = timings
        for name, step in self.steps:
            with _tracer.start_as_current_span(
                f"turnout.step {name}",
                attributes={"turnout.workflow": self.name, "turnout.step": name},
            ) as span:
                started = time.perf_counter()
                try:
                    result = step(state)
                    if inspect.isawaitable(result):
                        result = await result
                except Exception as exc:
                    span.record_exception(exc)
                    span.set_status(trace.Status(trace.StatusCode.ERROR, f"step {name} failed"))
                    raise WorkflowStepError(self.name, name, exc) from exc
                finally:
                    timings[name] = (time.perf_counter() - started) * 1000
            if isinstance(result, Mapping):
                state.update(result)
        return state.get(self.output_key, state)
