"""`turnout.record()` and what exposures carry for per-segment reports."""

from __future__ import annotations

from typing import Any

from turnout import RoutingContext, Turnout
from turnout.context import use_context
from turnout.testing import MemorySink, make_turnout
from turnout.types import Intent

CONFIG: dict[str, Any] = {
    "telemetry": {"exporters": []},
    "flags": {
        "coordinator": {
            "variants": ["legacy", "workflow"],
            "default": "legacy",
            "rules": [{"name": "canary", "experiment": "wf-canary", "split": {"legacy": 50, "workflow": 50}}],
        },
        "plain": {"variants": ["on", "off"], "default": "off", "kind": "value"},
    },
}


def make(sink: MemorySink) -> Turnout:
    return make_turnout(
        CONFIG, engines={"legacy": lambda m: "legacy", "workflow": lambda m: "workflow"}, sink=sink
    )


async def test_record_attributes_the_value_to_the_serving_variant() -> None:
    sink = MemorySink()
    turnout = make(sink)
    await turnout.start()
    ctx = RoutingContext("u7", {"plan": "free"}, session_id="s-1")
    with use_context(ctx):
        decision = turnout.decide("coordinator")
        turnout.decide("plain")
        assert turnout.record("cost_usd", 0.012)
        assert turnout.record("tokens", 812, flag="coordinator")
        assert not turnout.record("tokens", 5, flag="plain")  # no experiment decided that flag
    await turnout.stop()

    records = [e for e in sink.events if e.name == "$record"]
    assert [r.properties.get("cost_usd") for r in records] == [0.012, None]
    assert records[1].properties["tokens"] == 812
    for record in records:
        assert record.distinct_id == "u7" and record.session_id == "s-1"
        assert record.properties["variant"] == decision.variant
        assert record.properties["experiment"] == "wf-canary"


async def test_record_refuses_bad_values_and_calls_outside_a_request_without_raising() -> None:
    sink = MemorySink()
    turnout = make(sink)
    await turnout.start()
    assert not turnout.record("cost_usd", 1.0)  # no request
    with use_context(RoutingContext("u1")):
        turnout.decide("coordinator")
        assert not turnout.record("cost_usd", float("nan"))
        assert not turnout.record("cost_usd", True)  # type: ignore[arg-type]
        assert not turnout.record("variant", 1.0)
        assert not turnout.record("", 1.0)
    await turnout.stop()
    assert not [e for e in sink.events if e.name == "$record"]
    assert turnout.events.invalid == 5


async def test_exposures_carry_the_intent_and_the_routing_attributes() -> None:
    sink = MemorySink()
    turnout = make(sink)
    await turnout.start()
    ctx = RoutingContext("u1", {"plan": "premium"}, intent=Intent("refund", 0.91234))
    turnout.decide("coordinator", ctx)
    turnout.decide("coordinator", RoutingContext("u2"))
    await turnout.stop()
    exposures = {e.distinct_id: e.properties for e in sink.events if e.kind == "exposure"}
    assert exposures["u1"]["intent"] == "refund"
    assert exposures["u1"]["intent_confidence"] == 0.9123
    assert exposures["u1"]["attributes"] == {"plan": "premium"}
    assert exposures["u1"]["rule"] == "canary"
    assert "intent" not in exposures["u2"] and "attributes" not in exposures["u2"]
