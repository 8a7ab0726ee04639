"""TurnoutProvider driven by the real openfeature-sdk client: types, reasons, events, exposures."""

from __future__ import annotations

from collections.abc import Iterator
from importlib.metadata import distribution
from typing import Any

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from openfeature.track import TrackingEventDetails
from turnout_openfeature import TurnoutProvider, changed_flags

from turnout import RoutingContext, Turnout
from turnout.context import use_context
from turnout.events import MemorySink
from turnout.plugins import clear_cache, installed_plugins, load_plugin

USERS = [f"user-{i}" for i in range(300)]

CONFIG: dict[str, Any] = {
    "flags": {
        "new-checkout": {
            "kind": "value",
            "values": {"on": True, "off": False},
            "default": "off",
            "overrides": {"qa-1": "on"},
            "rules": [
                {"name": "pro", "when": {"plan": "pro"}, "serve": "on"},
                {"name": "half", "experiment": "checkout-test", "split": {"on": 50, "off": 50}},
            ],
        },
        "greeting": {"kind": "value", "values": {"formal": "Good day", "casual": "Hi"}, "default": "casual"},
        "page-size": {"kind": "value", "values": {"small": 10, "large": 50}, "default": "large"},
        "sampling": {"kind": "value", "values": {"low": 0.25, "all": 1}, "default": "all"},
        "layout": {
            "kind": "value",
            "values": {"grid": {"columns": 3}, "list": {"columns": 1}},
            "default": "grid",
            "enabled": False,
        },
        "coordinator": {
            "variants": ["legacy", "workflow"],
            "default": "legacy",
            "rules": [
                {"name": "canary", "experiment": "workflow-canary", "split": {"legacy": 70, "workflow": 30}}
            ],
        },
    }
}


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def turnout(sink: MemorySink) -> Turnout:
    return Turnout(CONFIG, event_sinks=[sink])


@pytest.fixture
def client(turnout: Turnout) -> Iterator[OpenFeatureClient]:
    api.set_provider(TurnoutProvider(turnout))
    yield api.get_client()
    api.shutdown()
    api.clear_providers()


def test_every_type_resolves_with_its_reason(client: OpenFeatureClient) -> None:
    pro = EvaluationContext("user-1", {"plan": "pro"})
    checkout = client.get_boolean_details("new-checkout", False, pro)
    assert (checkout.value, checkout.variant, checkout.reason) == (True, "on", Reason.TARGETING_MATCH)
    assert checkout.flag_metadata == {"turnoutReason": "TARGETING_MATCH", "rule": "pro"}
    assert client.get_string_details("greeting", "", pro).value == "Hi"
    size = client.get_integer_details("page-size", 0, pro)
    assert (size.value, size.reason) == (50, Reason.DEFAULT)
    sampling = client.get_float_details("sampling", 0.0, pro)
    assert (sampling.value, type(sampling.value)) == (1.0, float)
    layout = client.get_object_details("layout", {}, pro)
    assert (layout.value, layout.reason) == ({"columns": 3}, Reason.DISABLED)
    engine = client.get_string_details("coordinator", "", pro)
    assert engine.value == engine.flag_metadata["engine"]


def test_split_variants_are_turnouts_decisions(client: OpenFeatureClient, turnout: Turnout) -> None:
    for user in USERS:
        details = client.get_boolean_details("new-checkout", False, EvaluationContext(user, {"plan": "free"}))
        decided = turnout.decide("new-checkout", RoutingContext(user, {"plan": "free"}))
        assert (details.variant, details.value) == (decided.variant, decided.variant == "on")
        assert details.reason == Reason.SPLIT
        assert details.flag_metadata["experiment"] == "checkout-test"


def test_a_per_user_override_is_targeting(client: OpenFeatureClient) -> None:
    details = client.get_boolean_details("new-checkout", False, EvaluationContext("qa-1"))
    assert (details.value, details.reason, details.flag_metadata["turnoutReason"]) == (
        True,
        Reason.TARGETING_MATCH,
        "OVERRIDE",
    )


def test_errors_give_the_default_with_a_code(client: OpenFeatureClient) -> None:
    missing = client.get_string_details("no-such-flag", "fallback", EvaluationContext("u"))
    assert (missing.value, missing.error_code, missing.reason) == (
        "fallback",
        ErrorCode.FLAG_NOT_FOUND,
        Reason.ERROR,
    )
    keyless = client.get_boolean_details("new-checkout", False, EvaluationContext(None, {"plan": "free"}))
    assert (keyless.value, keyless.error_code) == (False, ErrorCode.TARGETING_KEY_MISSING)
    mismatch = client.get_integer_details("greeting", 7, EvaluationContext("u"))
    assert (mismatch.value, mismatch.error_code) == (7, ErrorCode.TYPE_MISMATCH)
    assert "string" in (mismatch.error_message or "")


def test_inside_a_routed_request_the_requests_user_is_the_subject(
    client: OpenFeatureClient, turnout: Turnout
) -> None:
    for user in USERS[:50]:
        with use_context(RoutingContext(user, {"plan": "free"})):
            details = client.get_boolean_details("new-checkout", False)
        assert details.variant == turnout.decide("new-checkout", RoutingContext(user)).variant


async def test_resolutions_are_exposures(
    client: OpenFeatureClient, turnout: Turnout, sink: MemorySink
) -> None:
    for user in USERS[:40]:
        client.get_string_details("coordinator", "", EvaluationContext(user))
    await turnout.events.stop()
    exposed = {(e.distinct_id, e.properties["variant"]) for e in sink.events if e.name == "$exposure"}
    assert exposed == {
        (user, turnout.decide("coordinator", RoutingContext(user)).variant) for user in USERS[:40]
    }


async def test_tracking_events_become_turnout_events(
    client: OpenFeatureClient, turnout: Turnout, sink: MemorySink
) -> None:
    details = TrackingEventDetails(value=42.5, attributes={"currency": "EUR"})
    client.track("checkout.completed", EvaluationContext("user-3"), details)
    await turnout.events.stop()
    (event,) = [e for e in sink.events if e.name == "checkout.completed"]
    assert (event.distinct_id, event.properties["value"], event.properties["currency"]) == (
        "user-3",
        42.5,
        "EUR",
    )


def test_a_reload_emits_configuration_changed_with_the_flags(
    turnout: Turnout, client: OpenFeatureClient
) -> None:
    heard: list[EventDetails] = []
    client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, heard.append)
    flags = {**CONFIG["flags"], "page-size": {**CONFIG["flags"]["page-size"], "default": "small"}}
    turnout.reload({"flags": flags})
    turnout.reload({"flags": flags})  # nothing changed: no event
    assert [event.flags_changed for event in heard] == [["page-size"]]
    assert client.get_integer_value("page-size", 0, EvaluationContext("u")) == 10


def test_shutdown_stops_listening_to_reloads(turnout: Turnout) -> None:
    provider = TurnoutProvider(turnout)
    emitted: list[Any] = []
    provider.attach(lambda _provider, event, details: emitted.append(event))
    provider.initialize(EvaluationContext())
    provider.shutdown()
    turnout.reload({"flags": {"page-size": CONFIG["flags"]["page-size"]}})
    assert emitted == []


def test_changed_flags_names_added_removed_and_changed() -> None:
    before = Turnout(CONFIG).config
    flags = dict(CONFIG["flags"])
    del flags["layout"]
    flags["greeting"] = {**flags["greeting"], "default": "formal"}
    flags["extra"] = {"kind": "value", "variants": ["x"], "default": "x"}
    after = Turnout({"flags": flags}).config
    assert changed_flags(before, after) == ["extra", "greeting", "layout"]


def test_installed_as_a_distribution_with_its_entry_point() -> None:
    clear_cache()
    assert distribution("turnout-openfeature").version == "0.1.0"
    assert load_plugin("turnout.providers", "openfeature") is TurnoutProvider
    listed = [
        (p.group, p.name, p.distribution) for p in installed_plugins() if p.group == "turnout.providers"
    ]
    assert listed == [("turnout.providers", "openfeature", "turnout-openfeature")]
