"""`RolloutStatus`: where a guarded rollout stands, its last checks, its history, what happens next."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from turnout.config import TurnoutConfig
from turnout.rollouts.checks import CheckResult, Outcome
from turnout.rollouts.progress import Plan, RolloutState, State, duration_text
from turnout.state import AuditEntry


@dataclass(frozen=True, slots=True)
class Guarded:
    """A rule with guardrails, as the controller sees it."""

    flag: str
    rule: str
    experiment: str
    control: str
    treatments: tuple[str, ...]
    plan: Plan

    @property
    def key(self) -> str:
        """Its key in the state store."""
        return f"{self.flag}/{self.rule}"


def guarded_rules(config: TurnoutConfig) -> list[Guarded]:
    """Every enabled rule with guardrails, in config order."""
    found = []
    for key, flag in config.flags.items():
        for index, rule in enumerate(flag.rules):
            if rule.guardrails is None or rule.split is None or rule.experiment is None or not rule.enabled:
                continue
            treatments = tuple(v for v in rule.split if v != flag.default)
            plan = Plan.of(rule, flag.default)
            found.append(
                Guarded(key, rule.name or f"rule-{index}", rule.experiment, flag.default, treatments, plan)
            )
    return found


@dataclass(frozen=True, slots=True)
class RolloutStatus:
    """Where a guarded rollout stands (`.state`, `.step` in percent), its last `.checks` and `.history`."""

    flag: str
    rule: str
    state: str
    step: float
    step_index: int
    steps: tuple[float, ...]
    failures: int
    failure_threshold: int
    action: str
    checked_at: float | None
    checks: tuple[CheckResult, ...]
    history: tuple[AuditEntry, ...]
    next: str

    @classmethod
    def of(cls, guarded: Guarded, state: RolloutState, history: list[AuditEntry]) -> RolloutStatus:
        """The status of `guarded` in `state`."""
        plan = guarded.plan
        return cls(
            guarded.flag,
            guarded.rule,
            state.state.value,
            plan.percent(state.step),
            state.step,
            plan.steps,
            state.failures,
            plan.guardrails.failure_threshold,
            plan.guardrails.action,
            state.checked_at,
            state.checks,
            tuple(history),
            _next(guarded, state),
        )

    def text(self) -> str:
        """A few lines for a terminal."""
        steps = " → ".join(
            f"[{s:g}%]" if i == self.step_index else f"{s:g}%" for i, s in enumerate(self.steps)
        )
        lines = [
            f"{self.flag} / {self.rule}: {self.state.replace('_', ' ')} at {self.step:g}%   steps {steps}",
            f"failed intervals in a row: {self.failures} of {self.failure_threshold} (then: {self.action})",
        ]
        if self.checks:
            lines.append(f"last checks ({_when(self.checked_at)}):")
            marks = {Outcome.PASS: "pass", Outcome.FAIL: "FAIL", Outcome.INCONCLUSIVE: "inconclusive"}
            lines.extend(f"  {marks[c.outcome]:<12} {c.check}: {c.reason}" for c in self.checks)
        else:
            lines.append("last checks: none yet")
        lines.append(f"next: {self.next}")
        if self.history:
            lines.append("history:")
            lines.extend(
                f"  {_when(e.at)}  {e.action:<8} by {e.actor}: {e.reason or '(no reason given)'}"
                for e in self.history
            )
        return "\n".join(lines)


def _next(guarded: Guarded, state: RolloutState) -> str:
    plan = guarded.plan
    percent = plan.percent(state.step)
    treatment = " and ".join(guarded.treatments)
    if state.state is State.PAUSED:
        return f"frozen at {percent:g}% until resumed (resume continues, abort serves {guarded.control})"
    if state.state is State.ROLLED_BACK:
        return (
            f"everyone the rule covers gets {guarded.control}; resume puts the same users back on "
            f"{treatment} at {percent:g}%"
        )
    if state.state is State.DONE:
        return f"complete: {percent:g}% of the rule's users get {treatment}"
    interval = duration_text(plan.guardrails.interval)
    if state.failures:
        left = plan.guardrails.failure_threshold - state.failures
        return f"{plan.guardrails.action} after {left} more failed {interval} interval(s) in a row"
    if plan.every is None:
        return f"checks every {interval}; {plan.guardrails.action} after failures"
    last = state.step + 1 >= len(plan.steps)
    goal = "completes" if last else f"moves to {plan.percent(state.step + 1):g}%"
    held = duration_text(plan.every)
    return f"{goal} once {percent:g}% has been held {held} and an interval passes every check"


def _when(at: float | None) -> str:
    if at is None:
        return "never"
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
