"""`Rollouts`: runs the guardrail checks every interval and gives manual control of guarded rollouts.

Every process cuts its metric windows each interval and writes them to the state store; the one
process holding the leader lock merges every process's windows, runs the checks, moves the
rollouts and records what it did; then every process reads the rollouts' state back into the
gates its decisions read. So each replica sees a change within one interval, and a restarted
process resumes where the rollout stands.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import math
import secrets
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from turnout.config import TurnoutConfig
from turnout.decision import Decision
from turnout.errors import ConfigError, ConfigIssue, TurnoutError
from turnout.failures import Failures
from turnout.flags import Gates, RolloutGate
from turnout.rollouts.checks import higher_is_better, run_checks
from turnout.rollouts.notifiers import Notice, Notifier, build_notifiers
from turnout.rollouts.progress import Change, RolloutError, RolloutState, State, after_checks, by_hand
from turnout.rollouts.status import Guarded, RolloutStatus, guarded_rules
from turnout.rollouts.windows import WindowRecorder, merge_windows
from turnout.state import AuditEntry, LeaderLock, StateStore, Window, may_hold_state, open_store, state_url
from turnout.telemetry.metrics import MetricsRegistry
from turnout.telemetry.snapshot import process_name
from turnout.types import Clock

NAMESPACE = "rollout"
GUARDRAILS = "guardrails"
"""The actor named in the audit log for what the checks did."""
IDLE_INTERVAL = 30.0
"""Seconds between looks at the config while no rule has guardrails."""
_KEEP_WINDOWS = 20  # intervals of windows kept in the store (for a look back), older ones pruned
_DUE = 0.95  # a tick that comes a little early (timer drift) still runs the interval's checks


class Rollouts:
    """Guarded rollouts of one Turnout: `status`, `promote`, `pause`, `resume`, `abort`; the checks loop."""

    def __init__(
        self,
        gates: Gates,
        config: Callable[[], TurnoutConfig],
        metrics: MetricsRegistry,
        *,
        clock: Clock,
        failures: Failures,
        notifiers: list[Notifier] | None = None,
    ) -> None:
        self._gates = gates
        self._config = config
        self._clock = clock
        self._failures = failures
        self._recorder = WindowRecorder(metrics)
        self._notifiers = notifiers if notifiers is not None else _notifiers(config())
        self.replica = f"{process_name()}:{secrets.token_hex(3)}"
        self._store: StateStore | None = None
        self._leader: LeaderLock | None = None
        self._store_lock = threading.Lock()
        self._last_cut: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._experiments: tuple[TurnoutConfig, frozenset[str]] | None = None

    def observe(self, experiment: str, variant: str, name: str, value: float) -> None:
        """Count a custom per-request value (e.g. `cost_usd`) for checks on that metric. Never raises.

        Only guarded experiments keep values (they are cut every interval); finite numbers only.
        """
        try:
            number = float(value)
            if math.isfinite(number) and experiment in self._guarded_experiments():
                self._recorder.add_value(experiment, variant, name, number)
        except Exception as exc:
            self._failures.record("rollouts", exc, metric=name)

    def record(
        self, name: str, value: float, decisions: Iterable[Decision], *, flag: str | None = None
    ) -> None:
        """`observe` `value` for every experiment among a request's `decisions` (only `flag`'s, if given)."""
        for decision in decisions:
            if decision.experiment is not None and flag in (None, decision.flag):
                self.observe(decision.experiment, decision.variant, name, value)

    def _guarded_experiments(self) -> frozenset[str]:
        config = self._config()
        cached = self._experiments
        if cached is None or cached[0] is not config:
            cached = self._experiments = (config, frozenset(g.experiment for g in guarded_rules(config)))
        return cached[1]

    # -- manual control ------------------------------------------------------------------

    def status(self, flag: str, *, rule: str | None = None) -> RolloutStatus:
        """Where the guarded rollout of `flag` stands (name `rule` when the flag has several)."""
        guarded = self._find(flag, rule)
        store = self.store()
        state = self._state(store, guarded)[0]
        return RolloutStatus.of(guarded, state, store.history(NAMESPACE, guarded.key, limit=20))

    def promote(
        self,
        flag: str,
        *,
        reason: str = "",
        rule: str | None = None,
        actor: str | None = None,
        full: bool = False,
    ) -> RolloutStatus:
        """Move to the next step now (`full=True`: straight to the last), whatever the checks say."""
        return self._by_hand("promote", flag, reason, rule, actor, full=full)

    def pause(
        self, flag: str, *, reason: str = "", rule: str | None = None, actor: str | None = None
    ) -> RolloutStatus:
        """Freeze the rollout at its step: no checks act, no step is taken until it is resumed."""
        return self._by_hand("pause", flag, reason, rule, actor)

    def resume(
        self, flag: str, *, reason: str = "", rule: str | None = None, actor: str | None = None
    ) -> RolloutStatus:
        """Run a paused or rolled-back rollout again from its step; the same users return to the treatment."""
        return self._by_hand("resume", flag, reason, rule, actor)

    def abort(
        self, flag: str, *, reason: str = "", rule: str | None = None, actor: str | None = None
    ) -> RolloutStatus:
        """Roll back: everyone the rule covers gets the flag default until it is resumed."""
        return self._by_hand("abort", flag, reason, rule, actor)

    def _by_hand(
        self, action: str, flag: str, reason: str, rule: str | None, actor: str | None, *, full: bool = False
    ) -> RolloutStatus:
        guarded = self._find(flag, rule)
        store = self.store()
        now = self._clock()
        who = actor or _who()
        for _ in range(20):  # another writer (the evaluator) may get in between: read again
            state, version = self._state(store, guarded)
            after = by_hand(state, guarded.plan, action, now, full=full)
            if store.put(NAMESPACE, guarded.key, after.to_dict(), at=now, expect=version):
                break
        else:
            raise RolloutError(f"{guarded.key}: the stored state kept changing; try again")
        change = Change(action, reason, {"full": full} if full else {})
        self._record(store, guarded, state, after, change, who, now)
        self._apply(guarded, after)
        return RolloutStatus.of(guarded, after, store.history(NAMESPACE, guarded.key, limit=20))

    def texts(self) -> list[str]:
        """Every guarded rollout's status as text (for the dashboard); a store problem is one line."""
        try:
            return [self.status(g.flag, rule=g.rule).text() for g in guarded_rules(self._config())]
        except Exception as exc:
            return [f"rollouts: state store unavailable ({type(exc).__name__}: {exc})"]

    def _find(self, flag: str, rule: str | None) -> Guarded:
        rules = [g for g in guarded_rules(self._config()) if g.flag == flag]
        if rule is not None:
            rules = [g for g in rules if g.rule == rule]
        if not rules:
            where = f"flag {flag!r}" + (f", rule {rule!r}" if rule is not None else "")
            raise RolloutError(
                f"{where}: no rule with guardrails (a time-only rollout has nothing to control)"
            )
        if len(rules) > 1:
            names = ", ".join(g.rule for g in rules)
            raise RolloutError(f"flag {flag!r} has several guarded rules ({names}): name one with rule=")
        return rules[0]

    # -- the store -----------------------------------------------------------------------

    def store(self) -> StateStore:
        """The state store (opened on first use)."""
        with self._store_lock:
            if self._store is None:
                self._store = open_store(state_url(self._config()))
            return self._store

    @staticmethod
    def _state(store: StateStore, guarded: Guarded) -> tuple[RolloutState, int]:
        record = store.get(NAMESPACE, guarded.key)
        if record is None:
            return RolloutState(), 0
        return RolloutState.from_dict(record.value), record.version

    def load(self) -> None:
        """Read the rollouts' state now, if any rule has guardrails; a store problem is counted, not raised.

        `Turnout` does this when it is made, so even an app that never calls `start()` does not
        serve the first step of a rollout that is further on, or rolled back.
        """
        config = self._config()
        if not guarded_rules(config) or not may_hold_state(state_url(config)):
            return  # a first run (or `turnout validate`) creates no state file
        try:
            self.refresh()
        except Exception as exc:
            self._failures.record("rollouts", exc, step="refresh")
        finally:
            if self._task is None:
                self.close()  # nothing else may ever use it: `start` or a manual action opens it again

    def refresh(self) -> None:
        """Read every guarded rollout's state into the gates decisions read."""
        store = self.store()
        records = store.items(NAMESPACE)
        for guarded in guarded_rules(self._config()):
            record = records.get(guarded.key)
            if record is not None:
                self._apply(guarded, RolloutState.from_dict(record.value))

    def _apply(self, guarded: Guarded, state: RolloutState) -> None:
        gate = self._gates.setdefault((guarded.flag, guarded.rule), RolloutGate())
        gate.step = state.step
        gate.rolled_back = state.state is State.ROLLED_BACK

    # -- the checks loop -----------------------------------------------------------------

    async def start(self) -> None:
        """Resume every rollout where the store says it is, and start the checks loop.

        The loop runs even when no rule has guardrails (it then does nothing), so a reload that
        adds some is acted on without a restart.
        """
        if self._task is not None:
            return
        await asyncio.to_thread(self.load)
        self._task = asyncio.create_task(self._run(), name="turnout-rollouts")

    async def stop(self) -> None:
        """Stop the loop, give up the leader lock, close the store."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.close()

    def close(self) -> None:
        """Give up the leader lock and close the store (a later call opens it again)."""
        with self._store_lock:
            store, self._store = self._store, None
            leader, self._leader = self._leader, None
        if leader is not None:
            leader.release()
        if store is not None:
            store.close()

    def tick_interval(self) -> float | None:
        """Seconds between rounds: the shortest `interval` of the guarded rules (None: nothing to do)."""
        rules = guarded_rules(self._config())
        return min(g.plan.guardrails.interval for g in rules) if rules else None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval() or IDLE_INTERVAL)
            await self.tick()

    async def tick(self, now: float | None = None) -> None:
        """One round: write this process's windows; if leader, run due checks and act; read states back."""
        if not guarded_rules(self._config()):
            return
        at = self._clock() if now is None else now
        try:
            await asyncio.to_thread(self.run_once, at)
        except Exception as exc:
            self._failures.record("rollouts", exc)

    def run_once(self, now: float) -> None:
        """`tick`, blocking (what the loop runs in a worker thread)."""
        rules = guarded_rules(self._config())
        if not rules:
            return
        store = self.store()
        self._write_windows(store, rules, now)
        if self._lead(store):
            for guarded in rules:
                try:
                    self._evaluate(store, guarded, now)
                except Exception as exc:
                    self._failures.record("rollouts", exc, rule=guarded.key)
            longest = max(g.plan.guardrails.interval for g in rules)
            store.prune_windows(before=now - _KEEP_WINDOWS * longest)
        self.refresh()

    def _lead(self, store: StateStore) -> bool:
        with self._store_lock:
            if self._leader is None:
                self._leader = store.leader_lock("rollouts")
            leader = self._leader
        return leader.acquire()

    def _write_windows(self, store: StateStore, rules: list[Guarded], now: float) -> None:
        shortest = min(g.plan.guardrails.interval for g in rules)
        for experiment in dict.fromkeys(g.experiment for g in rules):
            windows = self._recorder.cut(experiment)
            start = self._last_cut.get(experiment, now - shortest)
            self._last_cut[experiment] = now
            data = {variant: window.to_dict() for variant, window in windows.items()}
            store.add_window(Window(experiment, self.replica, start, now, data))

    def _evaluate(self, store: StateStore, guarded: Guarded, now: float) -> None:
        plan = guarded.plan
        if plan.start is not None and now < plan.start:
            return
        state, version = self._state(store, guarded)
        interval = plan.guardrails.interval
        if state.state is not State.RUNNING:
            return
        if state.checked_at is not None and now - state.checked_at < interval * _DUE:
            return
        windows = merge_windows(w.data for w in store.windows(guarded.experiment, since=now - interval))
        results = run_checks(
            plan.guardrails,
            windows,
            control=guarded.control,
            treatments=guarded.treatments,
            with_control=plan.percent(state.step) < 100,
            higher_is_better=higher_is_better(self._config()),
        )
        after, change = after_checks(state, plan, results, now)
        if not store.put(NAMESPACE, guarded.key, after.to_dict(), at=now, expect=version):
            return  # changed by hand meanwhile: the next round reads it again
        if change is not None:
            self._record(store, guarded, state, after, change, GUARDRAILS, now)

    def _record(
        self,
        store: StateStore,
        guarded: Guarded,
        before: RolloutState,
        after: RolloutState,
        change: Change,
        actor: str,
        now: float,
    ) -> None:
        checks = [c.to_dict() for c in after.checks] if actor == GUARDRAILS else []
        store.audit(
            AuditEntry(
                at=now,
                namespace=NAMESPACE,
                key=guarded.key,
                actor=actor,
                action=change.action,
                reason=change.reason,
                before=_brief(guarded, before),
                after=_brief(guarded, after),
                details={**change.details, "checks": checks},
            )
        )
        notice = Notice(
            flag=guarded.flag,
            rule=guarded.rule,
            action=change.action,
            reason=change.reason,
            actor=actor,
            at=now,
            state=after.state.value,
            step_percent=guarded.plan.percent(after.step),
            checks=checks,
            details=change.details,
        )
        for notifier in self._notifiers:
            try:
                notifier.notify(notice)
            except Exception as exc:
                self._failures.record(f"notifier.{getattr(notifier, 'name', type(notifier).__name__)}", exc)


def _brief(guarded: Guarded, state: RolloutState) -> dict[str, Any]:
    return {
        "state": state.state.value,
        "step": state.step,
        "step_percent": guarded.plan.percent(state.step),
        "failures": state.failures,
    }


def _notifiers(config: TurnoutConfig) -> list[Notifier]:
    try:
        return build_notifiers(config.rollouts, config.plugins)
    except TurnoutError as exc:
        raise ConfigError([ConfigIssue("rollouts.notifiers", config.rollouts.notifiers, str(exc))]) from None


def _who() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no user name in this container
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
