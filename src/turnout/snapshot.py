"""The compiled, immutable view of one configuration, and how it is built from config data.

`Turnout` swaps one `Snapshot` for another on reload; a request keeps the one it started with.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from turnout.comparators import Comparator
from turnout.config import TurnoutConfig
from turnout.decision import Decision, Reason
from turnout.engines import EngineSet, build_engine_set
from turnout.errors import ConfigError, ConfigIssue, redact
from turnout.events import EventTracker
from turnout.events.sinks import EventSink
from turnout.events.tracker import SinkConfigError
from turnout.failures import Failures
from turnout.flags import CompiledFlag, Gates, compile_flags
from turnout.intent.signal import classifier_key, configured_classifier
from turnout.shadow import NO_SHADOWS, ShadowPlans, compile_shadows, unsafe_shadows
from turnout.telemetry.hub import Telemetry, check_exporters
from turnout.types import Classifier, Clock, EngineCallable


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Compiled flags, engines and classifier of one configuration."""

    config: TurnoutConfig
    flags: dict[str, CompiledFlag]
    engines: EngineSet
    source: str | None
    classifier: Classifier
    classifier_key: tuple[Any, ...] = ()
    retired: Mapping[str, Decision] = field(default_factory=dict)
    """The last default of every flag an earlier config declared and this one does not."""
    shadows: ShadowPlans = NO_SHADOWS

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


@dataclass(frozen=True, slots=True)
class Builder:
    """What a build needs besides the config: engines registered in code, telemetry, the clock."""

    code_engines: Mapping[str, tuple[EngineCallable, str | None]]
    explicit_classifier: Classifier | None
    failures: Failures
    telemetry: Telemetry
    clock: Clock
    gates: Gates = field(default_factory=dict)
    """Where guarded rules stand, shared by every build so a reload keeps them."""
    comparators: Mapping[str, Comparator] = field(default_factory=dict)
    shadow_unsafe: AbstractSet[str] = frozenset()

    def build(self, config: TurnoutConfig, source: str | None, previous: Snapshot | None) -> Snapshot:
        """Compile `config`; anything that cannot be built is one ConfigError naming its path."""
        problems = check_exporters(config.telemetry, config.plugins)
        if problems:
            raise ConfigError(
                [ConfigIssue(f"telemetry.exporters[{i}]", name, message) for i, name, message in problems]
            )
        flags = compile_flags(config, self.failures, self.gates)
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
        return Snapshot(
            config, flags, engines, source, classifier, key, retired_flags(flags, previous), shadows
        )

    def engines(self, config: TurnoutConfig, previous: Snapshot | None) -> EngineSet:
        """The engines for `config` (breakers and pools carried over from `previous`)."""
        return build_engine_set(
            config,
            self.code_engines,
            failures=self.failures,
            telemetry=self.telemetry,
            clock=self.clock,
            previous=previous.engines if previous is not None else None,
            shadow_unsafe=self.shadow_unsafe,
        )


def retired_flags(flags: Mapping[str, CompiledFlag], previous: Snapshot | None) -> dict[str, Decision]:
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
