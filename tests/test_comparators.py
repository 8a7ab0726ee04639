"""Comparators judge a shadow result against the served one: match, mismatch, score."""

from __future__ import annotations

import asyncio
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from turnout import RoutingContext, Turnout
from turnout.comparators import (
    Agreement,
    agreement,
    exact,
    json_structure,
    normalise_text,
    normalised,
    resolve_comparator,
)
from turnout.plugins import PluginError


def test_exact_is_equality() -> None:
    assert exact({"a": 1}, {"a": 1}) == Agreement(True, 1.0)
    assert exact("Yes", "yes") == Agreement(False, 0.0)


@pytest.mark.parametrize(
    ("served", "shadow"),
    [
        ("Your order ships tomorrow.", "your order ships  tomorrow"),
        ("Hello,world!", "hello world"),
        ("  Refund\tissued ", "REFUND ISSUED"),
        ("你好，世界。", "你好 世界"),
        ({"reply": "OK!", "escalated": False}, {"reply": "ok", "escalated": False}),
    ],
)
def test_normalised_ignores_case_punctuation_and_whitespace(served: Any, shadow: Any) -> None:
    assert normalised(served, shadow) == Agreement(True, 1.0)


def test_normalised_scores_a_mismatch_by_similarity() -> None:
    close = normalised("Your refund was issued today", "Your refund was issued yesterday")
    far = normalised("Your refund was issued today", "Please hold for an agent")
    assert not close.match and not far.match
    assert 0.7 < close.score < 1.0
    assert far.score < close.score
    assert normalised({"escalated": True}, {"escalated": False}).match is False


def test_normalise_text() -> None:
    assert normalise_text("Ｗhere's  MY order?!") == "where s my order"


def test_json_compares_structure_and_values_ignoring_key_order() -> None:
    assert json_structure('{"a": 1, "b": [1, 2]}', {"b": [1, 2], "a": 1}) == Agreement(True, 1.0)
    half = json_structure({"a": 1, "b": 2}, {"a": 1, "b": 3})
    assert half == Agreement(False, 0.5)
    assert json_structure({"a": True}, {"a": 1}).match is False  # JSON's true is not 1
    assert json_structure({"a": 1}, {"a": 1, "c": 2}) == Agreement(False, 0.5)
    assert json_structure("not json", "not json").match is True
    assert json_structure({}, {}).match is True


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, Agreement(True, 1.0)),
        (False, Agreement(False, 0.0)),
        (0.95, Agreement(True, 0.95)),
        (0.5, Agreement(False, 0.5)),
        (1.7, Agreement(True, 1.0)),
        ((False, 0.8), Agreement(False, 0.8)),
        (Agreement(True, 0.3), Agreement(True, 0.3)),
    ],
)
def test_a_comparator_may_answer_with_a_bool_a_score_or_an_agreement(value: Any, expected: Agreement) -> None:
    assert agreement(value, match_score=0.9) == expected


@pytest.mark.parametrize("value", ["yes", None, float("nan")])
def test_other_answers_are_errors(value: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        agreement(value, match_score=1.0)


def close_enough(served: Any, shadow: Any) -> float:
    return 1.0 - abs(len(str(served)) - len(str(shadow))) / 10


def test_comparators_resolve_from_code_module_paths_and_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_comparator("normalised", {}) is normalised
    assert resolve_comparator("judge", {"judge": close_enough}) is close_enough
    assert resolve_comparator(f"{__name__}:close_enough", {}) is close_enough
    point = EntryPoint("lengths", f"{__name__}:close_enough", "turnout.comparators")
    monkeypatch.setattr(
        "turnout.plugins._installed",
        lambda group: {"lengths": point} if group == "turnout.comparators" else {},
    )
    assert resolve_comparator("lengths", {}) is close_enough
    with pytest.raises(PluginError, match=r"no plugin 'missing' in entry-point group 'turnout.comparators'"):
        resolve_comparator("missing", {})


async def test_a_judge_given_in_code_may_be_async_and_score_against_match_score() -> None:
    async def judge(served: str, shadow: str) -> float:
        await asyncio.sleep(0)
        return 0.8 if served[0] == shadow[0] else 0.1

    turnout = Turnout(
        {
            "flags": {
                "coordinator": {
                    "variants": ["legacy", "graph"],
                    "default": "legacy",
                    "shadow": {"engine": "graph", "sample": 1, "comparator": "judge", "match_score": 0.75},
                }
            },
            "events": {"enabled": False},
        },
        env={},
        comparators={"judge": judge},
    )
    turnout.add_engine("legacy", lambda message: "alpha")
    turnout.add_engine("graph", lambda message: "apple" if message == "same" else "beta")
    for index, message in enumerate(["same", "same", "other"]):
        await turnout.run("coordinator", message, context=RoutingContext(f"u{index}"))
    assert await turnout.shadows.drain(10)
    stats = turnout.telemetry.live()["shadows"]["coordinator"]["legacy->graph"]["intents"]["unknown"]
    assert (stats["compared"], stats["matches"]) == (3, 2)
    assert stats["score"]["mean"] == pytest.approx((0.8 + 0.8 + 0.1) / 3)
    assert stats["score"]["histogram"][8] == 2
    assert stats["score"]["histogram"][1] == 1


async def test_a_failing_comparator_is_counted_not_raised() -> None:
    def broken(served: Any, shadow: Any) -> bool:
        raise ValueError("cannot compare")

    turnout = Turnout(
        {
            "flags": {
                "coordinator": {
                    "variants": ["legacy", "graph"],
                    "default": "legacy",
                    "shadow": {"engine": "graph", "sample": 1, "comparator": "broken"},
                }
            },
            "events": {"enabled": False},
        },
        env={},
        comparators={"broken": broken},
    )
    turnout.add_engine("legacy", lambda message: message)
    turnout.add_engine("graph", lambda message: message)
    assert await turnout.run("coordinator", "hi", context=RoutingContext("u1")) == "hi"
    assert await turnout.shadows.drain(10)
    stats = turnout.telemetry.live()["shadows"]["coordinator"]["legacy->graph"]["intents"]["unknown"]
    assert stats["errors"] == {"comparator:ValueError": 1}
    assert turnout.failures.count("shadow.comparator.broken") == 1
