"""Flags compiled once from config; evaluation reads only precomputed structures."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

from turnout.conditions import CompiledCondition, compile_condition
from turnout.config import FlagConfig, RuleConfig, TurnoutConfig
from turnout.context import RoutingContext
from turnout.decision import Decision, Reason
from turnout.failures import Failures
from turnout.hashing import Splitter, weights_at_step
from turnout.types import Clock

_log = structlog.get_logger("turnout")

INTENT_ATTRIBUTES = frozenset({"intent", "intent_confidence"})

_new_decision = tuple.__new__

IntentAttributes = Callable[[RoutingContext], Mapping[str, Any]]
"""Returns the context's attributes merged with its (lazily classified) intent."""


class RolloutGate:
    """Where a guarded rule stands: written by the rollout controller, read on every decision.

    A rollout with guardrails moves to its next step only when its checks pass, so its step is
    this gate's, not the clock's; a rolled-back rule serves the flag default to its users.
    """

    __slots__ = ("rolled_back", "step")

    def __init__(self, step: int = 0, rolled_back: bool = False) -> None:
        self.step = step
        self.rolled_back = rolled_back


Gates = dict[tuple[str, str], RolloutGate]
"""The gates of guarded rules by (flag, rule name); kept across reloads."""


@dataclass(frozen=True, slots=True)
class _Rollout:
    start: float
    every: float
    splitters: tuple[Splitter, ...]
    gate: RolloutGate | None

    def splitter(self, now: float) -> Splitter | None:
        if now < self.start:
            return None
        gate = self.gate
        step = gate.step if gate is not None else int((now - self.start) // self.every)
        return self.splitters[min(step, len(self.splitters) - 1)]


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to evaluate: condition, and a fixed decision or a splitter."""

    name: str
    experiment: str | None
    condition: CompiledCondition | None
    needs_intent: bool
    decision: Decision | None
    splitter: Splitter | None
    rollout: _Rollout | None
    config: RuleConfig
    gate: RolloutGate | None = None
    rolled_back: Decision | None = None


class CompiledFlag:
    """A flag with its rules compiled; `evaluate` never parses and allocates little."""

    __slots__ = (
        "_default",
        "_disabled",
        "_error",
        "_forced",
        "allow_overrides",
        "config",
        "enabled",
        "engines",
        "hash_by",
        "key",
        "overrides",
        "overrides_from_requests",
        "rules",
    )

    def __init__(
        self,
        key: str,
        config: FlagConfig,
        rules: tuple[CompiledRule, ...],
        *,
        overrides_from_requests: bool = True,
    ) -> None:
        self.key = key
        self.overrides_from_requests = overrides_from_requests
        self.config = config
        self.enabled = config.enabled
        self.hash_by = config.hash_by
        self.allow_overrides = config.allow_overrides
        self.overrides = dict(config.overrides)
        self.rules = rules
        self.engines: dict[str, str | None] = {
            v: (v if config.kind == "engine" else None) for v in config.variants
        }
        self._default = self._fixed(config.default, Reason.DEFAULT)
        self._disabled = self._fixed(config.default, Reason.DISABLED)
        self._error = self._fixed(config.default, Reason.ERROR)
        self._forced = {v: self._fixed(v, Reason.OVERRIDE) for v in config.variants}

    def _fixed(self, variant: str, reason: Reason, rule: str | None = None) -> Decision:
        return Decision(self.key, variant, self.engines[variant], reason, rule)

    @property
    def default(self) -> Decision:
        """The decision served when no rule matches."""
        return self._default

    def error(self, message: str) -> Decision:
        """The default, with reason ERROR and what went wrong."""
        return Decision(
            self._error.flag, self._error.variant, self._error.engine, Reason.ERROR, error=message
        )

    def evaluate(self, context: RoutingContext, clock: Clock, intent: IntentAttributes) -> Decision:
        """Walk kill switch, overrides, then rules in order; first match wins."""
        if not self.enabled:
            return self._disabled
        if self.overrides and (self.overrides_from_requests or not context.key_from_request):
            forced = self.overrides.get(context.targeting_key)
            if forced is not None:
                return self._forced[forced]
        if self.allow_overrides and context.overrides:
            requested = context.overrides.get(self.key)
            if requested in self._forced:
                return self._forced[requested]
        attributes = context.attributes
        for rule in self.rules:
            if rule.condition is not None and not rule.condition(
                intent(context) if rule.needs_intent else attributes
            ):
                continue
            matched = context.intent.label if rule.needs_intent and context.intent else None
            if rule.decision is not None:
                if matched is None:
                    return rule.decision
                return Decision(
                    self.key,
                    rule.decision.variant,
                    rule.decision.engine,
                    Reason.TARGETING_MATCH,
                    rule.name,
                    rule.experiment,
                    intent=matched,
                )
            rollout = rule.rollout
            splitter = rule.splitter if rollout is None else rollout.splitter(clock())
            if splitter is None:
                continue
            if rule.gate is not None and rule.gate.rolled_back:
                return rule.rolled_back or self._default
            hash_by = self.hash_by
            variant, bucket = splitter.assign(
                context.targeting_key if hash_by is None else context.value(hash_by)
            )
            if not variant:
                continue  # outside the rule's coverage
            # tuple.__new__ with every field: a NamedTuple's own __new__ (a Python function
            # filling in defaults) costs twice as much, on every split decision.
            return _new_decision(
                Decision,
                (
                    self.key,
                    variant,
                    self.engines[variant],
                    Reason.SPLIT,
                    rule.name,
                    rule.experiment,
                    bucket,
                    matched,
                    None,
                ),
            )
        return self._default


def compile_flags(
    config: TurnoutConfig, failures: Failures | None = None, gates: Gates | None = None
) -> dict[str, CompiledFlag]:
    """Compile every flag; rules switched off by the routing/intent switches are left out.

    A condition that fails while evaluating (a `$regex` past its time budget) does not match
    and is counted in `failures` under `condition`. Each rule with guardrails gets its gate
    from `gates` (made there on first sight).
    """
    flags: dict[str, CompiledFlag] = {}
    gates = {} if gates is None else gates
    for key, flag in config.flags.items():
        rules: list[CompiledRule] = []
        for index, rule in enumerate(flag.rules):
            gate = None
            if rule.guardrails is not None:
                gate = gates.setdefault((key, rule.name or f"rule-{index}"), RolloutGate())
            compiled = _compile_rule(key, index, rule, flag, failures, gate)
            if _switched_on(compiled, config):
                rules.append(compiled)
            if rule.rollout is not None and rule.guardrails is None and compiled.rollout is not None:
                _log.warning(
                    "turnout.rollout_without_guardrails",
                    flag=key,
                    rule=compiled.name,
                    note="its steps advance on time alone, however the treatment does; add guardrails "
                    "so they advance only while its checks pass",
                )
        flags[key] = CompiledFlag(
            key, flag, tuple(rules), overrides_from_requests=config.http.overrides_from_headers
        )
    return flags


def _switched_on(rule: CompiledRule, config: TurnoutConfig) -> bool:
    if not rule.config.enabled:
        return False
    if rule.needs_intent and not config.intent.enabled:
        return False
    uses_attributes = rule.condition is not None and bool(rule.condition.attributes - INTENT_ATTRIBUTES)
    if uses_attributes and not config.routing.attribute_rules:
        return False
    return rule.decision is not None or config.routing.split_rules


def _condition_failed(failures: Failures, flag: str, rule: str, error: Exception) -> None:
    failures.record("condition", error, flag=flag, rule=rule)


def _compile_rule(
    key: str,
    index: int,
    rule: RuleConfig,
    flag: FlagConfig,
    failures: Failures | None,
    gate: RolloutGate | None = None,
) -> CompiledRule:
    name = rule.name or f"rule-{index}"
    path = f"flags.{key}.rules[{index}].when"
    on_error = None if failures is None else functools.partial(_condition_failed, failures, key, name)
    condition = compile_condition(rule.when, path=path, on_error=on_error) if rule.when else None
    needs_intent = condition is not None and bool(condition.attributes & INTENT_ATTRIBUTES)
    engine = rule.serve if flag.kind == "engine" else None
    decision = (
        Decision(key, rule.serve, engine, Reason.TARGETING_MATCH, name, rule.experiment)
        if rule.serve is not None
        else None
    )
    seed = rule.seed or rule.experiment or f"{key}:{name}"
    algorithm = rule.hash or flag.hash
    splitter = rollout = None
    if rule.split is not None:
        splitter = Splitter(rule.split, seed=seed, algorithm=algorithm, coverage=rule.coverage)
        if rule.rollout is not None and rule.rollout.start is not None:  # validation requires a start
            start = rule.rollout.start.timestamp()
            steps = tuple(
                Splitter(
                    weights_at_step(rule.split, flag.default, share),
                    seed=seed,
                    algorithm=algorithm,
                    coverage=rule.coverage,
                )
                for share in rule.rollout.steps
            )
            rollout = _Rollout(start, rule.rollout.every, steps, gate)
    rolled_back = None
    if gate is not None:
        # Control for everyone the rule covers, outside the experiment: these users are no
        # longer a sample of either arm. Their buckets are untouched, so a resume puts the
        # same users back in the treatment.
        engine = flag.default if flag.kind == "engine" else None
        rolled_back = Decision(key, flag.default, engine, Reason.DEFAULT, name)
    return CompiledRule(
        name, rule.experiment, condition, needs_intent, decision, splitter, rollout, rule, gate, rolled_back
    )
