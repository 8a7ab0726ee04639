"""Engines: registered callables run with a timeout, a fallback and a circuit breaker."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import threading
from collections.abc import Callable, Generator, Mapping
from collections.abc import Set as AbstractSet
from time import perf_counter
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.trace import Span

from turnout.breaker import CircuitBreaker
from turnout.config import EngineConfig, TurnoutConfig
from turnout.decision import Decision, Reason
from turnout.errors import (
    CircuitOpenError,
    ConfigError,
    ConfigIssue,
    EngineNotFoundError,
    EngineTimeoutError,
    TurnoutError,
)
from turnout.failures import Failures
from turnout.imports import ImportTargetError, resolve
from turnout.telemetry.tracing import ENGINE_SPAN, engine_attributes, mark_fallback
from turnout.types import Clock, EngineCallable

if TYPE_CHECKING:
    from turnout.telemetry.hub import Telemetry


class Engine:
    """A named, versioned callable with its run settings."""

    __slots__ = (
        "breaker",
        "component",
        "fallback",
        "func",
        "guard",
        "is_async",
        "name",
        "pool",
        "shadow_safe",
        "timeout_s",
        "version",
    )

    def __init__(
        self, name: str, func: EngineCallable, *, version: str, settings: EngineConfig, clock: Clock
    ) -> None:
        self.name = name
        self.component = f"engine.{name}"
        """The metrics component its calls are counted in."""
        self.func = func
        self.version = version
        self.is_async = _is_async(func)
        self.timeout_s = settings.timeout_ms / 1000 if settings.timeout_ms else None
        self.fallback = settings.fallback
        self.shadow_safe = settings.shadow_safe
        cb = settings.circuit_breaker
        self.breaker = CircuitBreaker(cb.failures, cb.reset_s, clock) if cb.enabled else None
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None
        self.guard = _Guard(self)
        """Around every call: refused while the breaker is open; the outcome is the breaker's."""

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        # One pool per engine, made on first use (no threads at import, clean forks): a sync
        # engine stuck past its timeout keeps its thread, and must not starve the others.
        pool = self.pool
        if pool is None:
            with _pool_lock:
                pool = self.pool
                if pool is None:
                    pool = self.pool = concurrent.futures.ThreadPoolExecutor(
                        _POOL_SIZE, thread_name_prefix=f"turnout-engine-{self.name}"
                    )
        return pool

    async def acall(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """Run the engine from async code: async awaited, sync in a worker thread."""
        with self.guard:
            if self.timeout_s is None:
                return await self._invoke(args, kwargs)
            deadline = asyncio.timeout(self.timeout_s)
            try:
                async with deadline:
                    return await self._invoke(args, kwargs)
            except TimeoutError:
                if not deadline.expired():
                    raise  # the engine's own TimeoutError, not our deadline
                raise self._timed_out() from None

    async def _invoke(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        if self.is_async:
            return await self.func(*args, **kwargs)
        # Our own pool, not the loop's default one: a sync engine stuck past its timeout must
        # not starve other to_thread users. Copying the context keeps current_context() working.
        call = functools.partial(self.func, *args, **kwargs)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor(), contextvars.copy_context().run, call)
        if inspect.isawaitable(result):  # a sync callable that hands back a coroutine
            result = await result
        return result

    def call(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """Run a sync engine from sync code (the timeout runs it in a worker thread)."""
        if self.is_async:
            raise TurnoutError(f"engine {self.name!r} is async: call it with `await`")
        with self.guard:
            if self.timeout_s is None:
                return self.func(*args, **kwargs)
            context = contextvars.copy_context()
            future = self._executor().submit(context.run, self.func, *args, **kwargs)
            try:
                return future.result(timeout=self.timeout_s)
            except concurrent.futures.TimeoutError as exc:
                if future.done() and future.exception() is exc:
                    raise  # the engine's own TimeoutError, not our deadline
                future.cancel()
                raise self._timed_out() from None

    def _timed_out(self) -> EngineTimeoutError:
        return EngineTimeoutError(self.name, f"no result within {(self.timeout_s or 0) * 1000:g} ms")


class _Guard:
    """The circuit breaker around one call (async and sync alike)."""

    __slots__ = ("engine",)

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def __enter__(self) -> None:
        engine = self.engine
        breaker = engine.breaker
        if breaker is not None and not breaker.allow():
            raise CircuitOpenError(
                engine.name, f"circuit open after repeated failures; retry in {breaker.reset_s:g}s"
            )

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        breaker = self.engine.breaker
        if breaker is None:
            return
        if exc_type is None:
            breaker.succeeded()
        elif issubclass(exc_type, Exception):
            breaker.failed()
        else:  # cancelled, interrupted: says nothing about the engine
            breaker.abandoned()


class EngineSet:
    """The engines of one config snapshot, and how a decision's engine is run."""

    def __init__(self, engines: Mapping[str, Engine], failures: Failures, telemetry: Telemetry) -> None:
        self.engines = dict(engines)
        self._failures = failures
        self._metrics = telemetry.metrics
        self._tracing = telemetry.tracing
        self._decisions = telemetry.decisions

    def resolve(
        self, decision: Decision, default_of: Callable[[Decision], Decision]
    ) -> tuple[Engine, Decision]:
        """The engine for `decision`; a missing one is replaced by the flag default's (reason ERROR).

        `default_of` gives the flag default's decision; it is asked only when the engine is missing.
        The decision keeps its variant and experiment: the users were assigned to that variant,
        so its metrics must show that it could not serve them.
        """
        name = decision.engine
        engine = self.engines.get(name) if name is not None else None
        if engine is not None:
            return engine, decision
        default = default_of(decision)
        fallback = self.engines.get(default.engine) if default.engine is not None else None
        if fallback is None and name is None and not decision.variant:
            raise EngineNotFoundError(
                "",
                f"none for flag {decision.flag!r}: it is not in the configuration and "
                "`routing.default_engine` is not set",
            )
        if fallback is None:
            raise EngineNotFoundError(
                str(name), f"not registered (flag {decision.flag!r} has no default engine either)"
            )
        self._failures.record(f"engine.{name}", EngineNotFoundError(str(name), "not registered"))
        return fallback, decision._replace(
            engine=fallback.name, reason=Reason.ERROR, error=f"engine {name!r} not registered"
        )

    def attempts(self, engine: Engine, decision: Decision) -> Generator[Engine, Any, tuple[Any, Decision]]:
        """The attempt loop, for async and sync callers alike: timeout and breaker are the engine's.

        It yields each engine to call and is sent the result, or thrown the exception, of that
        call; on failure it walks the fallback chain; it returns (result, final decision), or
        raises the last error when no fallback is left. Each attempt is measured and spanned.
        """
        tried = {engine.name}
        started = perf_counter()
        first_error: str | None = None
        while True:
            attempt = perf_counter()
            tracer = self._tracing.tracer
            try:
                if tracer is None:
                    result = yield engine
                else:
                    span = tracer.start_span(ENGINE_SPAN, attributes=_attributes(engine, decision))
                    with trace.use_span(
                        span, end_on_exit=True, record_exception=False, set_status_on_exception=False
                    ):
                        try:
                            result = yield engine
                        except Exception as exc:
                            self._mark_failed(span, engine, tried, exc)
                            raise
            except Exception as exc:
                self._metrics.record(engine.component, _ms(attempt), False, type(exc).__name__)
                first_error = first_error or type(exc).__name__
                engine, decision = self._fallback(engine, decision, exc, tried, started, first_error)
                continue
            ended = perf_counter()  # one reading for the attempt and the whole call
            self._metrics.record(engine.component, (ended - attempt) * 1000.0, True)
            self._record_variant(decision, (ended - started) * 1000.0, first_error)
            return result, decision

    async def arun(
        self, engine: Engine, decision: Decision, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[Any, Decision]:
        """Run `engine` from async code through the attempt loop; returns (result, final decision)."""
        loop = self.attempts(engine, decision)
        step: Engine | _Done = next(loop)
        while isinstance(step, Engine):
            try:
                result = await step.acall(args, kwargs)
            except Exception as exc:
                step = _advance(loop, None, exc)
            else:
                step = _advance(loop, result, None)
        return step.outcome

    def run(
        self, engine: Engine, decision: Decision, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[Any, Decision]:
        """`arun` for sync code; an async engine (chosen or fallback) raises `TurnoutError`."""
        loop = self.attempts(engine, decision)
        step: Engine | _Done = next(loop)
        cause: Exception | None = None
        while isinstance(step, Engine):
            if step.is_async:
                loop.close()
                # A programming error, not an engine failure: neither counted nor fallen back from.
                raise TurnoutError(
                    f"engine {step.name!r} is async and cannot run from sync code: "
                    "call it with `await` (e.g. `await engine(...)` instead of `engine.call_sync(...)`)"
                ) from cause
            try:
                result = step.call(args, kwargs)
            except Exception as exc:
                cause = exc
                step = _advance(loop, None, exc)
            else:
                step = _advance(loop, result, None)
        return step.outcome

    def _mark_failed(self, span: Span, engine: Engine, tried: set[str], exc: Exception) -> None:
        """On the failed attempt's span: the error (as privacy allows), and who takes over."""
        self._tracing.record_error(span, exc)
        target = self._fallback_target(engine, tried)
        if target is not None:
            mark_fallback(span, engine.name, target.name, exc, self._tracing.privacy)

    def _record_variant(self, decision: Decision, elapsed_ms: float, error: str | None) -> None:
        # A variant counts as failed when its own engine failed, even if a fallback served:
        # that is what a canary's guardrails must see.
        # A later call in the same request reuses the FALLBACK decision and goes straight to the
        # fallback engine: still a failure of the variant, not a success.
        if decision.experiment is not None:
            ok = error is None and decision.reason not in _NOT_SERVED_BY_VARIANT
            self._metrics.record_variant(
                decision.experiment,
                decision.flag,
                decision.variant,
                elapsed_ms,
                ok,
                error or (None if ok else decision.reason.value.title()),
            )

    def _fallback_target(self, engine: Engine, tried: set[str]) -> Engine | None:
        target = self.engines.get(engine.fallback) if engine.fallback else None
        return None if target is None or target.name in tried else target

    def _fallback(
        self, engine: Engine, decision: Decision, exc: Exception, tried: set[str], started: float, error: str
    ) -> tuple[Engine, Decision]:
        self._failures.record(f"engine.{engine.name}", exc, flag=decision.flag, variant=decision.variant)
        target = self._fallback_target(engine, tried)
        if target is None:
            self._record_variant(decision, _ms(started), error)
            raise exc
        tried.add(target.name)
        self._decisions.count(decision.flag, Reason.FALLBACK)
        error_text = self._tracing.privacy.error_text(exc)
        return target, decision.fallen_back(target.name, f"{engine.name}: {error_text}"[:300])


_NOT_SERVED_BY_VARIANT = frozenset({Reason.FALLBACK, Reason.ERROR})


class _Done:
    """The attempt loop's end: the result and the decision that served it."""

    __slots__ = ("outcome",)

    def __init__(self, outcome: tuple[Any, Decision]) -> None:
        self.outcome = outcome


def _advance(
    loop: Generator[Engine, Any, tuple[Any, Decision]], result: Any, error: Exception | None
) -> Engine | _Done:
    """Hand the attempt loop one call's outcome; the next engine to call, or the end."""
    try:
        return loop.send(result) if error is None else loop.throw(error)
    except StopIteration as done:
        return _Done(done.value)


def _attributes(engine: Engine, decision: Decision) -> dict[str, Any]:
    return engine_attributes(engine.name, engine.version, decision)


def _ms(since: float) -> float:
    return (perf_counter() - since) * 1000.0


def build_engine_set(
    config: TurnoutConfig,
    code_engines: Mapping[str, tuple[EngineCallable, str | None]],
    *,
    failures: Failures,
    telemetry: Telemetry,
    clock: Clock,
    previous: EngineSet | None = None,
    shadow_unsafe: AbstractSet[str] = frozenset(),
) -> EngineSet:
    """Engines from code and config (targets, plugins); a bad target or plugin is a ConfigError.

    An engine whose breaker settings did not change keeps its breaker from `previous`, so a
    reload does not close a breaker that is open for good reason. Engines named in
    `shadow_unsafe` (registered in code with `shadow_safe=False`) may not run as shadows.
    """
    engines: dict[str, Engine] = {}
    issues: list[ConfigIssue] = []
    for name in {**config.engines, **code_engines}:
        settings = config.engines.get(name, EngineConfig())
        func, version = code_engines.get(name, (None, None))
        try:
            if func is None and settings.target:
                func = import_target(settings.target)
            elif func is None and settings.plugin:
                from turnout.plugins import load_engine_plugin

                func = load_engine_plugin(
                    settings.plugin,
                    settings.options,
                    block=config.plugins.block,
                    autoload=config.plugins.autoload,
                )
        except TurnoutError as exc:
            field = "target" if settings.target else "plugin"
            issues.append(ConfigIssue(f"engines.{name}.{field}", getattr(settings, field), str(exc)))
            continue
        if func is None:
            continue
        version = version or settings.version or str(getattr(func, "version", "") or "0")
        engine = Engine(name, func, version=version, settings=settings, clock=clock)
        engine.shadow_safe = settings.shadow_safe and name not in shadow_unsafe
        old = previous.engines.get(name) if previous is not None else None
        if old is not None and _same_breaker(old, engine):
            engine.breaker = old.breaker
        if old is not None:
            engine.pool = old.pool
        engines[name] = engine
    if issues:
        raise ConfigError(issues)
    return EngineSet(engines, failures, telemetry)


def _same_breaker(old: Engine, new: Engine) -> bool:
    a, b = old.breaker, new.breaker
    return a is not None and b is not None and (a.threshold, a.reset_s) == (b.threshold, b.reset_s)


def import_target(target: str) -> Any:
    """Import the engine "package.module:attribute" (dotted attribute paths allowed)."""
    try:
        obj = resolve(target)
    except ImportTargetError as exc:
        if exc.kind == "form":
            raise TurnoutError(f"engine target {target!r} {exc}") from None
        if exc.kind == "attribute":
            raise TurnoutError(f"engine target {target!r}: {exc}") from None
        raise TurnoutError(f"cannot import engine target {target!r}: {exc}") from exc
    if not callable(obj):
        raise TurnoutError(f"engine target {target!r} is not callable")
    return obj


def _is_async(func: Callable[..., Any]) -> bool:
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))  # noqa: B004


_POOL_SIZE = 16
_pool_lock = threading.Lock()
