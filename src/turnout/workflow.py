"""A linear engine: named steps (sync or async) passing a state dict, each step traced."""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry import trace

from turnout.errors import WorkflowStepError

Step = Callable[[dict[str, Any]], Any]


class Workflow:
    """Run steps in order over a state dict, like a hand-written WorkflowCoordinator.

    A step gets the state and may return a mapping, merged into the state. The call's
    first positional argument becomes `state[input_key]`, keyword arguments are added as
    they are, and the result is `state[output_key]` (the whole state if that is absent).
    Sync steps run inline: keep them light, or make them async.

    Each run is a span `turnout.workflow <name>` with one child span `turnout.step <step>`
    per step, from `tracer_provider` (the global OpenTelemetry provider by default).
    """

    def __init__(
        self,
        steps: Iterable[Step | tuple[str, Step]] = (),
        *,
        name: str = "workflow",
        input_key: str = "message",
        output_key: str = "response",
        tracer_provider: trace.TracerProvider | None = None,
    ) -> None:
        self.name = name
        self.input_key = input_key
        self.output_key = output_key
        # Without a provider this is the API's proxy tracer: it follows the global provider
        # even when that is set after the workflow was built.
        self._tracer = trace.get_tracer("turnout", tracer_provider=tracer_provider)
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
        with self._tracer.start_as_current_span(
            f"turnout.workflow {self.name}",
            attributes={"turnout.workflow": self.name, "turnout.workflow.steps": len(self.steps)},
        ):
            for name, step in self.steps:
                result = await self._run_step(name, step, state, timings)
                if isinstance(result, Mapping):
                    state.update(result)
        return state.get(self.output_key, state)

    async def _run_step(self, name: str, step: Step, state: dict[str, Any], timings: dict[str, float]) -> Any:
        # Exceptions are recorded by hand so the step's span gets the original error once,
        # not the WorkflowStepError that wraps it as well.
        with self._tracer.start_as_current_span(
            f"turnout.step {name}",
            attributes={"turnout.workflow": self.name, "turnout.step": name},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            started = time.perf_counter()
            try:
                result = step(state)
                if inspect.isawaitable(result):
                    result = await result
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(trace.Status(trace.StatusCode.ERROR, f"step {name} failed: {exc}"[:300]))
                raise WorkflowStepError(self.name, name, exc) from exc
            finally:
                timings[name] = (time.perf_counter() - started) * 1000
                span.set_attribute("turnout.step.duration_ms", timings[name])
        return result
