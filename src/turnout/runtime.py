"""The runtime: one configuration compiled, deciding flags and running the engines they choose.

`Turnout` builds a `Runtime` from each configuration and swaps it atomically on reload. A request
keeps the runtime it started with: `bind()` pins the decision and the engines that serve it, so a
reload while the engine runs changes nothing for that request. Deciding and running are here and
only here; `Turnout` registers engines, reloads and runs the background loops.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any, Protocol

from turnout.comparators import Comparator
from turnout.config import TurnoutConfig
from turnout.context import RoutingContext, use_context
from turnout.decision import Decision, Reason
from turnout.engines import Engine, EngineSet, build_engine_set
from turnout.errors import ConfigError, ConfigIssue, UnknownFlagError, redact
from turnout.events import EventTracker
from turnout.events.sinks import EventSink
from turnout.events.tracker import SinkConfigError
from turnout.failures import Failures
from turnout.flags import CompiledFlag, Gates, IntentAttributes, compile_flags
from turnout.intent.signal import classifier_key, configured_classifier
from turnout.shadow import NO_SHADOWS, ShadowPlan, ShadowPlans, ShadowRunner, compile_shadows, unsafe_shadows
from turnout.telemetry.hub import Telemetry, check_exporters
from turnout.types import Classifier, Clock, EngineCallable

DecisionListener = Callable[[Decision, RoutingContext], object]
"""Called with every decision a runtime makes (see `turnout.testing.capture_decisions`)."""


@dataclass(slots=True)
class Services:
    """What every runtime of one `Turnout` shares: telemetry, events, shadows, the clock."""

    telemetry: Telemetry
    failures: Failures
    clock: Clock
    shadows: ShadowRunner
    intent: IntentAttributes
    """The context's attributes with its (lazily classified) intent, for intent rules."""
    events: EventTracker | None = None
    first_decision: Callable[[Runtime], None] | None = None
    """Called once, at the first decision of an app that was never started."""
    listeners: tuple[DecisionListener, ...] = ()


@dataclass(frozen=True, slots=True)
class Runtime:
    """Compiled flags, engines, shadows and classifier of one configuration; decides and binds."""

    config: TurnoutConfig
    flags: dict[str, CompiledFlag]
    engines: EngineSet
    services: Services
    source: str | None
    classifier: Classifier
    classifier_key: tuple[Any, ...] = ()
    retired: Mapping[str, Decision] = field(default_factory=dict)
    """The last default of every flag an earlier config declared and this one does not."""
    shadows: ShadowPlans = NO_SHADOWS

    # -- deciding ------------------------------------------------------------------------

    def decide(self, flag: str, context: RoutingContext) -> Decision:
        """Evaluate `flag` for `context`, count it, record its exposure. Never raises."""
        services = self.services
        if services.first_decision is not None:
            services.first_decision(self)
        compiled = self.flags.get(flag)
        if compiled is None:
            return self._unknown_flag(flag, context)
        telemetry = services.telemetry
        started = perf_counter()
        try:
            decision = compiled.evaluate(context, services.clock, services.intent)
        except Exception as exc:
            services.failures.record("decide", exc, flag=flag)
            decision = compiled.error(telemetry.tracing.privacy.error_text(exc))
        elapsed_ms = (perf_counter() - started) * 1000.0
        telemetry.metrics.record("decide", elapsed_ms, decision.reason is not Reason.ERROR)
        telemetry.tracing.record_evaluation(decision, context.targeting_key)
        telemetry.decisions.count(flag, decision.reason)
        if decision.experiment is not None:
            telemetry.metrics.expose(decision.experiment, flag, decision.variant)
            if services.events is not None:
                services.events.exposure(decision, context=context)
        context.decisions[flag] = decision
        for listener in services.listeners:
            listener(decision, context)
        return decision

    def _unknown_flag(self, flag: str, context: RoutingContext) -> Decision:
        # Counted and logged once per process; the request is served by the flag's last
        # default (a reload removed it) or `routing.default_engine`, never by "no engine".
        services = self.services
        services.failures.record("decide", UnknownFlagError(flag), flag=flag)
        services.telemetry.metrics.record("decide", 0.0, False, "UnknownFlagError")
        services.telemetry.decisions.count(flag, Reason.ERROR)
        decision = self.fallback_decision(flag) or Decision(
            flag, "", None, Reason.ERROR, error=f"unknown flag {flag!r}"
        )
        if decision.engine is not None:
            context.decisions[flag] = decision
        for listener in services.listeners:
            listener(decision, context)
        return decision

    def default_of(self, decision: Decision) -> Decision:
        """The flag default's decision (for a variant whose engine is missing)."""
        compiled = self.flags.get(decision.flag)
        if compiled is not None:
            return compiled.default
        return self.retired.get(decision.flag) or self.fallback_decision(decision.flag) or decision

    def fallback_decision(self, flag: str) -> Decision | None:
        """What serves `flag` when the config does not declare it: its last default, else
        `routing.default_engine`; None when neither exists. Reason ERROR either way."""
        known = self.retired.get(flag)
        if known is not None:
            return known._replace(reason=Reason.ERROR, error=f"flag {flag!r} is not in the configuration")
        engine = self.config.routing.default_engine
        if engine is None:
            return None
        return Decision(
            flag, engine, engine, Reason.ERROR, error=f"flag {flag!r} is not in the configuration"
        )

    # -- running -------------------------------------------------------------------------

    def bind(self, flag: str, context: RoutingContext, *, sync: bool = False) -> BoundEngine:
        """Decide `flag` and bind the chosen engine to this runtime."""
        return (SyncBoundEngine if sync else BoundEngine)(self, context, self.decide(flag, context))


class _HasRuntime(Protocol):
    @property
    def runtime(self) -> Runtime: ...


class BoundEngine:
    """The engine a decision chose, ready to call: `await engine(...)` runs it with fallback.

    Bound to the runtime the decision was made with: a reload while the request runs does not
    change which engines serve it.
    """

    __slots__ = ("context", "decision", "runtime")

    def __init__(self, owner: Runtime | _HasRuntime, context: RoutingContext, decision: Decision) -> None:
        self.runtime = owner if isinstance(owner, Runtime) else owner.runtime
        self.context = context
        self.decision = decision

    @property
    def name(self) -> str | None:
        """The engine's name (the variant, for engine flags)."""
        return self.decision.engine

    @property
    def variant(self) -> str:
        """The variant the flag served."""
        return self.decision.variant

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        call = _Call(self.runtime, self.decision, self.context)
        with use_context(self.context):
            outcome = await self.runtime.engines.arun(call.engine, call.decision, args, kwargs)
        return call.finish(outcome, args, kwargs)

    def call_sync(self, *args: Any, **kwargs: Any) -> Any:
        """Run a sync engine from sync code."""
        call = _Call(self.runtime, self.decision, self.context)
        with use_context(self.context):
            outcome = self.runtime.engines.run(call.engine, call.decision, args, kwargs)
        return call.finish(outcome, args, kwargs)

    def __repr__(self) -> str:
        return f"<BoundEngine {self.decision.flag}={self.decision.variant} engine={self.name!r}>"


class SyncBoundEngine(BoundEngine):
    """The engine injected into sync handlers: calling it runs the (sync) engine directly."""

    __slots__ = ()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.call_sync(*args, **kwargs)


class _Call:
    """One call of a bound engine, around the attempt loop: which engine, which shadow, what after."""

    __slots__ = ("context", "decision", "engine", "runtime", "shadow", "started")

    def __init__(self, runtime: Runtime, decision: Decision, context: RoutingContext) -> None:
        self.runtime = runtime
        self.context = context
        self.engine, self.decision = runtime.engines.resolve(decision, runtime.default_of)
        self.shadow: ShadowPlan | None = (
            runtime.shadows.plan(self.decision, context) if runtime.shadows.plans else None
        )
        self.started = perf_counter() if self.shadow is not None else 0.0

    def finish(self, outcome: tuple[Any, Decision], args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        """Keep the decision that served (a fallback's, maybe) and hand the call to its shadow."""
        result, final = outcome
        self.context.decisions[final.flag] = final
        if self.shadow is not None:
            served_ms = (perf_counter() - self.started) * 1000.0
            runtime = self.runtime
            runtime.services.shadows.offer(
                self.shadow, runtime.engines, self.context, args, kwargs, result, served_ms, final
            )
        return result


# -- building --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Builder:
    """What a build needs besides the config: engines registered in code, the shared services."""

    code_engines: Mapping[str, tuple[EngineCallable, str | None]]
    explicit_classifier: Classifier | None
    services: Services
    gates: Gates = field(default_factory=dict)
    """Where guarded rules stand, shared by every build so a reload keeps them."""
    comparators: Mapping[str, Comparator] = field(default_factory=dict)
    shadow_unsafe: AbstractSet[str] = frozenset()
    aliases: Callable[[TurnoutConfig, Mapping[str, Engine], Clock], Mapping[str, Engine]] | None = None
    """Engines for `name@tag` variants (the engine registry), added to the config's own."""

    def build(self, config: TurnoutConfig, source: str | None, previous: Runtime | None) -> Runtime:
        """Compile `config`; anything that cannot be built is one ConfigError naming its path."""
        problems = check_exporters(config.telemetry, config.plugins)
        if problems:
            raise ConfigError(
                [ConfigIssue(f"telemetry.exporters[{i}]", name, message) for i, name, message in problems]
            )
        services = self.services
        flags = compile_flags(config, services.failures, self.gates)
        shadows, issues = compile_shadows(config, self.comparators)
        if issues:
            raise ConfigError(issues)
        key = classifier_key(config)
        if self.explicit_classifier is not None:
            classifier = self.explicit_classifier
        elif previous is not None and previous.classifier_key == key:
            classifier = previous.classifier  # loaded again only when its config or file changed
        else:
            classifier = configured_classifier(config)
        engines = self.engines(config, previous)
        issues = unsafe_shadows(shadows, engines)
        if issues:
            raise ConfigError(issues)
        retired = retired_flags(flags, previous)
        return Runtime(config, flags, engines, services, source, classifier, key, retired, shadows)

    def engines(self, config: TurnoutConfig, previous: Runtime | None) -> EngineSet:
        """The engines for `config` (breakers and pools carried over from `previous`)."""
        services = self.services
        engines = build_engine_set(
            config,
            self.code_engines,
            failures=services.failures,
            telemetry=services.telemetry,
            clock=services.clock,
            previous=previous.engines if previous is not None else None,
            shadow_unsafe=self.shadow_unsafe,
        )
        if self.aliases is not None:
            engines.engines.update(self.aliases(config, engines.engines, services.clock))
        return engines


def retired_flags(flags: Mapping[str, CompiledFlag], previous: Runtime | None) -> dict[str, Decision]:
    """Defaults of flags that `previous` knew (declared or retired) and `flags` no longer declares.

    A request may still name such a flag after a reload removed it: it gets the default it
    had, not an engine called None.
    """
    if previous is None:
        return {}
    retired = {key: d for key, d in previous.retired.items() if key not in flags}
    for key, compiled in previous.flags.items():
        if key not in flags:
            retired[key] = compiled.default
    return retired


def event_tracker(
    config: TurnoutConfig, sinks: Sequence[EventSink] | None, failures: Failures
) -> EventTracker:
    """The tracker for `config.events` (or for `sinks` given in code); a bad sink is a ConfigError."""
    if sinks is not None:
        return EventTracker(list(sinks), config.events, failures=failures)
    try:
        return EventTracker.from_config(config.events, plugins=config.plugins, failures=failures)
    except SinkConfigError as exc:
        raise ConfigError([ConfigIssue(exc.path, redact(exc.url), redact(str(exc)))]) from None


def needs_restart(previous: TurnoutConfig, new: TurnoutConfig) -> list[str]:
    """Settings a reload cannot apply to loops already running (exporters, interval, events, state)."""
    old_t, new_t = previous.telemetry, new.telemetry
    return [
        name
        for name, changed in (
            ("telemetry.exporters", old_t.exporters != new_t.exporters),
            ("telemetry.snapshot_interval_s", old_t.snapshot_interval_s != new_t.snapshot_interval_s),
            ("telemetry.jsonl_path", old_t.jsonl_path != new_t.jsonl_path),
            ("events", previous.events != new.events),
            ("state", previous.state != new.state),
            ("rollouts", previous.rollouts != new.rollouts),
        )
        if changed
    ]
