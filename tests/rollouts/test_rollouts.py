"""Guarded rollouts end to end on a fake clock: steps, actions, manual control, restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from canary_app import INTERVAL, START, USERS, Canary, FakeClock, canary_config
from structlog.testing import capture_logs

from turnout import Reason, RoutingContext, Turnout
from turnout.rollouts import Outcome, RolloutError

MakeCanary = Callable[..., Canary]


@pytest.fixture
def state_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'turnout_state.db'}"


@pytest.fixture
async def make_canary(state_url: str) -> AsyncIterator[MakeCanary]:
    made: list[Canary] = []

    def make(clock: FakeClock | None = None, **guardrails: object) -> Canary:
        canary = Canary(state_url, clock or FakeClock(), **guardrails)
        made.append(canary)
        return canary

    yield make
    for canary in made:
        await canary.turnout.stop()


def share(canary: Canary) -> float:
    return len(canary.treated()) / len(USERS)


async def test_a_healthy_canary_walks_every_step_and_completes(make_canary: MakeCanary) -> None:
    canary = make_canary()
    seen = []
    for _ in range(40):
        state = await canary.interval()
        status = canary.turnout.rollouts.status("coordinator")
        seen.append(status.step)
        assert abs(share(canary) - status.step / 100) < 0.04
        if state == "done":
            break
    assert canary.turnout.rollouts.status("coordinator").state == "done"
    assert sorted(set(seen)) == [10, 30, 50, 100]
    # Each step is held `every` (2 min = 4 intervals) before the next.
    assert [seen.count(step) for step in (10, 30, 50)] == [4, 4, 4]
    history = canary.turnout.rollouts.status("coordinator").history
    assert [(e.action, e.after and e.after["step_percent"]) for e in history] == [
        ("advance", 30),
        ("advance", 50),
        ("advance", 100),
        ("done", 100),
    ]
    assert history[0].actor == "guardrails"
    assert "workflow success rate 1.00 ≥ 0.95 over" in history[0].reason
    assert share(canary) == 1.0


async def test_a_failing_canary_is_rolled_back_after_exactly_failure_threshold_intervals(
    make_canary: MakeCanary,
) -> None:
    canary = make_canary()
    treated = canary.treated()
    canary.failing = True
    assert await canary.interval() == "running"
    assert canary.turnout.rollouts.status("coordinator").failures == 1
    assert await canary.interval() == "running"
    assert canary.treated() == treated  # still serving the canary between failures
    assert await canary.interval() == "rolled_back"
    assert canary.treated() == set()
    decision = canary.turnout.decide("coordinator", RoutingContext(next(iter(treated))))
    assert (decision.variant, decision.reason, decision.rule, decision.experiment) == (
        "legacy",
        Reason.DEFAULT,
        "canary",
        None,
    )
    status = canary.turnout.rollouts.status("coordinator")
    (rollback,) = status.history
    assert rollback.action == "rollback"
    n = status.checks[0].samples
    assert rollback.reason.startswith(
        f"workflow success rate 0.00 < 0.95 over {n:,} requests in 3 consecutive 30 s intervals"
    )
    assert [notice.action for notice in canary.notices] == ["rollback"]
    notice = canary.notices[0]
    assert (notice.flag, notice.rule, notice.state, notice.step_percent) == (
        "coordinator",
        "canary",
        "rolled_back",
        10,
    )
    assert notice.checks[0]["value"] == 0.0


async def test_a_passing_interval_resets_the_count_of_failures(make_canary: MakeCanary) -> None:
    canary = make_canary()
    for failing in (True, True, False, True, True):
        canary.failing = failing
        assert await canary.interval() == "running"
    assert canary.turnout.rollouts.status("coordinator").failures == 2
    canary.failing = True
    assert await canary.interval() == "rolled_back"


async def test_too_few_samples_is_inconclusive_and_holds_the_step(make_canary: MakeCanary) -> None:
    canary = make_canary()
    few = USERS[:100]  # about 10 treated requests per interval, fewer than min_samples
    for _ in range(12):  # three times as long as a step lasts
        assert await canary.interval(few) == "running"
    status = canary.turnout.rollouts.status("coordinator")
    assert status.step == 10
    assert {c.outcome for c in status.checks} == {Outcome.INCONCLUSIVE}
    assert "inconclusive, fewer than 50 observations" in status.checks[0].reason
    assert status.history == ()
    canary.failing = True  # failing with too little data is not a failure either
    assert await canary.interval(few) == "running"
    assert canary.turnout.rollouts.status("coordinator").failures == 0


async def test_action_pause_freezes_the_step_and_resume_continues(make_canary: MakeCanary) -> None:
    canary = make_canary(action="pause", failure_threshold=1)
    for _ in range(5):  # the first check starts the step's clock; 4 intervals later it has been held 2 min
        await canary.interval()
    assert canary.turnout.rollouts.status("coordinator").step == 30
    canary.failing = True
    assert await canary.interval() == "paused"
    treated = canary.treated()
    canary.failing = False
    for _ in range(8):  # no step is taken while paused
        assert await canary.interval() == "paused"
    assert canary.treated() == treated
    status = canary.turnout.rollouts.resume("coordinator", reason="fixed the workflow engine", actor="ana")
    assert (status.state, status.step) == ("running", 30)
    for _ in range(4):  # resuming holds the step a full 2 min again
        await canary.interval()
    assert canary.turnout.rollouts.status("coordinator").step == 50


async def test_action_alert_notifies_and_keeps_going(make_canary: MakeCanary) -> None:
    canary = make_canary(action="alert", failure_threshold=2)
    canary.failing = True
    states = [await canary.interval() for _ in range(4)]
    assert states == ["running"] * 4
    assert [n.action for n in canary.notices] == ["alert", "alert"]
    assert canary.turnout.rollouts.status("coordinator").step == 10


async def test_manual_control_is_recorded_with_who_when_and_why(make_canary: MakeCanary) -> None:
    canary = make_canary()
    rollouts = canary.turnout.rollouts
    before = canary.treated()
    assert rollouts.promote("coordinator", reason="looks fine", actor="ana").step == 30
    promoted = canary.treated()
    assert before < promoted
    canary.clock.now += 5
    assert rollouts.pause("coordinator", reason="holiday", actor="ben").state == "paused"
    assert rollouts.abort("coordinator", reason="customer complaint", actor="ana").state == "rolled_back"
    assert canary.treated() == set()
    assert rollouts.resume("coordinator", reason="complaint unrelated", actor="ana").state == "running"
    assert canary.treated() == promoted  # the same users are back
    assert rollouts.promote("coordinator", full=True, actor="ana").state == "done"
    assert share(canary) == 1.0
    history = rollouts.status("coordinator").history
    assert [(e.action, e.actor, e.reason) for e in history] == [
        ("promote", "ana", "looks fine"),
        ("pause", "ben", "holiday"),
        ("abort", "ana", "customer complaint"),
        ("resume", "ana", "complaint unrelated"),
        ("promote", "ana", ""),
    ]
    assert history[1].at == START + 5
    assert (history[2].before, history[2].after) == (
        {"state": "paused", "step": 1, "step_percent": 30, "failures": 0},
        {"state": "rolled_back", "step": 1, "step_percent": 30, "failures": 0},
    )
    assert [n.action for n in canary.notices] == ["promote", "pause", "abort", "resume", "promote"]


async def test_a_manual_action_that_does_not_apply_is_refused(make_canary: MakeCanary) -> None:
    rollouts = make_canary().turnout.rollouts
    with pytest.raises(RolloutError, match="cannot resume a rollout that is running"):
        rollouts.resume("coordinator")
    rollouts.abort("coordinator")
    with pytest.raises(RolloutError, match="cannot promote a rollout that is rolled_back"):
        rollouts.promote("coordinator")
    with pytest.raises(RolloutError, match="flag 'other': no rule with guardrails"):
        rollouts.status("other")


async def test_a_restarted_process_resumes_where_the_rollout_stands(make_canary: MakeCanary) -> None:
    clock = FakeClock()
    first = make_canary(clock)
    for _ in range(5):
        await first.interval()
    assert first.turnout.rollouts.status("coordinator").step == 30
    treated = first.treated()
    await first.turnout.stop()
    second = make_canary(clock)
    assert second.treated() == treated  # a new process reads the store when made: 30%, the same users
    second.failing = True
    for _ in range(3):
        await second.interval()
    await second.turnout.stop()
    third = make_canary(clock)  # even without start(), a rolled-back canary stays rolled back
    assert third.turnout.rollouts.status("coordinator").state == "rolled_back"
    assert third.treated() == set()


async def test_a_store_that_cannot_be_read_when_made_is_counted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'turnout_state.db'}"
    (tmp_path / "turnout_state.db").write_text("not a database")
    canary = Canary(url, FakeClock())
    assert canary.turnout.failures.count("rollouts") == 1
    assert len(canary.treated()) > 0  # served at the first step


def test_making_a_turnout_creates_no_state_file(tmp_path: Path) -> None:
    Canary(f"sqlite:///{tmp_path / 'turnout_state.db'}", FakeClock())
    assert not (tmp_path / "turnout_state.db").exists()


async def test_a_rollout_before_its_start_is_not_checked(make_canary: MakeCanary) -> None:
    canary = make_canary(FakeClock(START - 10 * INTERVAL))
    canary.failing = True
    for _ in range(5):
        assert await canary.interval() == "running"
    assert canary.turnout.rollouts.status("coordinator").checks == ()


async def test_start_runs_the_loop_and_stop_ends_it(state_url: str) -> None:
    turnout = Turnout(canary_config(state_url), env={})
    turnout.add_engine("legacy", str)
    await turnout.start()
    assert turnout.rollouts._task is not None
    assert turnout.rollouts.tick_interval() == 30.0
    await turnout.stop()
    assert turnout.rollouts._task is None


async def test_a_reload_that_adds_guardrails_is_acted_on(state_url: str) -> None:
    config = canary_config(state_url)
    guardrails = config["flags"]["coordinator"]["rules"][0].pop("guardrails")
    clock = FakeClock()
    turnout = Turnout(config, clock=clock, env={})
    turnout.add_engine("legacy", str)
    await turnout.start()
    await turnout.rollouts.tick()  # nothing to check: the store is not even opened
    assert turnout.rollouts._store is None
    config["flags"]["coordinator"]["rules"][0]["guardrails"] = guardrails
    turnout.reload(config)
    turnout.rollouts.abort("coordinator", reason="testing the reload")
    assert turnout.decide("coordinator", RoutingContext("user-1")).reason is Reason.DEFAULT
    clock.now += INTERVAL
    await turnout.rollouts.tick()
    assert turnout.rollouts.status("coordinator").state == "rolled_back"
    await turnout.stop()


def test_a_time_only_rollout_warns_at_load(state_url: str) -> None:
    config = canary_config(state_url)
    del config["flags"]["coordinator"]["rules"][0]["guardrails"]
    with capture_logs() as logs:
        Turnout(config, env={})
    (warning,) = [log for log in logs if log["event"] == "turnout.rollout_without_guardrails"]
    assert (warning["flag"], warning["rule"], warning["log_level"]) == ("coordinator", "canary", "warning")


async def test_a_broken_store_fails_open(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    canary = Canary(f"sqlite:///{tmp_path / 'file' / 'state.db'}", FakeClock())
    await canary.traffic()
    await canary.turnout.rollouts.tick()
    assert canary.turnout.failures.count("rollouts") == 1
    assert len(canary.treated()) > 0  # served at the first step meanwhile


async def test_a_custom_metric_check_rolls_back_a_canary_that_costs_too_much(make_canary: MakeCanary) -> None:
    canary = make_canary(checks=[{"metric": "cost_usd", "max": 0.02}], failure_threshold=2)
    turnout = canary.turnout

    def legacy(message: str) -> str:
        turnout.record("cost_usd", 0.01)
        return message

    def workflow(message: str) -> str:
        turnout.record("cost_usd", 0.05)  # five times dearer
        return message

    turnout.add_engine("legacy", legacy)
    turnout.add_engine("workflow", workflow)
    assert await canary.interval() == "running"
    assert await canary.interval() == "rolled_back"
    status = turnout.rollouts.status("coordinator")
    assert status.history[-1].reason.startswith("workflow cost_usd 0.05 > 0.02 over ")
    assert status.history[-1].reason.endswith(" values in 2 consecutive 30 s intervals")


async def test_values_of_experiments_without_guardrails_are_not_kept(make_canary: MakeCanary) -> None:
    rollouts = make_canary().turnout.rollouts
    rollouts.observe("some-other-experiment", "b", "cost_usd", 1.0)
    rollouts.observe("wf-canary", "workflow", "cost_usd", float("nan"))
    assert rollouts._recorder.cut("some-other-experiment") == {}
    assert rollouts._recorder.cut("wf-canary") == {}


def test_a_reload_names_state_and_notifier_changes_as_needing_a_restart(state_url: str) -> None:
    config = canary_config(state_url)
    turnout = Turnout(config, env={})
    changed = {**config, "state": {"url": state_url + ".other"}, "rollouts": {"notifiers": ["log"]}}
    with capture_logs() as logs:
        turnout.reload(changed)
    warning = next(entry for entry in logs if entry["event"] == "turnout.reload_needs_restart")
    assert {"state", "rollouts"} <= set(warning["settings"])
