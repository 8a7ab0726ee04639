"""`turnout.testing`: what a user's tests (and turnout's own) build on."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from turnout import Reason, RoutingContext
from turnout.testing import (
    FakeClock,
    InMemoryExporter,
    MemorySink,
    capture_decisions,
    capture_events,
    eventually,
    eventually_async,
    make_turnout,
)

CONFIG = {
    "flags": {
        "coordinator": {
            "variants": ["legacy", "workflow"],
            "default": "legacy",
            "rules": [
                {"name": "vip", "when": {"plan": "vip"}, "serve": "workflow"},
                {"name": "canary", "experiment": "wf-canary", "split": {"legacy": 50, "workflow": 50}},
            ],
        }
    }
}


async def test_make_turnout_reads_no_environment_and_writes_nothing_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COORDINATOR_ENGINE", "workflow")  # would force every request, if it were read
    exporter = InMemoryExporter()
    turnout = make_turnout(
        CONFIG,
        engines={"legacy": lambda m: f"legacy: {m}", "workflow": lambda m: f"wf: {m}"},
        exporter=exporter,
    )
    await turnout.start()
    assert await turnout.run("coordinator", "hi", context=RoutingContext("u", {"plan": "vip"})) == "wf: hi"
    turnout.track("session.escalate", distinct_id="u")
    await turnout.stop()
    assert os.listdir(tmp_path) == []
    assert exporter.snapshots and "engine.workflow" in exporter.snapshots[-1].components


def test_capture_decisions_sees_each_decision_in_order_and_nothing_after_the_block() -> None:
    turnout = make_turnout(CONFIG)
    with capture_decisions(turnout) as seen:
        turnout.decide("coordinator", RoutingContext("u1", {"plan": "vip"}))
        turnout.decide("coordinator", RoutingContext("u2"))
        turnout.decide("missing", RoutingContext("u3"))
    turnout.decide("coordinator", RoutingContext("u4"))
    assert [(d.flag, d.reason) for d in seen] == [
        ("coordinator", Reason.TARGETING_MATCH),
        ("coordinator", Reason.SPLIT),
        ("missing", Reason.ERROR),
    ]


def test_capture_events_in_sync_code_flushes_and_keeps_only_the_blocks_events() -> None:
    sink = MemorySink()
    turnout = make_turnout(CONFIG, sink=sink)
    turnout.track("before", distinct_id="u0")
    turnout.events.flush()
    with capture_events(turnout) as events:
        turnout.decide("coordinator", RoutingContext("u1"))
        turnout.track("session.escalate", distinct_id="u1", properties={"reason": "angry"})
    assert [event.name for event in events] == ["$exposure", "session.escalate"]
    assert events[1].properties["reason"] == "angry"
    assert sink.names()[0] == "before"


async def test_capture_events_in_async_code_awaits_the_flush() -> None:
    turnout = make_turnout(CONFIG)
    await turnout.start()
    async with capture_events(turnout) as events:
        turnout.track("checkout", distinct_id="u1")
    await turnout.stop()
    assert [event.name for event in events] == ["checkout"]


async def test_capture_events_refuses_a_plain_with_inside_a_running_loop() -> None:
    turnout = make_turnout(CONFIG)
    with pytest.raises(TypeError, match="async with capture_events"), capture_events(turnout):
        pass


def test_capture_events_needs_a_memory_sink() -> None:
    from turnout import Turnout

    with pytest.raises(TypeError, match="MemorySink"):
        capture_events(Turnout(CONFIG))


def test_eventually_waits_for_another_thread_and_names_what_it_gave_up_on() -> None:
    done = threading.Event()
    threading.Timer(0.05, done.set).start()
    eventually(done.is_set, "the timer")
    with pytest.raises(AssertionError, match=r"gave up after 0\.05 s waiting for the flag"):
        eventually(lambda: False, "the flag", timeout_s=0.05)


async def test_eventually_async_takes_sync_and_async_conditions() -> None:
    clock = FakeClock()
    turnout = make_turnout(CONFIG, clock=clock)
    calls = []

    async def flushed() -> bool:
        calls.append(1)
        return await turnout.events.aflush()

    await eventually_async(flushed, "the flush")
    await eventually_async(lambda: len(calls) == 1)
    with pytest.raises(AssertionError, match="waiting for never"):
        await eventually_async(lambda: False, "never", timeout_s=0.02)
