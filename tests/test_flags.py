"""Flag evaluation through `Turnout.decide`: every reason, rollouts, hash_by and intent rules."""

from __future__ import annotations

import copy
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnout import ConfigError, Decision, Reason, RoutingContext, Turnout
from turnout.conditions import CompiledCondition
from turnout.errors import NOTHING
from turnout.types import Intent

IDS = [f"user-{i}" for i in range(5000)]
DAY = 86400.0
START = datetime(2026, 3, 1, tzinfo=UTC).timestamp()


def flag_config(**flag: Any) -> dict[str, Any]:
    """A config with one `coordinator` flag; keyword arguments replace its fields."""
    base: dict[str, Any] = {"variants": ["legacy", "workflow", "langgraph"], "default": "legacy", "rules": []}
    return {"flags": {"coordinator": {**base, **flag}}}


def decide(turnout: Turnout, key: str = "u1", flag: str = "coordinator", **context: Any) -> Decision:
    return turnout.decide(flag, RoutingContext(key, **context))


PREMIUM = {"name": "premium", "when": {"plan": "premium"}, "serve": "langgraph"}
EU = {"name": "eu", "when": {"country": {"$in": ["de", "fr"]}}, "serve": "workflow"}
CANARY = {"name": "canary", "experiment": "workflow-canary", "split": {"legacy": 80, "workflow": 20}}


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- DEFAULT and TARGETING_MATCH ------------------------------------------------------


def test_no_rule_matching_serves_the_default() -> None:
    turnout = Turnout(flag_config(rules=[PREMIUM]))
    decision = decide(turnout, attributes={"plan": "free"})
    assert decision == Decision("coordinator", "legacy", "legacy", Reason.DEFAULT)


def test_matching_rule_serves_its_variant() -> None:
    turnout = Turnout(flag_config(rules=[PREMIUM]))
    decision = decide(turnout, attributes={"plan": "premium"})
    assert (decision.variant, decision.engine, decision.reason) == (
        "langgraph",
        "langgraph",
        Reason.TARGETING_MATCH,
    )
    assert decision.rule == "premium"
    assert decision.bucket is None


def test_first_matching_rule_wins_so_order_matters() -> None:
    both = {"plan": "premium", "country": "de"}
    premium_first = Turnout(flag_config(rules=[PREMIUM, EU]))
    eu_first = Turnout(flag_config(rules=[EU, PREMIUM]))
    assert decide(premium_first, attributes=both).rule == "premium"
    assert decide(eu_first, attributes=both).rule == "eu"
    # Only one matching: either order serves it.
    assert decide(premium_first, attributes={"country": "fr"}).variant == "workflow"
    assert decide(eu_first, attributes={"plan": "premium"}).variant == "langgraph"


def test_unnamed_rules_are_named_by_position() -> None:
    rules = [
        {"when": {"plan": "premium"}, "serve": "langgraph"},
        {"when": {"plan": "pro"}, "serve": "workflow"},
    ]
    turnout = Turnout(flag_config(rules=rules))
    assert decide(turnout, attributes={"plan": "pro"}).rule == "rule-1"


def test_rule_without_condition_matches_everyone() -> None:
    turnout = Turnout(flag_config(rules=[{"name": "all", "serve": "workflow"}]))
    assert {decide(turnout, key).rule for key in IDS[:100]} == {"all"}


def test_disabled_rule_is_skipped() -> None:
    turnout = Turnout(flag_config(rules=[{**PREMIUM, "enabled": False}]))
    assert decide(turnout, attributes={"plan": "premium"}).reason == Reason.DEFAULT


def test_targeting_rule_can_carry_an_experiment() -> None:
    turnout = Turnout(flag_config(rules=[{**PREMIUM, "experiment": "premium-graph"}]))
    assert decide(turnout, attributes={"plan": "premium"}).experiment == "premium-graph"


# --- SPLIT ----------------------------------------------------------------------------


def test_split_sets_bucket_experiment_and_rule() -> None:
    turnout = Turnout(flag_config(rules=[CANARY]))
    decisions = [decide(turnout, key) for key in IDS]
    assert {d.reason for d in decisions} == {Reason.SPLIT}
    assert {d.rule for d in decisions} == {"canary"}
    assert {d.experiment for d in decisions} == {"workflow-canary"}
    assert all(d.bucket is not None and 0 <= d.bucket < 1 for d in decisions)
    assert all(d.engine == d.variant for d in decisions)
    counts = Counter(d.variant for d in decisions)
    assert abs(counts["workflow"] / len(IDS) - 0.20) < 0.02


def test_split_without_experiment_has_a_bucket_but_no_experiment() -> None:
    rule = {"split": {"legacy": 50, "workflow": 50}}
    decision = decide(Turnout(flag_config(rules=[rule])))
    assert decision.reason == Reason.SPLIT
    assert decision.experiment is None
    assert decision.bucket is not None


def test_split_is_sticky_across_turnout_objects() -> None:
    first = Turnout(flag_config(rules=[CANARY]))
    second = Turnout(flag_config(rules=[CANARY]))
    assert [decide(first, key) for key in IDS[:1000]] == [decide(second, key) for key in IDS[:1000]]


def test_split_behind_a_condition_only_applies_to_matching_users() -> None:
    rule = {**CANARY, "when": {"plan": "free"}}
    turnout = Turnout(flag_config(rules=[rule]))
    assert decide(turnout, attributes={"plan": "pro"}).reason == Reason.DEFAULT
    assert decide(turnout, attributes={"plan": "free"}).reason == Reason.SPLIT


# --- hash_by --------------------------------------------------------------------------


def test_hash_by_buckets_on_the_attribute() -> None:
    turnout = Turnout(flag_config(hash_by="account", rules=[CANARY]))
    for account in (f"acct-{i}" for i in range(200)):
        a = decide(turnout, "alice", attributes={"account": account})
        b = decide(turnout, "bob", attributes={"account": account})
        assert (a.variant, a.bucket) == (b.variant, b.bucket)


def test_hash_by_falls_back_to_the_targeting_key() -> None:
    by_account = Turnout(flag_config(hash_by="account", rules=[CANARY]))
    by_key = Turnout(flag_config(rules=[CANARY]))
    for key in IDS[:500]:
        expected = decide(by_key, key)
        assert decide(by_account, key, attributes={"plan": "free"}) == expected
        assert decide(by_account, key, attributes={"account": ""}) == expected
        assert decide(by_account, key, attributes={"account": None}) == expected


def test_hash_by_attribute_differs_from_the_key() -> None:
    turnout = Turnout(flag_config(hash_by="account", rules=[CANARY]))
    buckets = {decide(turnout, "same-user", attributes={"account": f"acct-{i}"}).bucket for i in range(50)}
    assert len(buckets) > 1


# --- OVERRIDE -------------------------------------------------------------------------


def test_per_flag_overrides_win_over_rules() -> None:
    turnout = Turnout(flag_config(overrides={"qa-1": "workflow"}, rules=[PREMIUM, CANARY]))
    forced = decide(turnout, "qa-1", attributes={"plan": "premium"})
    assert (forced.variant, forced.engine, forced.reason) == ("workflow", "workflow", Reason.OVERRIDE)
    assert decide(turnout, "qa-2", attributes={"plan": "premium"}).reason == Reason.TARGETING_MATCH


def test_request_overrides_are_ignored_unless_allowed() -> None:
    turnout = Turnout(flag_config(rules=[PREMIUM]))
    decision = decide(turnout, overrides={"coordinator": "workflow"})
    assert (decision.variant, decision.reason) == ("legacy", Reason.DEFAULT)


def test_request_overrides_are_honoured_when_allowed() -> None:
    turnout = Turnout(flag_config(allow_overrides=True, rules=[PREMIUM]))
    decision = decide(turnout, attributes={"plan": "premium"}, overrides={"coordinator": "workflow"})
    assert (decision.variant, decision.engine, decision.reason) == ("workflow", "workflow", Reason.OVERRIDE)


def test_request_override_for_an_undeclared_variant_is_ignored() -> None:
    turnout = Turnout(flag_config(allow_overrides=True, rules=[PREMIUM]))
    decision = decide(turnout, attributes={"plan": "premium"}, overrides={"coordinator": "rocket"})
    assert (decision.variant, decision.reason) == ("langgraph", Reason.TARGETING_MATCH)


def test_request_override_for_another_flag_is_ignored() -> None:
    turnout = Turnout(flag_config(allow_overrides=True))
    assert decide(turnout, overrides={"other": "workflow"}).reason == Reason.DEFAULT


def test_allowlist_wins_over_a_request_override() -> None:
    turnout = Turnout(flag_config(allow_overrides=True, overrides={"qa-1": "langgraph"}))
    assert decide(turnout, "qa-1", overrides={"coordinator": "workflow"}).variant == "langgraph"


# --- DISABLED -------------------------------------------------------------------------


def test_kill_switch_serves_the_default_to_everyone() -> None:
    config = flag_config(
        enabled=False, allow_overrides=True, overrides={"qa-1": "workflow"}, rules=[PREMIUM, CANARY]
    )
    turnout = Turnout(config)
    contexts = [
        {"key": "qa-1"},
        {"key": "u2", "attributes": {"plan": "premium"}},
        {"key": "u3", "overrides": {"coordinator": "langgraph"}},
        *({"key": key} for key in IDS[:200]),
    ]
    decisions = {decide(turnout, **context) for context in contexts}
    assert decisions == {Decision("coordinator", "legacy", "legacy", Reason.DISABLED)}


# --- ERROR ----------------------------------------------------------------------------


def test_exception_during_evaluation_serves_the_default_with_error(monkeypatch: pytest.MonkeyPatch) -> None:
    turnout = Turnout(flag_config(rules=[PREMIUM]))

    def broken(self: CompiledCondition, attributes: Any) -> bool:
        raise RuntimeError("condition blew up")

    monkeypatch.setattr(CompiledCondition, "__call__", broken)
    before = turnout.failures.count("decide")

    decision = decide(turnout, attributes={"plan": "premium"})
    again = decide(turnout, "u2")

    assert (decision.variant, decision.engine, decision.reason) == ("legacy", "legacy", Reason.ERROR)
    assert decision.error is not None
    assert "condition blew up" in decision.error
    assert again.reason == Reason.ERROR
    assert turnout.failures.count("decide") == before + 2


def test_unknown_flag_is_an_error_not_an_exception() -> None:
    turnout = Turnout(flag_config())
    decision = turnout.decide("no-such-flag", RoutingContext("u1"))
    assert decision.reason == Reason.ERROR
    assert decision.flag == "no-such-flag"
    assert decision.engine is None
    assert decision.error is not None
    assert "no-such-flag" in decision.error
    assert turnout.failures.count("decide") == 1


# --- kind = "value" -------------------------------------------------------------------


def test_value_flags_have_no_engine() -> None:
    config = {
        "flags": {
            "tone": {
                "kind": "value",
                "variants": ["plain", "warm", "formal"],
                "default": "plain",
                "allow_overrides": True,
                "overrides": {"qa-1": "formal"},
                "rules": [
                    {"when": {"plan": "premium"}, "serve": "warm"},
                    {"split": {"plain": 50, "formal": 50}, "when": {"plan": "free"}},
                ],
            }
        }
    }
    turnout = Turnout(config)
    decisions = [
        decide(turnout, flag="tone"),
        decide(turnout, flag="tone", attributes={"plan": "premium"}),
        decide(turnout, flag="tone", attributes={"plan": "free"}),
        decide(turnout, "qa-1", flag="tone"),
        decide(turnout, flag="tone", overrides={"tone": "warm"}),
    ]
    assert [d.reason for d in decisions] == [
        Reason.DEFAULT,
        Reason.TARGETING_MATCH,
        Reason.SPLIT,
        Reason.OVERRIDE,
        Reason.OVERRIDE,
    ]
    assert [d.variant for d in decisions][:2] == ["plain", "warm"]
    assert {d.engine for d in decisions} == {None}


# --- time-based rollout ---------------------------------------------------------------

RAMP = {
    "name": "ramp",
    "experiment": "workflow-ramp",
    "split": {"legacy": 90, "workflow": 10},
    "rollout": {"steps": [10, 25, 50, 100], "every": "1d", "start": "2026-03-01T00:00:00Z"},
}


def rollout_turnout(clock: FakeClock, *extra_rules: dict[str, Any]) -> Turnout:
    return Turnout(flag_config(rules=[RAMP, *extra_rules]), clock=clock)


def treated(turnout: Turnout, ids: list[str] = IDS) -> set[str]:
    return {key for key in ids if decide(turnout, key).variant == "workflow"}


def test_rollout_share_grows_day_by_day_and_nobody_leaves_the_treatment() -> None:
    clock = FakeClock(START)
    turnout = rollout_turnout(clock)
    previous: set[str] = set()
    for day, share in enumerate([0.10, 0.25, 0.50, 1.00, 1.00]):
        clock.now = START + day * DAY + DAY / 2
        now_treated = treated(turnout)
        assert abs(len(now_treated) / len(IDS) - share) < 0.02, (day, len(now_treated))
        assert previous <= now_treated
        previous = now_treated
    assert len(previous) == len(IDS)


def test_rollout_steps_change_exactly_at_the_step_boundary() -> None:
    clock = FakeClock(START + DAY - 1)
    turnout = rollout_turnout(clock)
    before = treated(turnout)
    clock.now = START + DAY
    after = treated(turnout)
    assert before < after
    assert abs(len(after) / len(IDS) - 0.25) < 0.02


def test_rollout_decisions_are_splits_of_the_experiment() -> None:
    turnout = rollout_turnout(FakeClock(START))
    decision = decide(turnout)
    assert (decision.reason, decision.rule, decision.experiment) == (Reason.SPLIT, "ramp", "workflow-ramp")


def test_before_its_start_the_rollout_rule_is_skipped() -> None:
    clock = FakeClock(START - 1)
    catch_all = {"name": "rest", "serve": "langgraph"}
    turnout = rollout_turnout(clock, catch_all)
    assert {decide(turnout, key).rule for key in IDS[:300]} == {"rest"}
    assert {decide(rollout_turnout(clock), key).reason for key in IDS[:300]} == {Reason.DEFAULT}
    clock.now = START
    assert {decide(turnout, key).rule for key in IDS[:300]} == {"ramp"}


def test_a_rollout_needs_a_fixed_start() -> None:
    # "When this process loaded it" would differ between replicas and reset on restarts.
    rule = {**RAMP, "rollout": {"steps": [10, 25, 50, 100], "every": "1d"}}
    with pytest.raises(ConfigError) as caught:
        Turnout(flag_config(rules=[rule]))
    assert [(i.path, i.value) for i in caught.value.issues] == [
        ("flags.coordinator.rules[0].rollout.start", NOTHING)
    ]
    assert "(got" not in str(caught.value.issues[0])


def test_processes_started_at_different_times_agree_on_the_step() -> None:
    early = Turnout(flag_config(rules=[RAMP]), clock=FakeClock(START + 2 * DAY + 5))
    late_clock = FakeClock(START - 7 * DAY)  # built a week before the start, asked later
    late = Turnout(flag_config(rules=[RAMP]), clock=late_clock)
    late_clock.now = START + 2 * DAY + 5
    assert treated(early) == treated(late)


def test_rollout_spreads_the_share_over_several_treatments() -> None:
    rule = {**RAMP, "split": {"legacy": 50, "workflow": 25, "langgraph": 25}}
    clock = FakeClock(START + 2 * DAY)
    counts = Counter(decide(Turnout(flag_config(rules=[rule]), clock=clock), key).variant for key in IDS)
    assert abs(counts["workflow"] / len(IDS) - 0.25) < 0.02
    assert abs(counts["langgraph"] / len(IDS) - 0.25) < 0.02


_ROLLOUT_CLOCK = FakeClock(START)
_ROLLOUT = rollout_turnout(_ROLLOUT_CLOCK)


@given(key=st.text(max_size=40), days=st.lists(st.floats(0, 10 * DAY), min_size=2, max_size=6))
def test_rollout_is_monotone_for_any_user(key: str, days: list[float]) -> None:
    variants = []
    for offset in sorted(days):
        _ROLLOUT_CLOCK.now = START + offset
        variants.append(decide(_ROLLOUT, key).variant)
    if "workflow" in variants:
        first = variants.index("workflow")
        assert set(variants[first:]) == {"workflow"}


# --- intent rules ---------------------------------------------------------------------


class CountingClassifier:
    def __init__(self, label: str = "refund", confidence: float = 0.95) -> None:
        self.calls: list[str] = []
        self.intent = Intent(label, confidence)

    def predict(self, text: str) -> Intent:
        self.calls.append(text)
        return self.intent


class BrokenClassifier:
    def predict(self, text: str) -> Intent:
        raise RuntimeError("model file is gone")


REFUNDS = {"name": "refunds", "when": {"intent": "refund"}, "serve": "workflow"}


def intent_config(enabled: bool = True) -> dict[str, Any]:
    config = flag_config(rules=[REFUNDS, {**REFUNDS, "name": "refunds-again"}, PREMIUM])
    config["flags"]["tone"] = {
        "kind": "value",
        "variants": ["plain", "careful"],
        "default": "plain",
        "rules": [
            {"name": "upset", "when": {"intent": {"$in": ["refund", "complaint"]}}, "serve": "careful"}
        ],
    }
    config["intent"] = {"enabled": enabled}
    return copy.deepcopy(config)


def test_intent_rule_matches_the_classified_message() -> None:
    classifier = CountingClassifier()
    turnout = Turnout(intent_config(), classifier=classifier)
    decision = decide(turnout, text="I want my money back")
    assert (decision.variant, decision.reason, decision.rule) == (
        "workflow",
        Reason.TARGETING_MATCH,
        "refunds",
    )
    assert decision.intent == "refund"
    assert classifier.calls == ["I want my money back"]


def test_classifier_runs_at_most_once_per_context() -> None:
    classifier = CountingClassifier(label="billing")
    turnout = Turnout(intent_config(), classifier=classifier)
    context = RoutingContext("u1", {"plan": "premium"}, text="where is my invoice")

    coordinator = turnout.decide("coordinator", context)
    tone = turnout.decide("tone", context)
    turnout.decide("coordinator", context)

    assert (coordinator.rule, tone.reason) == ("premium", Reason.DEFAULT)
    assert len(classifier.calls) == 1
    assert context.intent == Intent("billing", 0.95)


def test_intent_on_another_flag_reuses_the_classification() -> None:
    classifier = CountingClassifier()
    turnout = Turnout(intent_config(), classifier=classifier)
    context = RoutingContext("u1", text="refund me")
    assert turnout.decide("tone", context).variant == "careful"
    assert turnout.decide("coordinator", context).rule == "refunds"
    assert len(classifier.calls) == 1


def test_classifier_is_not_called_when_no_rule_needs_intent() -> None:
    classifier = CountingClassifier()
    config = intent_config()
    config["flags"]["coordinator"]["rules"] = [PREMIUM, CANARY]
    turnout = Turnout(config, classifier=classifier)
    decide(turnout, text="refund please", attributes={"plan": "premium"})
    decide(turnout, text="refund please")
    assert classifier.calls == []


def test_an_earlier_matching_rule_spares_the_classifier() -> None:
    classifier = CountingClassifier()
    config = intent_config()
    config["flags"]["coordinator"]["rules"] = [PREMIUM, REFUNDS]
    turnout = Turnout(config, classifier=classifier)
    assert decide(turnout, text="refund please", attributes={"plan": "premium"}).rule == "premium"
    assert classifier.calls == []


def test_intent_rules_are_dropped_when_intent_is_disabled() -> None:
    classifier = CountingClassifier()
    turnout = Turnout(intent_config(enabled=False), classifier=classifier)
    decision = decide(turnout, text="I want my money back")
    assert (decision.variant, decision.reason) == ("legacy", Reason.DEFAULT)
    assert decide(turnout, flag="tone", text="I want my money back").reason == Reason.DEFAULT
    assert decide(turnout, attributes={"plan": "premium"}, text="refund").rule == "premium"
    assert classifier.calls == []


def test_failing_classifier_gives_unknown_and_other_rules_still_route() -> None:
    turnout = Turnout(intent_config(), classifier=BrokenClassifier())
    context = RoutingContext("u1", {"plan": "premium"}, text="I want my money back")

    decision = turnout.decide("coordinator", context)

    assert (decision.variant, decision.reason, decision.rule) == (
        "langgraph",
        Reason.TARGETING_MATCH,
        "premium",
    )
    assert context.intent is not None
    assert context.intent.label == "unknown"
    assert turnout.failures.count("intent.classify") == 1
    assert turnout.failures.count("decide") == 0
    assert decide(turnout, text="refund").reason == Reason.DEFAULT
    assert turnout.failures.count("intent.classify") == 2


def test_message_without_text_is_unknown_without_asking_the_classifier() -> None:
    classifier = CountingClassifier()
    turnout = Turnout(intent_config(), classifier=classifier)
    assert decide(turnout).reason == Reason.DEFAULT
    assert decide(turnout, text="   ").reason == Reason.DEFAULT
    assert classifier.calls == []


def test_intent_given_on_the_context_is_used_as_is() -> None:
    classifier = CountingClassifier(label="greeting")
    turnout = Turnout(intent_config(), classifier=classifier)
    decision = decide(turnout, text="hi", intent=Intent("refund", 1.0))
    assert decision.rule == "refunds"
    assert classifier.calls == []


def test_intent_condition_can_mix_with_attributes_and_confidence() -> None:
    config = intent_config()
    config["flags"]["coordinator"]["rules"] = [
        {
            "name": "sure-free-refund",
            "when": {"intent": "refund", "intent_confidence": {"$gte": 0.9}, "plan": "free"},
            "split": {"legacy": 50, "workflow": 50},
            "experiment": "refund-flow",
        }
    ]
    sure = Turnout(config, classifier=CountingClassifier(confidence=0.95))
    unsure = Turnout(config, classifier=CountingClassifier(confidence=0.5))
    decision = decide(sure, attributes={"plan": "free"}, text="refund")
    assert (decision.reason, decision.experiment, decision.intent) == (Reason.SPLIT, "refund-flow", "refund")
    assert decide(sure, attributes={"plan": "pro"}, text="refund").reason == Reason.DEFAULT
    assert decide(unsure, attributes={"plan": "free"}, text="refund").reason == Reason.DEFAULT
