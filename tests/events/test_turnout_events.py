"""Events through `Turnout`: track/identify, automatic exposures, delivery on stop."""

from __future__ import annotations

from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from structlog.testing import capture_logs

from turnout import BoundEngine, ConfigError, RoutingContext, Turnout, experiment
from turnout.asgi import TurnoutMiddleware
from turnout.testing import MemorySink, make_turnout

CONFIG: dict[str, Any] = {
    "telemetry": {"exporters": []},
    "events": {"base_properties": {"environment": "test", "source": "turnout-tests"}},
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


async def test_exposures_are_recorded_once_per_user_flag_and_variant() -> None:
    sink = MemorySink()
    turnout = make(sink)
    await turnout.start()
    for _ in range(3):
        for user in ("u1", "u2"):
            turnout.decide("coordinator", RoutingContext(user))
    turnout.decide("plain", RoutingContext("u1"))  # not an experiment: no exposure
    await turnout.stop()

    exposures = [e for e in sink.events if e.kind == "exposure"]
    assert sorted(e.distinct_id for e in exposures) == ["u1", "u2"]
    props = exposures[0].properties
    assert props["flag"] == "coordinator" and props["experiment"] == "wf-canary"
    assert props["variant"] in {"legacy", "workflow"} and props["reason"] == "SPLIT"
    assert props["environment"] == "test"


async def test_track_inside_a_request_defaults_to_the_requests_user() -> None:
    sink = MemorySink()
    turnout = make(sink)

    @experiment("coordinator")
    async def chat(request: Request, engine: BoundEngine) -> JSONResponse:
        reply = await engine("hi")
        turnout.track("session.message", properties={"response_time_ms": 12})
        return JSONResponse({"reply": reply})

    app = Starlette(routes=[Route("/chat", chat, methods=["POST"])])
    app.add_middleware(TurnoutMiddleware, turnout=turnout)
    await turnout.start()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/chat", headers={"X-User-Id": "user-7", "X-Session-Id": "s-1"})
        assert response.status_code == 200
        anonymous = await client.post("/chat")
        assert anonymous.status_code == 200
    await turnout.stop()

    messages = [e for e in sink.events if e.name == "session.message"]
    assert next(e.distinct_id for e in messages) == "user-7"
    assert messages[0].session_id == "s-1"
    assert messages[0].properties["response_time_ms"] == 12
    assert messages[1].distinct_id.startswith("anonymous_")


async def test_bad_events_never_raise_and_are_counted() -> None:
    sink = MemorySink()
    turnout = make(sink)
    await turnout.start()
    assert turnout.track("bad name with \n newline", distinct_id="u1") is False
    assert turnout.track("ok.event", distinct_id="u1", properties={"x": object()}) is True
    assert turnout.identify("u1", {"plan": "premium"}) is True
    await turnout.stop()
    assert sink.names() == ["ok.event", "$identify"]
    assert "x" not in sink.events[0].properties
    assert turnout.events.counts()["invalid"] == 1


def test_an_unknown_sink_is_a_load_error() -> None:
    try:
        Turnout({"events": {"sink": "kafka://broker"}})
    except ConfigError as exc:
        assert exc.issues[0].path == "events.sink"
        assert exc.issues[0].value == "kafka://broker"
    else:
        raise AssertionError("an unknown sink must not load")


async def test_events_after_stop_are_refused_and_counted_as_lost() -> None:
    sink = MemorySink()
    turnout = make(sink)
    await turnout.start()
    await turnout.stop()
    assert turnout.track("late.event", distinct_id="u1") is False
    assert turnout.events.counts()["lost"] == 1
    await turnout.start()  # a restart accepts events again
    assert turnout.track("again.event", distinct_id="u1") is True
    await turnout.stop()
    assert sink.names() == ["again.event"]


async def test_events_tracked_before_start_warn_once_that_nothing_delivers_them() -> None:
    sink = MemorySink()
    turnout = make(sink)
    with capture_logs() as logs:
        turnout.track("session.start", "u1")
        turnout.track("session.start", "u2")
    (warning,) = [entry for entry in logs if entry["event"] == "turnout.events_not_started"]
    assert warning["log_level"] == "warning"
    assert "turnout.start()" in warning["note"]
    await turnout.start()  # they are delivered once it starts
    await turnout.stop()
    assert sorted(event.distinct_id for event in sink.events) == ["u1", "u2"]


async def test_a_started_tracker_does_not_warn() -> None:
    turnout = make(MemorySink())
    await turnout.start()
    with capture_logs() as logs:
        turnout.track("session.start", "u1")
    await turnout.stop()
    assert [entry for entry in logs if entry["event"] == "turnout.events_not_started"] == []
