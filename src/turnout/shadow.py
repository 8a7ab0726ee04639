"""Shadow mode: a candidate engine runs beside the served one on sampled traffic, never served.

For a sampled request (sticky by targeting key), once the served engine has produced its
result the candidate is called with the same arguments off the request's critical path: under
`TurnoutMiddleware` it starts after the response is sent, elsewhere as a background task (or,
from code with no event loop, on a background thread's loop). Its result is compared with the
served one and recorded per (flag, served engine, shadow engine, intent); a failure or timeout
is counted, never raised. At most `max_concurrency` calls of a shadow run at once, `queue_size`
more wait, and samples beyond that are skipped and counted.

The shadow call is its own span `turnout.shadow` (a new trace, linked to the request's span)
with `turnout.shadow = true`. It does not touch the engine's circuit breaker or its
`engine.<name>` metrics, which describe served traffic only.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import copy
import functools
import inspect
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, SpanContext, StatusCode

from turnout.comparators import Comparator, agreement, resolve_comparator
from turnout.config import ShadowConfig, TurnoutConfig, shadow_settings
from turnout.context import RoutingContext, use_context
from turnout.decision import Decision, Reason
from turnout.errors import ConfigIssue, TurnoutError
from turnout.hashing import bucket
from turnout.redact import redact_text, redact_value

if TYPE_CHECKING:
    from turnout.engines import Engine, EngineSet
    from turnout.failures import Failures
    from turnout.telemetry.shadows import SeriesKey, ShadowStats
    from turnout.telemetry.tracing import Tracing
    from turnout.types import Intent

SHADOW_SPAN = "turnout.shadow"
_in_shadow: contextvars.ContextVar[bool] = contextvars.ContextVar("turnout_in_shadow", default=False)
_deferred: contextvars.ContextVar[list[ShadowJob] | None] = contextvars.ContextVar(
    "turnout_deferred_shadows", default=None
)


@dataclass(frozen=True, slots=True)
class ShadowPlan:
    """One configured shadow, compiled: where it applies, who is sampled, how results compare."""

    path: str
    flag: str
    rule: str | None
    settings: ShadowConfig
    comparator: Comparator
    hash_by: str | None
    seed: str

    @property
    def engine(self) -> str:
        """The shadow engine's name."""
        return self.settings.engine

    def sampled(self, context: RoutingContext) -> bool:
        """Whether this context's targeting key is in the shadowed share (sticky)."""
        share = self.settings.sample
        if share >= 1.0:
            return True
        return share > 0.0 and bucket(self.seed, context.value(self.hash_by)) < share


class ShadowPlans:
    """The shadows of one configuration, looked up by (flag, rule) with the flag's own as default."""

    __slots__ = ("_by_flag", "_by_rule", "plans")

    def __init__(self, plans: Sequence[ShadowPlan] = ()) -> None:
        self.plans = tuple(plans)
        self._by_rule = {(p.flag, p.rule): p for p in self.plans if p.rule is not None}
        self._by_flag = {p.flag: p for p in self.plans if p.rule is None}

    def __bool__(self) -> bool:
        return bool(self.plans)

    def __iter__(self) -> Iterator[ShadowPlan]:
        return iter(self.plans)

    def plan(self, decision: Decision, context: RoutingContext) -> ShadowPlan | None:
        """The shadow to run for this decision and context, if it applies and the key is sampled."""
        if decision.reason is Reason.ERROR or _in_shadow.get():
            return None
        plan = self._by_rule.get((decision.flag, decision.rule)) if decision.rule is not None else None
        plan = plan or self._by_flag.get(decision.flag)
        return plan if plan is not None and plan.sampled(context) else None

    @property
    def longest_timeout_s(self) -> float:
        """The longest shadow timeout (what stopping waits for at most)."""
        return max((p.settings.timeout_ms for p in self.plans), default=0.0) / 1000


NO_SHADOWS = ShadowPlans()


def compile_shadows(
    config: TurnoutConfig, comparators: Mapping[str, Comparator]
) -> tuple[ShadowPlans, list[ConfigIssue]]:
    """The plans of `config`, and an issue for each comparator that cannot be found."""
    plans: list[ShadowPlan] = []
    issues: list[ConfigIssue] = []
    for path, flag, rule, settings in shadow_settings(config):
        try:
            comparator = resolve_comparator(
                settings.comparator,
                comparators,
                block=config.plugins.block,
                autoload=config.plugins.autoload,
            )
        except TurnoutError as exc:
            issues.append(ConfigIssue(f"{path}.comparator", settings.comparator, str(exc)))
            continue
        seed = settings.seed or f"shadow:{flag}:{settings.engine}"
        plans.append(ShadowPlan(path, flag, rule, settings, comparator, config.flags[flag].hash_by, seed))
    return ShadowPlans(plans), issues


def unsafe_shadows(plans: ShadowPlans, engines: EngineSet) -> list[ConfigIssue]:
    """An issue for each shadow naming an engine that declared itself not shadow-safe."""
    issues = []
    for plan in plans:
        engine = engines.engines.get(plan.engine)
        if engine is not None and not engine.shadow_safe:
            issues.append(
                ConfigIssue(
                    f"{plan.path}.engine",
                    plan.engine,
                    f"engine {plan.engine!r} is registered with shadow_safe=False: it may not be a shadow",
                )
            )
    return issues


@dataclass(slots=True)
class ShadowJob:
    """One sampled call waiting to be shadowed: everything the candidate and the comparison need."""

    plan: ShadowPlan
    engine: Engine | None
    context: RoutingContext
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]
    served: Any
    served_ms: float
    decision: Decision
    link: SpanContext | None
    loop: asyncio.AbstractEventLoop | None


class _Lane:
    """The running and waiting calls of one shadow (by its config path), across reloads."""

    __slots__ = ("lock", "pool", "running", "waiting")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running = 0
        self.waiting: deque[ShadowJob] = deque()
        self.pool: concurrent.futures.ThreadPoolExecutor | None = None


class ShadowRunner:
    """Schedules shadow calls off the critical path, bounds them, compares and records results."""

    def __init__(
        self,
        stats: ShadowStats,
        failures: Failures,
        tracing: Tracing,
        classify: Callable[[str | None], Intent],
    ) -> None:
        self.stats = stats
        self._failures = failures
        self._tracing = tracing
        self._classify = classify
        self._lanes: dict[str, _Lane] = {}
        self._lanes_lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        # Calls running on another thread's loop (the background one, or the app's from there).
        self._elsewhere: set[concurrent.futures.Future[None]] = set()
        self._background: _BackgroundLoop | None = None

    # -- scheduling ----------------------------------------------------------------------

    def offer(
        self,
        plan: ShadowPlan,
        engines: EngineSet,
        context: RoutingContext,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        served: Any,
        served_ms: float,
        decision: Decision,
    ) -> None:
        """Hand over a sampled call; under the middleware it waits until the response is sent."""
        try:
            if decision.engine == plan.engine:
                return  # the candidate served this request itself: nothing to compare
            link = trace.get_current_span().get_span_context()
            job = ShadowJob(
                plan,
                engines.engines.get(plan.engine),
                context,
                args,
                kwargs,
                served,
                served_ms,
                decision,
                link if link.is_valid else None,
                _running_loop(),
            )
            pending = _deferred.get()
            if pending is not None:
                pending.append(job)
            else:
                self._admit(job)
        except Exception as exc:
            self._failures.record("shadow", exc, flag=plan.flag)

    def start(self, jobs: list[ShadowJob]) -> None:
        """Start (or queue, or skip) the jobs a request deferred; empties `jobs`."""
        batch = jobs[:]
        jobs.clear()
        loop = _running_loop()
        for job in batch:
            try:
                # A sync handler offered its job from a worker thread: run it on the app's loop.
                job.loop = job.loop or loop
                self._admit(job)
            except Exception as exc:
                self._failures.record("shadow", exc, flag=job.plan.flag)

    def _admit(self, job: ShadowJob) -> None:
        settings = job.plan.settings
        lane = self._lane(job.plan.path)
        with lane.lock:
            if lane.running < settings.max_concurrency:
                lane.running += 1
                verdict = "run"
            elif len(lane.waiting) < settings.queue_size:
                lane.waiting.append(job)
                verdict = "wait"
            else:
                verdict = "skip"
        intent = job.context.intent.label if job.context.intent is not None else None
        if verdict == "skip":
            self.stats.offered(self._key(job, intent or "unknown"), settings.mismatch_samples, skipped=True)
        elif verdict == "run":
            try:
                self._launch(lane, job)
            except BaseException:
                with lane.lock:  # never started: give the slot back
                    lane.running -= 1
                raise

    def _lane(self, path: str) -> _Lane:
        lane = self._lanes.get(path)
        if lane is None:
            with self._lanes_lock:
                lane = self._lanes.setdefault(path, _Lane())
        return lane

    def _launch(self, lane: _Lane, job: ShadowJob) -> None:
        loop = job.loop
        if loop is None or loop.is_closed():
            if self._background is None:
                with self._lanes_lock:
                    if self._background is None:
                        self._background = _BackgroundLoop()
            loop = self._background.loop
        if loop is _running_loop():
            task = loop.create_task(self._run(lane, job))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        else:
            future = asyncio.run_coroutine_threadsafe(self._run(lane, job), loop)
            self._elsewhere.add(future)
            future.add_done_callback(self._elsewhere.discard)

    async def _run(self, lane: _Lane, job: ShadowJob) -> None:
        try:
            await self._execute(lane, job)
        except Exception as exc:  # a bug in the bookkeeping must not leave a slot taken
            self._failures.record("shadow", exc, flag=job.plan.flag)
        finally:
            with lane.lock:
                following = lane.waiting.popleft() if lane.waiting else None
                if following is None:
                    lane.running -= 1
            if following is not None:
                try:
                    self._launch(lane, following)  # it takes over this call's slot
                except Exception as exc:
                    with lane.lock:
                        lane.running -= 1
                    self._failures.record("shadow", exc, flag=following.plan.flag)

    async def drain(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for running and queued shadow calls; True when none are left."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            pending: set[asyncio.Future[Any]] = {t for t in self._tasks if t.get_loop() is loop}
            pending |= {asyncio.wrap_future(future) for future in list(self._elsewhere)}
            if not pending:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.wait(pending, timeout=remaining)

    def in_flight(self) -> int:
        """Shadow calls running now, over every shadow."""
        with self._lanes_lock:
            lanes = list(self._lanes.values())
        return sum(lane.running for lane in lanes)

    def close(self) -> None:
        """Stop the background loop and threads (calls still running there are abandoned)."""
        background, self._background = self._background, None
        if background is not None:
            background.stop()
        with self._lanes_lock:
            for lane in self._lanes.values():
                if lane.pool is not None:
                    lane.pool.shutdown(wait=False, cancel_futures=True)
                    lane.pool = None

    # -- one call ------------------------------------------------------------------------

    async def _execute(self, lane: _Lane, job: ShadowJob) -> None:
        _in_shadow.set(True)  # this task's own context: a nested turnout.run() shadows nothing
        shadow_context = copy.copy(job.context)
        shadow_context.decisions = dict(job.context.decisions)
        with use_context(shadow_context):
            await self._traced(lane, job)

    async def _traced(self, lane: _Lane, job: ShadowJob) -> None:
        plan = job.plan
        tracer = self._tracing.tracer
        if tracer is None:
            await self._call_and_compare(lane, job, None)
            return
        span = tracer.start_span(
            SHADOW_SPAN,
            context=Context(),  # a trace of its own: the request's trace ends with its response
            links=[Link(job.link)] if job.link is not None else None,
            attributes={
                "turnout.shadow": True,
                "turnout.engine.name": plan.engine,
                "feature_flag.key": plan.flag,
                "feature_flag.result.variant": job.decision.variant,
                "turnout.shadow.served_engine": job.decision.engine or "",
                **({"turnout.rule": job.decision.rule} if job.decision.rule else {}),
            },
        )
        with trace.use_span(span, end_on_exit=True, record_exception=False, set_status_on_exception=False):
            await self._call_and_compare(lane, job, span)

    async def _call_and_compare(self, lane: _Lane, job: ShadowJob, span: Any) -> None:
        plan, settings = job.plan, job.plan.settings
        intent = self._intent(job)
        key = self._key(job, intent)
        samples = settings.mismatch_samples
        self.stats.offered(key, samples, skipped=False)
        if span is not None:
            span.set_attribute("turnout.intent", intent)
        started = perf_counter()
        try:
            if job.engine is None:
                raise TurnoutError(f"shadow engine {plan.engine!r} is not registered")
            result = await self._call(lane, job.engine, job, settings.timeout_ms / 1000)
        except _Deadline as late:
            self.stats.failed(key, samples, None)
            if span is not None:
                span.set_status(StatusCode.ERROR, f"no result within {settings.timeout_ms:g} ms")
            if late.thread is not None:
                # A sync call past its deadline keeps its slot until its thread is free, so the
                # bound on calls running at once stays true.
                await asyncio.wait([late.thread])
            return
        except Exception as exc:
            self.stats.failed(key, samples, type(exc).__name__)
            self._failures.record(f"shadow.{plan.engine}", exc, flag=plan.flag)
            if span is not None:
                self._tracing.record_error(span, exc)
            return
        shadow_ms = (perf_counter() - started) * 1000.0
        try:
            answer = plan.comparator(job.served, result)
            if inspect.isawaitable(answer):
                answer = await answer
            verdict = agreement(answer, settings.match_score)
        except Exception as exc:
            self.stats.failed(key, samples, f"comparator:{type(exc).__name__}")
            self._failures.record(f"shadow.comparator.{settings.comparator}", exc, flag=plan.flag)
            return
        sample = (
            None if verdict.match or samples <= 0 else self._sample(job, result, verdict.score, shadow_ms)
        )
        self.stats.compared(
            key,
            samples,
            match=verdict.match,
            score=verdict.score,
            served_ms=job.served_ms,
            shadow_ms=shadow_ms,
            sample=sample,
        )
        if span is not None:
            span.set_attributes(
                {"turnout.shadow.match": verdict.match, "turnout.shadow.score": verdict.score}
            )

    async def _call(self, lane: _Lane, engine: Engine, job: ShadowJob, timeout_s: float) -> Any:
        """The engine's own callable (not its breaker or metrics), under the shadow's deadline."""
        deadline = asyncio.timeout(timeout_s)
        if engine.is_async:
            try:
                async with deadline:
                    result = await engine.func(*job.args, **job.kwargs)
                    if inspect.isawaitable(result):
                        result = await result
                    return result
            except TimeoutError:
                if deadline.expired():
                    raise _Deadline(None) from None
                raise
        # A sync engine runs in the shadow's own threads, never in the pool served calls use.
        call = functools.partial(engine.func, *job.args, **job.kwargs)
        future = asyncio.get_running_loop().run_in_executor(
            self._pool(lane, job.plan.settings.max_concurrency), contextvars.copy_context().run, call
        )
        try:
            async with deadline:
                result = await asyncio.shield(future)
        except TimeoutError:
            if deadline.expired():
                raise _Deadline(future) from None
            raise
        if inspect.isawaitable(result):
            result = await result
        return result

    def _pool(self, lane: _Lane, size: int) -> concurrent.futures.ThreadPoolExecutor:
        with lane.lock:
            if lane.pool is None:
                lane.pool = concurrent.futures.ThreadPoolExecutor(size, thread_name_prefix="turnout-shadow")
            return lane.pool

    def _intent(self, job: ShadowJob) -> str:
        known = job.context.intent
        return (known if known is not None else self._classify(job.context.text)).label

    @staticmethod
    def _key(job: ShadowJob, intent: str) -> SeriesKey:
        return (job.plan.flag, job.decision.engine or job.decision.variant, job.plan.engine, intent)

    @staticmethod
    def _sample(job: ShadowJob, result: Any, score: float, shadow_ms: float) -> dict[str, Any]:
        settings = job.plan.settings
        limit = settings.sample_chars
        sample: dict[str, Any] = {
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "score": round(score, 6),
            "variant": job.decision.variant,
            "rule": job.decision.rule,
            "served_ms": round(job.served_ms, 3),
            "shadow_ms": round(shadow_ms, 3),
        }
        if settings.sample_inputs:
            sample["input"] = sample_text(_arguments(job.args, job.kwargs), limit)
        sample["served"] = sample_text(job.served, limit)
        sample["shadow"] = sample_text(result, limit)
        return sample


class _Deadline(Exception):
    """The shadow's own timeout expired (not a TimeoutError the engine raised)."""

    def __init__(self, thread: asyncio.Future[Any] | None) -> None:
        super().__init__()
        self.thread = thread


def defer_shadows() -> tuple[list[ShadowJob], contextvars.Token[list[ShadowJob] | None]]:
    """Hold the shadows of the current request until `ShadowRunner.start` (the middleware's job)."""
    pending: list[ShadowJob] = []
    return pending, _deferred.set(pending)


def stop_deferring(token: contextvars.Token[list[ShadowJob] | None]) -> None:
    """Undo `defer_shadows`."""
    _deferred.reset(token)


def sample_text(value: Any, limit: int) -> str:
    """`value` as text for a mismatch sample: secrets masked (by key name and by shape), cut to `limit`."""
    try:
        masked = redact_value(value)
        text = masked if isinstance(masked, str) else repr(masked)
    except Exception:
        text = f"<{type(value).__name__}: unprintable>"
    text = redact_text(text[: limit * 2])  # before cutting, which could split a URL's credentials
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def _arguments(args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
    if len(args) == 1 and not kwargs:
        return args[0]
    return {"args": list(args), **dict(kwargs)}


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class _BackgroundLoop:
    """An event loop on a daemon thread, for shadows of calls made from code with no loop."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="turnout-shadow-loop", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self.loop.close()
