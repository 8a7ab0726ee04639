"""The PostHog plugin with the real SDK, against the capture server in conftest (127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest
from turnout_posthog import (
    PostHogConfigError,
    PostHogDeliveryError,
    PostHogExporter,
    PostHogSettings,
    PostHogSink,
    options_from_url,
    redact,
    to_capture,
)

from turnout import ConfigError, RoutingContext, Turnout
from turnout.config import EventsConfig
from turnout.events.model import Event
from turnout.events.sinks import sink_from_url
from turnout.events.tracker import EventTracker
from turnout.plugins import discover
from turnout.testing import MemorySink

if TYPE_CHECKING:
    from conftest import CaptureServer

KEY = "phc_TestKey1234567890abcdef"

FLAGS: dict[str, Any] = {
    "coordinator": {
        "variants": ["legacy", "workflow"],
        "default": "legacy",
        "rules": [{"name": "canary", "experiment": "wf-canary", "split": {"legacy": 0, "workflow": 100}}],
    }
}


@contextlib.contextmanager
def unused_port() -> Iterator[int]:
    """A loopback port bound but not listening: connections to it are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def sink_url(server: CaptureServer, **query: str) -> str:
    extra = "".join(f"&{name}={value}" for name, value in query.items())
    return f"posthog://?host={server.url}&api_key={KEY}{extra}"


def by_name(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {event["event"]: event for event in events}


# -- discovery, settings, redaction ----------------------------------------------------------


def test_both_entry_points_are_installed() -> None:
    assert discover("turnout.sinks")["posthog"].value == "turnout_posthog:PostHogSink"
    assert discover("turnout.exporters")["posthog"].value == "turnout_posthog:PostHogExporter"


def test_sink_url_and_environment_give_key_and_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POSTHOG_PROJECT_API_KEY", KEY)
    monkeypatch.setenv("POSTHOG_HOST", "https://eu.i.posthog.com/")
    from_env = sink_from_url("posthog")
    assert isinstance(from_env, PostHogSink)
    assert (from_env.settings.api_key, from_env.settings.host) == (KEY, "https://eu.i.posthog.com")

    from_url = sink_from_url("posthog://ph.example.com/ingest?gzip=false&timeout_s=2.5&batch_size=50")
    assert isinstance(from_url, PostHogSink)
    settings = from_url.settings
    assert settings.host == "https://ph.example.com/ingest"
    assert (settings.gzip, settings.timeout_s, settings.batch_size) == (False, 2.5, 50)

    monkeypatch.setenv("POSTHOG_API_KEY", "phc_preferred")
    assert PostHogSink().settings.api_key == "phc_preferred"  # POSTHOG_API_KEY comes first
    assert PostHogSink(api_key="phc_given", env={}).settings.api_key == "phc_given"


def test_url_options() -> None:
    assert options_from_url("posthog://") == {}
    assert options_from_url("posthog://?host=http://127.0.0.1:9&gzip=0") == {
        "host": "http://127.0.0.1:9",
        "gzip": "0",
    }
    for bad, message in [
        ("jsonl://x", "starts with posthog://"),
        ("posthog://a.example?host=https://b.example", "host twice"),
        ("posthog://?gzip=1&gzip=0", "'gzip' twice"),
        ("posthog://phc_secret@a.example", r"\?api_key="),
    ]:
        with pytest.raises(PostHogConfigError, match=message) as caught:
            options_from_url(bad)
        assert "phc_secret" not in str(caught.value)


def test_missing_key_fails_when_the_config_loads() -> None:
    with pytest.raises(ConfigError) as caught:
        Turnout({"events": {"sink": "posthog"}}, env={})
    assert "POSTHOG_API_KEY" in str(caught.value)
    with pytest.raises(PostHogConfigError, match="POSTHOG_API_KEY"):
        PostHogExporter(env={})


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        ({"host": "eu.i.posthog.com"}, "must start with http:// or https://"),
        ({"timeout_s": "soon"}, "timeout_s"),
        ({"timeout_s": 0}, "timeout_s"),
        ({"max_retries": -1}, "max_retries"),
        ({"gzip": "maybe"}, "gzip"),
        ({"colour": "blue"}, "colour"),
    ],
)
def test_bad_options_fail_without_quoting_the_key(options: dict[str, Any], problem: str) -> None:
    with pytest.raises(PostHogConfigError, match=problem) as caught:
        PostHogSettings.resolve(KEY, **options)
    assert KEY not in str(caught.value)


def test_the_key_is_redacted_in_reprs() -> None:
    assert redact("phc_abc123") == "phc_***"
    assert redact("phx_abc123") == "phx_***"
    assert redact("sk-live-abc123") == "***"
    assert redact("verylongprefix_abc") == "***"
    sink = PostHogSink(f"posthog://?api_key={KEY}")
    exporter = PostHogExporter(api_key=KEY, host="http://127.0.0.1:9")
    for shown in (repr(sink), repr(sink.settings), str(sink.settings), repr(exporter)):
        assert KEY not in shown
        assert "phc_***" in shown


def test_nothing_starts_before_the_first_write() -> None:
    before = {thread.name for thread in threading.enumerate()}
    PostHogSink(api_key=KEY, host="http://127.0.0.1:9")
    PostHogExporter(api_key=KEY, host="http://127.0.0.1:9")
    assert {thread.name for thread in threading.enumerate()} == before


# -- the events PostHog receives ----------------------------------------------------------------


async def test_events_arrive_with_posthogs_names_through_turnout(server: CaptureServer) -> None:
    config = {
        "telemetry": {"exporters": []},
        "flags": FLAGS,
        "events": {
            "sink": sink_url(server),
            "sinks": ["memory://"],
            "base_properties": {"environment": "test", "source": "chat_copilot"},
        },
    }
    turnout = Turnout(config, env={})
    assert isinstance(turnout.events.lanes[0].sink, PostHogSink)
    memory = turnout.events.lanes[1].sink
    assert isinstance(memory, MemorySink)
    await turnout.start()
    decision = turnout.decide("coordinator", RoutingContext("u1", session_id="s-1"))
    assert decision.variant == "workflow"
    when = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    turnout.track("session.escalate", distinct_id="u1", properties={"reason": "refund"}, timestamp=when)
    turnout.identify("u1", {"plan": "premium", "country": "DE"})
    await turnout.stop()

    assert server.statuses() == [200]
    request = server.requests[0]
    assert request.path == "/batch/"
    assert request.headers["Content-Encoding"] == "gzip"
    assert request.body["api_key"] == KEY
    events = by_name(server.accepted())
    assert set(events) == {"$feature_flag_called", "session.escalate", "$identify"}

    called = events["$feature_flag_called"]
    assert called["distinct_id"] == "u1"
    props = called["properties"]
    assert props["$feature_flag"] == "coordinator"
    assert props["$feature_flag_response"] == "workflow"
    assert props["$feature/coordinator"] == "workflow"
    assert (props["experiment"], props["rule"], props["reason"]) == ("wf-canary", "canary", "SPLIT")
    assert props["$session_id"] == "s-1"
    assert props["environment"] == "test" and props["source"] == "chat_copilot"
    assert "flag" not in props and "variant" not in props

    escalate = events["session.escalate"]
    assert escalate["distinct_id"] == "u1"
    assert escalate["timestamp"] == "2026-01-02T03:04:05.678000+00:00"
    assert escalate["properties"]["reason"] == "refund"
    assert escalate["properties"]["environment"] == "test"

    identify = events["$identify"]
    assert identify["distinct_id"] == "u1"
    assert identify["properties"]["$set"] == {"plan": "premium", "country": "DE"}
    assert "$set" not in escalate["properties"]

    # The PostHog uuid is turnout's event id: a batch sent again is stored once.
    assert sorted(event["uuid"] for event in events.values()) == sorted(
        str(uuid.UUID(event.id)) for event in memory.events
    )


def test_ids_that_are_not_uuids_get_a_stable_uuid() -> None:
    event = Event("session.start", "u1", {"n": 1}, id="row-17")
    first, again = to_capture(event), to_capture(event)
    assert first.uuid == again.uuid
    assert uuid.UUID(str(first.uuid)).version == 5
    assert first.properties == {"n": 1} and first.distinct_id == "u1"


# -- failures and retries ---------------------------------------------------------------------


async def test_write_raises_until_posthog_accepts(
    server: CaptureServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sink = PostHogSink(sink_url(server, gzip="false"))
    batch = [Event("session.start", f"u{n}", {"n": n}) for n in range(3)]
    server.fail_next(1, 500)
    with pytest.raises(PostHogDeliveryError, match="3 rejected") as caught:
        await sink.write(batch)
    assert "500" in str(caught.value)
    server.fail_next(1, 400)
    with pytest.raises(PostHogDeliveryError, match="400"):
        await sink.write(batch)
    await sink.write(batch)
    await sink.close()

    assert server.statuses() == [500, 400, 200]
    assert all("Content-Encoding" not in request.headers for request in server.requests)
    assert [event["properties"]["n"] for event in server.accepted()] == [0, 1, 2]
    # Every attempt carried the same uuids.
    attempts = [[event["uuid"] for event in request.events] for request in server.requests]
    assert attempts[0] == attempts[1] == attempts[2]
    assert KEY not in caplog.text
    with pytest.raises(PostHogDeliveryError, match="closed"):
        await sink.write(batch)


async def test_write_raises_while_posthog_is_unreachable() -> None:
    with unused_port() as port:
        sink = PostHogSink(api_key=KEY, host=f"http://127.0.0.1:{port}", timeout_s=2)
        with pytest.raises(PostHogDeliveryError, match="rejected"):
            await sink.write([Event("session.start", "u1")])
        await sink.close()


async def test_tracker_retries_a_failed_batch_until_posthog_recovers(server: CaptureServer) -> None:
    server.fail_next(2, 503)
    tracker = EventTracker.from_config(EventsConfig(sink=sink_url(server)), retry_base_s=0.01)
    assert isinstance(tracker.lanes[0].sink, PostHogSink)
    await tracker.start()
    for n in range(5):
        assert tracker.track("query.order", distinct_id=f"u{n}", properties={"n": n})
    assert await tracker.aflush(timeout_s=15)
    assert await tracker.stop()

    counts = tracker.counts()
    assert counts["sink.posthog.failed_writes"] == 2
    assert counts["sink.posthog.delivered"] == 5
    assert tracker.failures.snapshot()["events.sink.posthog"] == {"PostHogDeliveryError": 2}
    assert server.statuses() == [503, 503, 200]
    assert sorted(event["properties"]["n"] for event in server.accepted()) == [0, 1, 2, 3, 4]


async def test_a_write_that_outlasts_its_deadline_fails_and_is_stored_once(server: CaptureServer) -> None:
    sink = PostHogSink(sink_url(server, flush_timeout_s="0.2"))
    batch = [Event("session.start", "u1", {"n": 1})]
    server.hold()
    with pytest.raises(PostHogDeliveryError, match="1 still unsent at the flush deadline"):
        await sink.write(batch)
    server.release()
    await sink.write(batch)  # the retry turnout would make
    await sink.close()
    # The slow upload got through after all, and so did the retry: the same event, one uuid.
    assert server.statuses() == [200, 200]
    first, second = server.accepted()
    assert (first["uuid"], first["properties"]["n"]) == (second["uuid"], second["properties"]["n"])


def test_sync_flush_without_an_event_loop(server: CaptureServer) -> None:
    tracker = EventTracker.from_config(EventsConfig(sink=sink_url(server)))
    tracker.track("ticket.closed", distinct_id="agent-1", properties={"ticket": 42})
    tracker.identify("agent-1", {"team": "billing"})
    assert tracker.flush(timeout_s=10)
    assert asyncio.run(tracker.stop())  # closes the sink
    events = by_name(server.accepted())
    assert events["ticket.closed"]["properties"]["ticket"] == 42
    assert events["$identify"]["properties"]["$set"] == {"team": "billing"}


# -- the metrics exporter -------------------------------------------------------------------------


async def test_exporter_sends_a_metrics_event_per_component_and_variant(server: CaptureServer) -> None:
    config = {
        "flags": FLAGS,
        "events": {"enabled": False},
        "telemetry": {
            "exporters": ["posthog"],
            "snapshot_interval_s": 3600,
            "exporter_options": {"posthog": {"api_key": KEY, "host": server.url, "distinct_id": "svc-a"}},
        },
    }
    turnout = Turnout(config, env={})
    turnout.add_engine("legacy", lambda message: "legacy")
    turnout.add_engine("workflow", lambda message: f"workflow: {message}")
    await turnout.start()
    assert await turnout.run("coordinator", "hi", context=RoutingContext("u1")) == "workflow: hi"
    await turnout.stop()  # exports a final snapshot, then shuts the exporter down

    assert "exporter.posthog" not in turnout.failures.snapshot()
    events = server.accepted()
    assert {event["event"] for event in events} == {"turnout_metrics"}
    assert {event["distinct_id"] for event in events} == {"svc-a"}
    components = {
        e["properties"]["component"]: e["properties"]
        for e in events
        if e["properties"]["kind"] == "component"
    }
    engine = components["engine.workflow"]
    assert engine["engine"] == "workflow"
    assert (engine["total_requests"], engine["success_rate"], engine["error_count"]) == (1, 1.0, 0)
    assert engine["latency_p99_ms"] >= 0 and engine["status"] == "healthy"
    assert engine["window_total_requests"] == 1
    assert engine["$process_person_profile"] is False
    variants = [e["properties"] for e in events if e["properties"]["kind"] == "variant"]
    assert [(v["experiment"], v["flag"], v["variant"], v["exposures"]) for v in variants] == [
        ("wf-canary", "coordinator", "workflow", 1)
    ]


def test_export_raises_when_posthog_rejects_the_snapshot(server: CaptureServer) -> None:
    from turnout.telemetry.snapshot import snapshot_from

    exporter = PostHogExporter(api_key=KEY, host=server.url, event="ops.metrics")
    snapshot = snapshot_from({"components": {"decide": {"total_requests": 3}}}, interval_s=10)
    server.fail_next(1, 500)
    with pytest.raises(PostHogDeliveryError):
        exporter.export(snapshot)
    exporter.export(snapshot)
    assert exporter.force_flush(1.0)
    exporter.shutdown()
    sent = server.requests
    assert [request.status for request in sent] == [500, 200]
    assert sent[0].events[0]["uuid"] == sent[1].events[0]["uuid"]  # one snapshot, one uuid per event
    assert sent[1].events[0]["event"] == "ops.metrics"
    assert sent[1].events[0]["properties"]["total_requests"] == 3
