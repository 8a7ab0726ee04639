"""Where a guarded rollout stands and how it moves: on check results, or by hand.

Flagger's rules: an interval whose checks all pass resets the count of failures; a failed one
adds to it; `failure_threshold` failures in a row trigger the action; an inconclusive one
(too little data) neither counts nor resets, and holds the step. A step is left only after it
was held for `every` and its latest interval passed every check.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from turnout.config import GuardrailsConfig, RuleConfig
from turnout.errors import TurnoutError
from turnout.rollouts.checks import CheckResult, Outcome, interval_outcome


class RolloutError(TurnoutError):
    """A manual action that does not apply to the rollout as it stands."""


class State(StrEnum):
    """The states of a guarded rollout."""

    RUNNING = "running"
    PAUSED = "paused"
    ROLLED_BACK = "rolled_back"
    DONE = "done"


@dataclass(frozen=True, slots=True)
class Plan:
    """A guarded rule's shape: the treatment's share at each step, how long a step lasts, its checks."""

    steps: tuple[float, ...]
    every: float | None
    start: float | None
    guardrails: GuardrailsConfig

    @classmethod
    def of(cls, rule: RuleConfig, default: str) -> Plan:
        """The plan of a rule with guardrails (a plain split is one step that never ends)."""
        if rule.guardrails is None:
            raise ValueError(f"rule {rule.name!r} has no guardrails")
        if rule.rollout is not None:
            start = rule.rollout.start.timestamp() if rule.rollout.start is not None else None
            return cls(tuple(rule.rollout.steps), rule.rollout.every, start, rule.guardrails)
        share = sum(w for v, w in (rule.split or {}).items() if v != default)
        return cls((share,), None, None, rule.guardrails)

    def percent(self, step: int) -> float:
        """The treatment's share at `step`."""
        return self.steps[min(step, len(self.steps) - 1)]


@dataclass(frozen=True, slots=True)
class RolloutState:
    """What the store keeps for one guarded rule."""

    state: State = State.RUNNING
    step: int = 0
    step_started: float | None = None
    failures: int = 0
    checked_at: float | None = None
    outcome: Outcome | None = None
    checks: tuple[CheckResult, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, as stored."""
        return {
            "state": self.state.value,
            "step": self.step,
            "step_started": self.step_started,
            "failures": self.failures,
            "checked_at": self.checked_at,
            "outcome": None if self.outcome is None else self.outcome.value,
            "checks": [check.to_dict() for check in self.checks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RolloutState:
        """The state `to_dict` described."""
        outcome = data.get("outcome")
        return cls(
            State(data.get("state", State.RUNNING)),
            int(data.get("step", 0)),
            data.get("step_started"),
            int(data.get("failures", 0)),
            data.get("checked_at"),
            None if outcome is None else Outcome(outcome),
            tuple(CheckResult.from_dict(c) for c in data.get("checks", ())),
        )


@dataclass(frozen=True, slots=True)
class Change:
    """A move worth recording: an action, a step advanced, a rollout finished."""

    action: str
    reason: str
    details: dict[str, Any] = field(default_factory=dict)


def after_checks(
    state: RolloutState, plan: Plan, results: Sequence[CheckResult], now: float
) -> tuple[RolloutState, Change | None]:
    """The state after one interval's checks, and what changed (None: nothing to record)."""
    if state.state is not State.RUNNING:
        return state, None
    outcome = interval_outcome(results)
    started = state.step_started if state.step_started is not None else now
    state = replace(state, checked_at=now, outcome=outcome, checks=tuple(results), step_started=started)
    guardrails = plan.guardrails
    if outcome is Outcome.FAIL:
        failures = state.failures + 1
        if failures < guardrails.failure_threshold:
            return replace(state, failures=failures), None
        failed = "; ".join(r.reason for r in results if r.outcome is Outcome.FAIL)
        interval = duration_text(guardrails.interval)
        streak = "in 1 interval" if failures == 1 else f"in {failures} consecutive {interval} intervals"
        reason = f"{failed} {streak}"
        details = {"failures": failures, "step_percent": plan.percent(state.step)}
        if guardrails.action == "rollback":
            return replace(state, state=State.ROLLED_BACK, failures=failures), Change(
                "rollback", reason, details
            )
        if guardrails.action == "pause":
            return replace(state, state=State.PAUSED, failures=failures), Change("pause", reason, details)
        # An alert does not stop anything: count again, so it repeats if the failures go on.
        return replace(state, failures=0), Change("alert", reason, details)
    if outcome is Outcome.INCONCLUSIVE:
        return state, None
    state = replace(state, failures=0)
    if plan.every is None or now - started < plan.every:
        return state, None
    passed = "; ".join(r.reason for r in results)
    held = f"held {plan.percent(state.step):g}% for {duration_text(now - started)} and passed: {passed}"
    if state.step + 1 >= len(plan.steps):
        return replace(state, state=State.DONE), Change("done", f"rollout complete: {held}")
    step = state.step + 1
    moved = replace(state, step=step, step_started=now)
    return moved, Change(
        "advance", f"{plan.percent(step):g}% after it {held}", {"step_percent": plan.percent(step)}
    )


def by_hand(state: RolloutState, plan: Plan, action: str, now: float, *, full: bool = False) -> RolloutState:
    """The state after a manual `promote`, `pause`, `resume` or `abort`; RolloutError if it does not apply."""
    current = state.state
    if action == "pause":
        _require(action, current, {State.RUNNING})
        return replace(state, state=State.PAUSED)
    if action == "resume":
        _require(action, current, {State.PAUSED, State.ROLLED_BACK})
        # The step is held a full `every` again, with a fresh count of failures.
        return replace(state, state=State.RUNNING, failures=0, step_started=now)
    if action == "promote":
        _require(action, current, {State.RUNNING, State.PAUSED})
        last = len(plan.steps) - 1
        if full or state.step >= last:
            return replace(state, state=State.DONE, step=last, failures=0)
        return replace(state, step=state.step + 1, step_started=now, failures=0)
    if action == "abort":
        _require(action, current, {State.RUNNING, State.PAUSED, State.DONE})
        return replace(state, state=State.ROLLED_BACK)
    raise RolloutError(f"unknown rollout action {action!r}: promote, pause, resume or abort")


def _require(action: str, current: State, allowed: set[State]) -> None:
    if current not in allowed:
        names = " or ".join(sorted(s.value for s in allowed))
        raise RolloutError(f"cannot {action} a rollout that is {current.value} (only when {names})")


def duration_text(seconds: float) -> str:
    """Seconds in words: "30 s", "10 min", "1 d"."""
    for unit, size in (("d", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s" if seconds < 60 else f"{seconds / 60:.1f} min"
