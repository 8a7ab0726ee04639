"""The event record: names, property checks, timestamps and ids."""

from __future__ import annotations

import json
import math
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from turnout.events.model import (
    MAX_KEY,
    MAX_NAME,
    Event,
    InvalidEvent,
    build_events,
    check_name,
    new_event_id,
    sanitize,
    to_epoch,
)


@pytest.mark.parametrize(
    "name",
    [
        "session.start",
        "session.escalate",
        "$feature_flag_called",
        "agent.session_takeover",
        "a:b c-d",
        "x" * 200,
    ],
)
def test_seed_names_are_valid(name: str) -> None:
    assert check_name(name) == name


@pytest.mark.parametrize(
    "name", ["", "x" * (MAX_NAME + 1), "bad/name", "naïve", "tab\tname", "line\n", 42, None]
)
def test_bad_names_are_refused(name: object) -> None:
    with pytest.raises(InvalidEvent):
        check_name(name)


def test_clean_properties_pass_through_as_compact_json() -> None:
    props = {"session_id": "s1", "response_time_ms": 120, "nested": {"a": [1, 2.5, None, True]}, "名": "值"}
    clean, text, dropped = sanitize(props)
    assert clean is props
    assert dropped == []
    assert json.loads(text) == props
    assert ", " not in text and "值" in text


def test_values_that_are_not_json_are_removed_and_reported() -> None:
    loop: dict[str, object] = {}
    loop["self"] = loop
    props = {
        "ok": 1,
        "when": datetime.now(UTC),
        "nan": math.nan,
        "inf": math.inf,
        "obj": object(),
        "tags": {"a"},
        "loop": loop,
    }
    clean, text, dropped = sanitize(props)
    assert clean == {"ok": 1}
    assert json.loads(text) == {"ok": 1}
    assert len(dropped) == 6
    assert all("not JSON-serialisable" in reason for reason in dropped)
    assert "ok" in props and "when" in props  # the caller's dict is left alone


def test_text_that_is_not_valid_unicode_is_removed() -> None:
    clean, text, dropped = sanitize({"ok": "héllo", "lone": "\ud800", "\udc00": 1, "deep": ["\udfff"]})
    assert clean == {"ok": "héllo"}
    assert text.encode() == '{"ok":"héllo"}'.encode()
    assert len(dropped) == 3


def test_events_whose_ids_are_not_valid_unicode_are_skipped() -> None:
    rejected: list[tuple[Exception, str]] = []
    raw = [
        ("track", "a", "u\ud800", None, {}, 1_769_688_000.0),
        ("track", "b", "u", "s\udc00", {}, 1_769_688_000.0),
        ("track", "c", "ü", "ß", {}, 1_769_688_000.0),
    ]
    events = build_events(raw, pytest.fail, lambda exc, name: rejected.append((exc, name)))
    assert [e.name for e in events] == ["c"]
    assert [name for _, name in rejected] == ["a", "b"]
    assert all(isinstance(exc, InvalidEvent) for exc, _ in rejected)


def test_bad_keys_are_removed() -> None:
    props = {1: "int key", "": "empty", "k" * (MAX_KEY + 1): "long", ("t",): "tuple", "fine": True}
    clean, text, dropped = sanitize(props)
    assert clean == {"fine": True}
    assert json.loads(text) == {"fine": True}
    assert len(dropped) == 4


def test_a_key_of_exactly_the_limit_is_kept() -> None:
    key = "k" * MAX_KEY
    assert sanitize({key: 1})[0] == {key: 1}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.datetimes() | st.binary(),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=10,
)


@given(st.dictionaries(st.one_of(st.text(max_size=250), st.integers()), json_values, max_size=6))
def test_sanitize_never_raises_and_always_gives_valid_json(props: dict[object, object]) -> None:
    clean, text, dropped = sanitize(props)
    assert json.loads(text) == json.loads(json.dumps(clean))
    assert set(clean) <= set(props)
    assert len(clean) + len(dropped) == len(props)
    assert all(isinstance(key, str) and 0 < len(key) <= MAX_KEY for key in clean)


def test_naive_datetimes_are_utc_and_aware_ones_keep_their_zone() -> None:
    naive = datetime(2026, 1, 29, 12, 0, 0)
    assert to_epoch(naive) == datetime(2026, 1, 29, 12, tzinfo=UTC).timestamp()
    paris = datetime(2026, 1, 29, 13, 0, 0, tzinfo=timezone(timedelta(hours=1)))
    assert to_epoch(paris) == to_epoch(naive)
    assert to_epoch(1_769_688_000) == 1_769_688_000.0


@pytest.mark.parametrize("value", [True, "2026-01-01", -1.0, 1e12, math.nan, None, datetime(1960, 1, 1)])
def test_bad_timestamps_are_refused(value: object) -> None:
    with pytest.raises(InvalidEvent):
        to_epoch(value)


def test_ids_are_uuid7_hex_unique_and_time_ordered() -> None:
    ids = [new_event_id(1_769_688_000 + i / 1000) for i in range(10_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    parsed = uuid.UUID(ids[0])
    assert len(ids[0]) == 32
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert int(ids[0][:12], 16) == 1_769_688_000_000


def test_build_event_fills_in_everything() -> None:
    reports: list[tuple[str, list[str]]] = []
    raw = ("track", "session.start", "u1", "s1", {"a": 1, "b": object()}, 1_769_688_000.25)
    [event] = build_events([raw], lambda name, dropped: reports.append((name, dropped)), pytest.fail)
    assert len(reports) == 1 and reports[0][0] == "session.start" and "'b'" in reports[0][1][0]
    assert event.name == "session.start"
    assert event.kind == "track"
    assert event.distinct_id == "u1"
    assert event.session_id == "s1"
    assert event.properties == {"a": 1}
    assert event.properties_text() == '{"a":1}'
    assert event.timestamp == datetime(2026, 1, 29, 12, 0, 0, 250_000, tzinfo=UTC)
    assert uuid.UUID(event.id).version == 7


def test_events_made_directly_have_defaults_and_serialise() -> None:
    event = Event("ticket.closed", "agent-7", {"sla_met": True})
    assert event.kind == "track"
    assert event.timestamp.tzinfo is UTC
    assert event.properties_text() == '{"sla_met":true}'
    record = event.as_record()
    assert record["event"] == "ticket.closed"
    assert record["properties"] == {"sla_met": True}
    assert datetime.fromisoformat(record["timestamp"]) == event.timestamp
