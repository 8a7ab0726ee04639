"""Engines: registered callables run with a timeout, a fallback and a circuit breaker."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import importlib
import inspect
import threading
from collections.abc import Callable, Mapping
from typing import Any

from turnout.config import EngineConfig
from turnout.decision import Decision, Reason
from turnout.errors import CircuitOpenError, EngineNotFoundError, EngineTimeoutError, TurnoutError
from turnout.failures import Failures
from turnout.types import Clock, EngineCallable

_CLOSED, _OPEN, _HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    """Opens after `failures` consecutive failures; lets one trial call through after `reset_s`."""

    __slots__ = ("_clock", "_failures", "_lock", "_opened_at", "_threshold", "reset_s", "state")

    def __init__(self, failures: int, reset_s: float, clock: Clock) -> None:
        self._threshold = failures
        self.reset_s = reset_s
        self._clock = clock
        self._failures = 0
        self._opened_at = 0.0
        self._lock = threading.Lock()
        self.state = _CLOSED

    def allow(self) -> bool:
        """Whether a call may go to the engine now."""
        if self.state == _CLOSED:
            return True
        with self._lock:
            if self.state == _OPEN and self._clock() - self._opened_at >= self.reset_s:
                self.state = _HALF_OPEN
                return True
            return False

    def succeeded(self) -> None:
        """Record a success: the breaker closes."""
        if self._failures or self.state != _CLOSED:
            with self._lock:
                self._failures = 0
                self.state = _CLOSED

    def failed(self) -> None:
        """Record a failure; the threshold (or any failure while half-open) opens the breaker."""
        with self._lock:
            self._failures += 1
            if self.state == _HALF_OPEN or self._failures >= self._threshold:
                self.state = _OPEN
                self._opened_at = self._clock()

    def abandoned(self) -> None:
        """A call ended without a verdict (cancelled): a half-open breaker lets the next call try."""
        # Without this a cancelled trial call would leave the breaker half-open, refusing every call.
        if self.state == _HALF_OPEN:
            with self._lock:
                if self.state == _HALF_OPEN:
                    self.state = _OPEN


class Engine:
    """A named, versioned callable with its run settings."""

    __slots__ = ("breaker", "fallback", "func", "is_async", "name", "timeout_s", "version")

    def __init__(
        self, name: str, func: EngineCallable, *, version: str, settings: EngineConfig, clock: Clock
    ) -> None:
        self.name = name
        self.func = func
        self.version = version
        self.is_async = _is_async(func)
        self.timeout_s = settings.timeout_ms / 1000 if settings.timeout_ms else None
        self.fallback = settings.fallback
        cb = settings.circuit_breaker
        self.breaker = CircuitBreaker(cb.failures, cb.reset_s, clock) if cb.enabled else None

    async def acall(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """Run the engine from async code: async awaited, sync in a worker thread."""
        self._check_breaker()
        try:
            if self.timeout_s is None:
                result = await self._invoke(args, kwargs)
            else:
                deadline = asyncio.timeout(self.timeout_s)
                try:
                    async with deadline:
                        result = await self._invoke(args, kwargs)
                except TimeoutError:
                    if not deadline.expired():
                        raise  # the engine's own TimeoutError, not our deadline
                    raise self._timed_out() from None
        except Exception:
            self._failed()
            raise
        except BaseException:
            self._abandoned()
            raise
        self._succeeded()
        return result

    async def _invoke(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        if self.is_async:
            result = await self.func(*args, **kwargs)
        else:
            # to_thread copies the contextvars, so current_context() works inside the engine.
            result = await asyncio.to_thread(functools.partial(self.func, *args, **kwargs))
        if inspect.isawaitable(result):
            result = await result
        return result

    def call(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """Run a sync engine from sync code (the timeout runs it in a worker thread)."""
        if self.is_async:
            raise TurnoutError(f"engine {self.name!r} is async: call it with `await`")
        self._check_breaker()
        try:
            if self.timeout_s is None:
                result = self.func(*args, **kwargs)
            else:
                context = contextvars.copy_context()
                future = _sync_pool().submit(context.run, self.func, *args, **kwargs)
                try:
                    result = future.result(timeout=self.timeout_s)
                except concurrent.futures.TimeoutError as exc:
                    if future.done() and future.exception() is exc:
                        raise  # the engine's own TimeoutError, not our deadline
                    future.cancel()
                    raise self._timed_out() from None
        except Exception:
            self._failed()
            raise
        except BaseException:
            self._abandoned()
            raise
        self._succeeded()
        return result

    def _timed_out(self) -> EngineTimeoutError:
        return EngineTimeoutError(self.name, f"no result within {(self.timeout_s or 0) * 1000:g} ms")

    def _failed(self) -> None:
        if self.breaker is not None:
            self.breaker.failed()

    def _succeeded(self) -> None:
        if self.breaker is not None:
            self.breaker.succeeded()

    def _abandoned(self) -> None:
        if self.breaker is not None:
            self.breaker.abandoned()

    def _check_breaker(self) -> None:
        if self.breaker is not None and not self.breaker.allow():
            raise CircuitOpenError(
                self.name, f"circuit open after repeated failures; retry in {self.breaker.reset_s:g}s"
            )


class EngineSet:
    """The engines of one config snapshot, and how a decision's engine is run."""

    def __init__(self, engines: Mapping[str, Engine], failures: Failures) -> None:
        self.engines = dict(engines)
        self._failures = failures

    def resolve(self, decision: Decision, default: Decision) -> tuple[Engine, Decision]:
        """The engine for `decision`; a missing one is replaced by the flag default's (reason ERROR)."""
        name = decision.engine
        engine = self.engines.get(name) if name is not None else None
        if engine is not None:
            return engine, decision
        fallback = self.engines.get(default.engine) if default.engine is not None else None
        if fallback is None:
            raise EngineNotFoundError(
                str(name), f"not registered (flag {decision.flag!r} has no default engine either)"
            )
        self._failures.record(f"engine.{name}", EngineNotFoundError(str(name), "not registered"))
        return fallback, Decision(
            decision.flag,
            default.variant,
            fallback.name,
            Reason.ERROR,
            decision.rule,
            decision.experiment,
            decision.bucket,
            decision.intent,
            error=f"engine {name!r} not registered",
        )

    async def arun(
        self, engine: Engine, decision: Decision, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[Any, Decision]:
        """Run `engine`, walking its fallback chain on failure; returns (result, final decision)."""
        tried = {engine.name}
        while True:
            try:
                return await engine.acall(args, kwargs), decision
            except Exception as exc:
                engine, decision = self._fallback(engine, decision, exc, tried)

    def run(
        self, engine: Engine, decision: Decision, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[Any, Decision]:
        """The sync twin of `arun`; an async engine (chosen or fallback) raises `TurnoutError`."""
        tried = {engine.name}
        cause: Exception | None = None
        while True:
            if engine.is_async:
                # A programming error, not an engine failure: neither counted nor fallen back from.
                raise TurnoutError(
                    f"engine {engine.name!r} is async and cannot run from sync code: "
                    "call it with `await` (e.g. `await engine(...)` instead of `engine.call_sync(...)`)"
                ) from cause
            try:
                return engine.call(args, kwargs), decision
            except Exception as exc:
                cause = exc
                engine, decision = self._fallback(engine, decision, exc, tried)

    def _fallback(
        self, engine: Engine, decision: Decision, exc: Exception, tried: set[str]
    ) -> tuple[Engine, Decision]:
        self._failures.record(f"engine.{engine.name}", exc, flag=decision.flag, variant=decision.variant)
        target = self.engines.get(engine.fallback) if engine.fallback else None
        if target is None or target.name in tried:
            raise exc
        tried.add(target.name)
        return target, decision.fallen_back(target.name, f"{engine.name}: {type(exc).__name__}: {exc}"[:300])


def import_target(target: str) -> Any:
    """Import "package.module:attribute" (dotted attribute paths allowed)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise TurnoutError(f"engine target {target!r} must look like 'package.module:attribute'")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        # Not only ImportError: a module that raises while importing is a config problem too.
        raise TurnoutError(f"cannot import engine target {target!r}: {type(exc).__name__}: {exc}") from exc
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TurnoutError(
                f"engine target {target!r}: {module_name} has no attribute {attribute!r}"
            ) from None
    if not callable(obj):
        raise TurnoutError(f"engine target {target!r} is not callable")
    return obj


def _is_async(func: Callable[..., Any]) -> bool:
    while isinstance(func, functools.partial):
        func = func.func
    return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(getattr(func, "__call__", None))  # noqa: B004


_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _sync_pool() -> concurrent.futures.ThreadPoolExecutor:
    # Created on first use so importing turnout starts no threads (and forks stay clean).
    global _pool  # noqa: PLW0603
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(thread_name_prefix="turnout-engine")
        return _pool
