"""`Turnout`: registration, reload, lifecycle and the public face over the runtime in force."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextvars import ContextVar, Token
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import structlog

from turnout.config import TurnoutConfig, load_file, validate_config
from turnout.context import RoutingContext, UsingContext, current_context, use_context
from turnout.decision import Decision
from turnout.engines import Engine
from turnout.environment import apply_environment
from turnout.errors import ConfigError, TurnoutError
from turnout.failures import Failures
from turnout.intent.signal import classify
from turnout.overlays import Overlays
from turnout.privacy import Privacy
from turnout.redact import redact_text
from turnout.references import attribute_issues, fallback_issues, shadow_issues, variant_issues
from turnout.registry import NAMESPACE as REGISTRY_NAMESPACE
from turnout.registry import Registry
from turnout.rollouts import Rollouts
from turnout.runtime import (
    BoundEngine,
    Builder,
    DecisionListener,
    Runtime,
    Services,
    event_tracker,
    needs_restart,
)
from turnout.shadow import ShadowRunner, unsafe_shadows
from turnout.telemetry.hub import Telemetry
from turnout.telemetry.metrics import Measure, MetricsRegistry
from turnout.types import ASGIApp, Classifier, Clock, EngineCallable, Intent
from turnout.watch import FileWatcher

if TYPE_CHECKING:
    from datetime import datetime

    from opentelemetry.trace import TracerProvider
    from starlette.applications import Starlette

    from turnout.comparators import Comparator
    from turnout.events.sinks import EventSink
    from turnout.telemetry.exporters import Exporter

F = TypeVar("F", bound=EngineCallable)
_log = structlog.get_logger("turnout")
_running: ContextVar[Turnout | None] = ContextVar("turnout_running", default=None)


def running_turnout() -> Turnout | None:
    """The `Turnout` serving the current request (set by its middleware or `Turnout.serving`)."""
    return _running.get()


class Turnout:
    """The application object: decides which engine serves a request, and runs it."""

    def __init__(
        self,
        config: TurnoutConfig | Mapping[str, Any] | None = None,
        *,
        clock: Clock = time.time,
        classifier: Classifier | None = None,
        path: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        watch: bool = False,
        watch_interval_s: float = 2.0,
        tracer_provider: TracerProvider | None = None,
        exporters: Sequence[Exporter] = (),
        event_sinks: Sequence[EventSink] | None = None,
        comparators: Mapping[str, Comparator] | None = None,
    ) -> None:
        from turnout import __version__

        self.failures = Failures()
        self.telemetry = Telemetry(
            self.failures, tracer_provider=tracer_provider, exporters=exporters, version=__version__
        )
        self._clock = clock
        self._code_engines: dict[str, tuple[EngineCallable, str | None]] = {}
        # Admin changes and the engine registry live in the state store; both are read before
        # the first build so a new process starts with what the other replicas serve.
        self.overlays = Overlays(self.failures, clock, mirror=(REGISTRY_NAMESPACE,))
        self.registry = Registry(
            self.overlays.store,
            clock=clock,
            cached=lambda: self.overlays.mirrored.get(REGISTRY_NAMESPACE, {}),
            failures=self.failures,
        )
        self._shadow_unsafe: set[str] = set()
        self.shadows = ShadowRunner(
            self.telemetry.shadows, self.failures, self.telemetry.tracing, self.classify
        )
        # Engines registered in code are known once the app starts or first decides; until
        # then a fallback may name one that is not registered yet.
        self._services = Services(
            self.telemetry,
            self.failures,
            clock,
            self.shadows,
            self._intent_view,
            first_decision=self._engines_now_known,
        )
        self._builder = Builder(
            self._code_engines,
            classifier,
            self._services,
            comparators=dict(comparators or {}),
            shadow_unsafe=self._shadow_unsafe,
            aliases=self.registry.tagged_engines,
        )
        self._path = Path(path) if path is not None else None
        self._env = env
        self._watcher = (
            FileWatcher(
                self._path,
                lambda: self.reload(),  # noqa: PLW0108 - late binding: reload may be replaced
                interval_s=watch_interval_s,
                failures=self.failures,
            )
            if watch and self._path is not None
            else None
        )
        self._reload_listeners: list[Callable[[TurnoutConfig], object]] = []
        self._base = self._validate(config if config is not None else {})
        self._runtime = self._build(self.overlays.apply(self._base), str(path) if path else None)
        self.overlays.on_change = self._reapply
        self.registry.on_change = self.overlays.reread
        self.events = self._services.events = event_tracker(self._runtime.config, event_sinks, self.failures)
        self._apply_privacy(self._runtime.config)
        self.rollouts = Rollouts(
            self._builder.gates,
            lambda: self._runtime.config,
            self.telemetry.metrics,
            clock=clock,
            failures=self.failures,
        )
        self.rollouts.load()

    @classmethod
    def from_file(cls, path: str | Path, *, env: Mapping[str, str] | None = None, **kwargs: Any) -> Turnout:
        """Load a TOML or JSON file; the environment (`os.environ` by default) overrides it."""
        return cls(load_file(path), path=path, env=os.environ if env is None else env, **kwargs)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **kwargs: Any) -> Turnout:
        """Configure from the environment alone (`TURNOUT_CONFIG` may name a file to start from)."""
        environ = os.environ if env is None else env
        if environ.get("TURNOUT_CONFIG"):
            return cls.from_file(environ["TURNOUT_CONFIG"], env=environ, **kwargs)
        return cls({}, env=environ, **kwargs)

    # -- configuration -------------------------------------------------------------------

    @property
    def config(self) -> TurnoutConfig:
        """The configuration in force."""
        return self._runtime.config

    @property
    def runtime(self) -> Runtime:
        """The compiled configuration in force: flags, engines, shadows (swapped on reload)."""
        return self._runtime

    def _validate(
        self, config: TurnoutConfig | Mapping[str, Any], source: str | None = None
    ) -> TurnoutConfig:
        if isinstance(config, TurnoutConfig):
            return config
        # Only `from_file`/`from_env` (or an explicit `env=`) read the environment: a config
        # built in code means what it says.
        return validate_config(
            apply_environment(config, self._env or {}),
            source=source or (str(self._path) if self._path else None),
        )

    def _build(self, config: TurnoutConfig, source: str | None) -> Runtime:
        runtime = self._builder.build(config, source, getattr(self, "_runtime", None))
        if self._services.first_decision is None:  # engines are known: check what names them
            self._check_fallbacks(runtime)
        for issue in attribute_issues(config):
            _log.warning("turnout.attribute_unprovided", setting=issue.path, note=issue.message)
        return runtime

    def _check_fallbacks(self, runtime: Runtime) -> None:
        """Raise a ConfigError for each fallback or shadow naming an engine not declared nor registered."""
        engines = runtime.engines.engines
        issues = fallback_issues(runtime.config, engines) + shadow_issues(runtime.config, engines)
        if issues:
            raise ConfigError(issues, source=runtime.source)

    def _engines_now_known(self, runtime: Runtime) -> None:
        """At the first decision of an app never started: report fallbacks to missing engines."""
        self._services.first_decision = None
        try:
            self._check_fallbacks(runtime)
        except ConfigError as exc:
            # A decision never raises: the request is served, the problem logged once and counted.
            self.failures.record("config", exc)

    def reload(self, config: TurnoutConfig | Mapping[str, Any] | str | Path | None = None) -> TurnoutConfig:
        """Swap in a new config atomically; if it does not validate, the old one stays and this raises."""
        source: str | None
        try:
            if config is None and self._path is None:
                raise TurnoutError("reload() needs a config: this Turnout was not loaded from a file")
            if config is None or isinstance(config, str | Path):
                path = Path(config) if config is not None else self._path
                source = str(path)
                data: TurnoutConfig | Mapping[str, Any] = load_file(path)  # type: ignore[arg-type]
            else:
                source, data = None, config
            base = self._validate(data, source)
            runtime = self._build(self.overlays.apply(base), source)
        except (ConfigError, TurnoutError) as exc:
            self.failures.record("config.reload", exc, log=False)  # logged just below, every time
            _log.error(
                "turnout.reload_failed",
                error=redact_text(str(exc)),
                note="the previous configuration stays in force",
            )
            raise
        dropped = sorted(set(self._runtime.flags) - set(runtime.flags))
        self._base = base
        previous, self._runtime = self._runtime.config, runtime
        if dropped:
            _log.warning(
                "turnout.reload_dropped_flags",
                flags=dropped,
                note="requests that still name them get their last default (reason ERROR)",
            )
        # Health thresholds apply at once; running loops keep their exporters, sinks and intervals.
        self.telemetry.config = runtime.config.telemetry
        self._apply_privacy(runtime.config)
        later = needs_restart(previous, runtime.config)
        if later:
            _log.warning(
                "turnout.reload_needs_restart",
                settings=later,
                note="these settings take effect when the app restarts",
            )
        _log.info("turnout.reloaded", source=source, flags=sorted(runtime.flags))
        for listener in tuple(self._reload_listeners):
            try:
                listener(runtime.config)
            except Exception as exc:
                self.failures.record("reload.listener", exc)
        return runtime.config

    def _reapply(self) -> None:
        """Rebuild from the same file config after an admin overlay or the registry changed."""
        # A failure is logged and counted by reload; the config in force stays.
        with contextlib.suppress(ConfigError, TurnoutError):
            self.reload(self._base)

    def on_reload(self, listener: Callable[[TurnoutConfig], object]) -> Callable[[], None]:
        """Call `listener(config)` after every successful reload; returns a function that removes it.

        A listener that raises is logged once and counted; the reload stands.
        """
        self._reload_listeners.append(listener)

        def remove() -> None:
            if listener in self._reload_listeners:
                self._reload_listeners.remove(listener)

        return remove

    def _apply_privacy(self, config: TurnoutConfig) -> None:
        """Hand the privacy settings to every part that writes spans, logs or events."""
        privacy = Privacy(config.privacy)
        self.telemetry.tracing.privacy = privacy
        self.events.privacy = privacy
        self.failures.exception_text = config.privacy.exception_text
        self.failures.exception_text_length = config.privacy.exception_text_length

    # -- events --------------------------------------------------------------------------

    def track(
        self,
        event: str,
        distinct_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        timestamp: datetime | float | None = None,
    ) -> bool:
        """Queue a business event; never blocks or raises. `distinct_id` defaults to the request's user."""
        return self.events.track(event, distinct_id, properties, timestamp)

    def record(self, name: str, value: float, *, flag: str | None = None) -> bool:
        """Record a per-request value (cost, tokens, quality) for the variant serving this request.

        Reports compare it per user like any metric (`[metrics.NAME] type = "mean"`); guardrail checks
        on `name` read it per request. Never raises.
        """
        recorded = self.events.record(name, value, flag=flag)
        context = current_context()
        if context is not None:
            self.rollouts.record(name, value, context.decisions.values(), flag=flag)
        return recorded

    def identify(self, distinct_id: str, traits: Mapping[str, Any] | None = None) -> bool:
        """Queue an `$identify` event setting `traits` on `distinct_id`."""
        return self.events.identify(distinct_id, traits)

    # -- engines -------------------------------------------------------------------------

    def engine(self, name: str, *, version: str | None = None, shadow_safe: bool = True) -> Callable[[F], F]:
        """Decorator: register the function as engine `name`."""

        def register(func: F) -> F:
            self.add_engine(name, func, version=version, shadow_safe=shadow_safe)
            return func

        return register

    def add_engine(
        self, name: str, engine: EngineCallable, *, version: str | None = None, shadow_safe: bool = True
    ) -> None:
        """Register a sync or async callable as engine `name` (config settings for it apply).

        `shadow_safe=False` marks an engine with side effects: a config naming it as a shadow is refused.
        """
        if not callable(engine):
            raise TypeError(f"engine {name!r} must be callable, got {type(engine).__name__}")
        before = self._code_engines.get(name), name in self._shadow_unsafe
        self._code_engines[name] = (engine, version)
        if shadow_safe:
            self._shadow_unsafe.discard(name)
        else:
            self._shadow_unsafe.add(name)
        runtime = self._runtime
        try:
            engines = self._builder.engines(runtime.config, runtime)
            issues = unsafe_shadows(runtime.shadows, engines)
            if issues:
                raise ConfigError(issues)
        except BaseException:
            self._restore_engine(name, *before)
            raise
        self._runtime = dataclasses.replace(runtime, engines=engines)

    def _restore_engine(
        self, name: str, registered: tuple[EngineCallable, str | None] | None, unsafe: bool
    ) -> None:
        if registered is None:
            self._code_engines.pop(name, None)
        else:
            self._code_engines[name] = registered
        if unsafe:
            self._shadow_unsafe.add(name)
        else:
            self._shadow_unsafe.discard(name)

    @property
    def shadowing(self) -> bool:
        """Whether the configuration in force runs any shadow engine."""
        return bool(self._runtime.shadows.plans)

    @property
    def engines(self) -> Mapping[str, Engine]:
        """The engines available now, by name."""
        return self._runtime.engines.engines

    # -- deciding and running ------------------------------------------------------------

    def decide(self, flag: str, context: RoutingContext | None = None) -> Decision:
        """Evaluate `flag` for `context` (the current request's by default). Never raises."""
        return self._runtime.decide(flag, context or current_context() or RoutingContext(""))

    def bind(self, flag: str, context: RoutingContext, *, sync: bool = False) -> BoundEngine:
        """Decide `flag` and bind the chosen engine, pinned to the config in force now.

        A reload while the request runs does not change which engines serve it.
        """
        return self._runtime.bind(flag, context, sync=sync)

    async def run(self, flag: str, *args: Any, context: RoutingContext | None = None, **kwargs: Any) -> Any:
        """Decide `flag` (or reuse this request's decision) and run the chosen engine."""
        ctx = context or current_context() or RoutingContext("")
        runtime = self._runtime
        decision = ctx.decisions.get(flag) or runtime.decide(flag, ctx)
        return await BoundEngine(runtime, ctx, decision)(*args, **kwargs)

    def serving(self, context: RoutingContext) -> Serving:
        """Make this Turnout and `context` current in the block, as the middleware does per request.

        Inside it `@experiment` functions find both without being passed them.
        """
        return Serving(self, context)

    def add_decision_listener(self, listener: DecisionListener) -> Callable[[], None]:
        """Call `listener(decision, context)` after every decision; returns a function that removes it.

        For tests and debugging (`turnout.testing.capture_decisions`): a listener runs on the
        request path, so it must be quick, and one that raises fails the decision's caller.
        """
        services = self._services
        services.listeners = (*services.listeners, listener)

        def remove() -> None:
            services.listeners = tuple(known for known in services.listeners if known is not listener)

        return remove

    def _intent_view(self, ctx: RoutingContext) -> Mapping[str, Any]:
        view = ctx.intent_view
        if view is None:
            if ctx.intent is None:
                ctx.intent = self.classify(ctx.text)
            view = ctx.intent_view = {
                **ctx.attributes,
                "intent": ctx.intent.label,
                "intent_confidence": ctx.intent.confidence,
            }
        return view

    def classify(self, text: str | None) -> Intent:
        """The intent of `text`; any classifier failure gives `unknown` (counted, logged once)."""
        runtime = self._runtime
        return classify(
            runtime.classifier,
            runtime.config.intent,
            text,
            telemetry=self.telemetry,
            failures=self.failures,
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start background work (config watching, guardrail checks); check the engines the config names.

        A fallback naming an engine neither declared nor registered in code raises `ConfigError`;
        a variant with no engine is a warning (its requests get the default engine).
        """
        runtime = self._runtime
        self._check_fallbacks(runtime)
        self._services.first_decision = None
        for issue in variant_issues(runtime.config, runtime.engines.engines):
            _log.warning(
                "turnout.engines_missing", setting=issue.path, variants=issue.value, note=issue.message
            )
        try:
            if self._watcher is not None:
                self._watcher.start()
            await self.telemetry.start(runtime.config.telemetry, runtime.config.plugins)
            await self.events.start()
            await self.rollouts.start()
            await self.overlays.start()
        except BaseException:
            await self.stop()  # leave no watcher or loop running behind a failed startup
            raise

    async def stop(self) -> None:
        """Stop background work; shadow calls get up to their timeout, exporters a final snapshot."""
        if self._watcher is not None:
            await self._watcher.stop()
        await self.overlays.stop()
        await self.rollouts.stop()
        await self.shadows.drain(self._runtime.shadows.longest_timeout_s + 1.0)
        self.shadows.close()
        await self.events.stop()
        await self.telemetry.stop()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[dict[str, Any]]:
        """Starlette/FastAPI `lifespan=`: start on startup, stop on shutdown."""
        await self.start()
        try:
            yield {"turnout": self}
        finally:
            await self.stop()

    # -- telemetry -----------------------------------------------------------------------

    @property
    def metrics(self) -> MetricsRegistry:
        """Per-component and per-variant request metrics."""
        return self.telemetry.metrics

    def measure(self, component: str) -> Measure:
        """Record latency and success of a block or function as `component` (`with` or decorator)."""
        return self.telemetry.metrics.measure(component)

    def metrics_app(self) -> ASGIApp:
        """Prometheus' endpoint as an ASGI app: `app.add_route("/metrics", turnout.metrics_app())`."""
        return self.telemetry.metrics_app()

    # -- faces ---------------------------------------------------------------------------

    def admin_app(self, **options: Any) -> Starlette:
        """The admin HTTP API of this Turnout: `app.mount("/admin", turnout.admin_app())`."""
        from turnout.admin import admin_app

        return admin_app(self, **options)

    def experiment(self, flag: str, **options: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        """`@experiment(flag)` bound to this Turnout."""
        from turnout.decorators import experiment

        return experiment(flag, turnout=self, **options)

    def ofrep_app(self, *, tokens: Mapping[str, str] | None = None) -> ASGIApp:
        """The OpenFeature remote evaluation endpoints (OFREP) as an ASGI app to mount or serve."""
        from turnout.ofrep import ofrep_app

        return ofrep_app(self, tokens=tokens)

    def choose(self, flag: str) -> Callable[..., Any]:
        """A FastAPI dependency giving the chosen engine: `Depends(turnout.choose(flag))`."""
        from turnout.fastapi import choose

        return choose(self, flag)


class Serving:
    """`Turnout.serving(context)`: this Turnout and the context current for the block."""

    __slots__ = ("_token", "_using", "turnout")

    def __init__(self, turnout: Turnout, context: RoutingContext) -> None:
        self.turnout = turnout
        self._using: UsingContext = use_context(context)
        self._token: Token[Turnout | None] | None = None

    def __enter__(self) -> RoutingContext:
        self._token = _running.set(self.turnout)
        return self._using.__enter__()

    def __exit__(self, *exc: object) -> None:
        self._using.__exit__()
        if self._token is not None:
            _running.reset(self._token)
            self._token = None
