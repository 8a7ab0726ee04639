"""Shadow mode: a candidate engine beside the served one, off the critical path, never served."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from turnout import ConfigError, RoutingContext, Turnout, experiment
from turnout.asgi import TurnoutMiddleware
from turnout.decorators import BoundEngine
from turnout.shadow import SHADOW_SPAN

GUARD_S = 30  # fails a test that would otherwise hang; never a timing assertion


def make_turnout(
    shadow: dict[str, Any] | None = None, *, rules: list[Any] | None = None, **kwargs: Any
) -> Turnout:
    flag: dict[str, Any] = {"variants": ["legacy", "graph"], "default": "legacy", "rules": rules or []}
    if shadow is not None:
        flag["shadow"] = {"engine": "graph", "sample": 1.0, **shadow}
    config = {"flags": {"coordinator": flag}, "events": {"enabled": False}}
    return Turnout(config, env={}, **kwargs)


def figures(turnout: Turnout, served: str = "legacy", shadow: str = "graph") -> dict[str, Any]:
    """The cumulative figures of every intent of one served/shadow pair, summed over intents."""
    pair = turnout.telemetry.live()["shadows"]["coordinator"][f"{served}->{shadow}"]
    (stats,) = pair["intents"].values()
    return stats


def chat_app(turnout: Turnout) -> Starlette:
    @experiment("coordinator")
    async def chat(request: Request, engine: BoundEngine) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"reply": await engine(body["message"]), "variant": engine.variant})

    app = Starlette(routes=[Route("/chat", chat, methods=["POST"])])
    app.add_middleware(TurnoutMiddleware, turnout=turnout)
    return app


def client(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


# -- off the critical path -------------------------------------------------------------------


async def test_every_response_is_sent_before_a_much_slower_shadow_finishes() -> None:
    turnout = make_turnout({})
    responses_sent = 0
    sent_before_first_shadow_finished: list[int] = []
    release = asyncio.Event()

    @turnout.engine("legacy")
    async def legacy(message: str) -> str:
        await asyncio.sleep(0)
        return message.upper()

    @turnout.engine("graph")
    async def graph(message: str) -> str:
        # Ten times the served engine's work, and held until every response was received: a
        # response that waited for its shadow would never arrive (the guard fails the test).
        for _ in range(10):
            await asyncio.sleep(0)
        await release.wait()
        sent_before_first_shadow_finished.append(responses_sent)
        return message.upper()

    async with client(chat_app(turnout)) as http:
        for index in range(20):
            response = await asyncio.wait_for(
                http.post("/chat", json={"message": f"m{index}"}, headers={"X-User-Id": f"u{index}"}), GUARD_S
            )
            assert response.json()["reply"] == f"M{index}"
            responses_sent += 1
        release.set()
        assert await turnout.shadows.drain(GUARD_S)

    assert sent_before_first_shadow_finished[0] == 20
    assert figures(turnout)["compared"] == 20
    assert figures(turnout)["matches"] == 20


async def test_the_shadow_starts_only_after_the_response_body_is_sent() -> None:
    turnout = make_turnout({})
    events: list[str] = []
    turnout.add_engine("legacy", lambda message: message)

    @turnout.engine("graph")
    async def graph(message: str) -> str:
        events.append("shadow started")
        return message

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await turnout.run("coordinator", "hi")
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        await asyncio.sleep(0)
        events.append("body sent")
        await send({"type": "http.response.body", "body": b"end"})

    async def sink(message: Any) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body"):
            events.append("response sent")

    async def receive() -> Any:
        return {"type": "http.request", "body": b""}

    middleware = TurnoutMiddleware(app, turnout=turnout)
    await middleware({"type": "http", "headers": [(b"x-user-id", b"u1")], "query_string": b""}, receive, sink)
    assert await turnout.shadows.drain(GUARD_S)
    assert events == ["body sent", "response sent", "shadow started"]


async def test_a_crashing_or_hanging_shadow_never_affects_a_request() -> None:
    turnout = make_turnout({"timeout_ms": 20})
    turnout.add_engine("legacy", lambda message: f"ok:{message}")
    hang = asyncio.Event()

    @turnout.engine("graph")
    async def graph(message: str) -> str:
        if message.endswith("hang"):
            await hang.wait()
        raise RuntimeError("the candidate is broken")

    async with client(chat_app(turnout)) as http:
        for index, message in enumerate(["a", "b-hang", "c", "d-hang"]):
            response = await http.post("/chat", json={"message": message}, headers={"X-User-Id": f"u{index}"})
            assert response.status_code == 200
            assert response.json() == {"reply": f"ok:{message}", "variant": "legacy"}
        assert await turnout.shadows.drain(GUARD_S)

    stats = figures(turnout)
    assert stats["errors"] == {"RuntimeError": 2}
    assert stats["timeouts"] == 2
    assert stats["compared"] == 0
    assert stats["error_rate"] == 1.0
    assert turnout.failures.count("shadow.graph") == 2
    # The shadow's failures stay out of the engine's own (served) metrics and breaker.
    assert "engine.graph" not in turnout.metrics.snapshot(reset_window=False)["components"]
    assert turnout.engines["graph"].breaker is not None
    assert turnout.engines["graph"].breaker.allow()


async def test_concurrency_bound_and_queue_hold_under_a_thousand_concurrent_requests() -> None:
    turnout = make_turnout({"max_concurrency": 4, "queue_size": 10})
    turnout.add_engine("legacy", lambda message: message)
    running = 0
    most = 0
    release = asyncio.Event()

    @turnout.engine("graph")
    async def graph(message: str) -> str:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        return message

    async with client(chat_app(turnout)) as http:
        replies = await asyncio.gather(
            *(
                http.post("/chat", json={"message": f"m{i}"}, headers={"X-User-Id": f"u{i}"})
                for i in range(1000)
            )
        )
        assert all(reply.status_code == 200 for reply in replies)
        assert turnout.shadows.in_flight() == 4
        release.set()
        assert await turnout.shadows.drain(GUARD_S)

    assert most == 4
    stats = figures(turnout)
    assert stats["offered"] == 1000
    assert stats["skipped"] == 1000 - 4 - 10
    assert stats["compared"] == 14
    assert turnout.shadows.in_flight() == 0


async def test_a_sync_shadow_engine_holds_its_slot_until_its_thread_is_free() -> None:
    turnout = make_turnout({"max_concurrency": 1, "queue_size": 0, "timeout_ms": 10})
    turnout.add_engine("legacy", lambda message: message)
    gate = threading.Event()
    turnout.add_engine("graph", lambda message: gate.wait(GUARD_S) and message)

    await turnout.run("coordinator", "first", context=RoutingContext("u1"))

    async def timed_out() -> None:
        while not turnout.telemetry.live()["shadows"] or figures(turnout)["timeouts"] == 0:
            await asyncio.sleep(0.001)

    await asyncio.wait_for(timed_out(), GUARD_S)
    # Timed out, but its thread still runs: the only slot is taken, so this sample is skipped.
    await turnout.run("coordinator", "second", context=RoutingContext("u2"))
    gate.set()
    assert await turnout.shadows.drain(GUARD_S)
    stats = figures(turnout)
    assert (stats["offered"], stats["skipped"]) == (2, 1)
    assert stats["timeouts"] == 1


def test_sync_code_without_an_event_loop_shadows_on_a_background_loop() -> None:
    turnout = make_turnout({})
    turnout.add_engine("legacy", lambda message: message)
    turnout.add_engine("graph", lambda message: message + "?")
    engine = turnout.bind("coordinator", RoutingContext("u1"), sync=True)
    assert engine("hello") == "hello"
    assert asyncio.run(turnout.shadows.drain(GUARD_S))
    turnout.shadows.close()
    stats = figures(turnout)
    assert (stats["compared"], stats["matches"]) == (1, 1)  # "?" is punctuation to `normalised`


# -- which requests are shadowed ---------------------------------------------------------------


def test_sampling_is_sticky_by_targeting_key_and_independent_of_splits() -> None:
    turnout = make_turnout(
        {"sample": 0.2},
        rules=[{"name": "canary", "split": {"legacy": 80, "graph": 20}}],
    )
    (plan,) = turnout.runtime.shadows
    keys = [f"user-{i}" for i in range(20_000)]
    chosen = {key for key in keys if plan.sampled(RoutingContext(key))}
    assert chosen == {key for key in keys if plan.sampled(RoutingContext(key, {"plan": "other"}))}
    assert 0.18 < len(chosen) / len(keys) < 0.22
    in_graph = {key for key in keys if turnout.decide("coordinator", RoutingContext(key)).variant == "graph"}
    # Shadowed users are not the split's treatment users: its share of them is the split's own.
    assert 0.17 < len(chosen & in_graph) / len(chosen) < 0.23


async def test_a_rule_shadow_overrides_the_flag_one_and_the_candidate_never_shadows_itself() -> None:
    turnout = make_turnout(
        {},
        rules=[
            {
                "name": "vip",
                "when": {"plan": "vip"},
                "serve": "legacy",
                "shadow": {"engine": "third", "sample": 1},
            },
            {"name": "beta", "when": {"plan": "beta"}, "serve": "graph"},
        ],
    )
    for name in ("legacy", "graph", "third"):
        turnout.add_engine(name, lambda message, name=name: f"{name}:{message}")
    for plan in ("vip", "beta", "free"):
        await turnout.run("coordinator", "x", context=RoutingContext(f"u-{plan}", {"plan": plan}))
    assert await turnout.shadows.drain(GUARD_S)
    shadows = turnout.telemetry.live()["shadows"]["coordinator"]
    assert sorted(shadows) == ["legacy->graph", "legacy->third"]  # beta is served by graph itself
    assert figures(turnout, "legacy", "third")["offered"] == 1
    assert figures(turnout, "legacy", "graph")["offered"] == 1


async def test_a_shadow_calling_turnout_again_is_not_shadowed_in_turn() -> None:
    turnout = make_turnout({})
    turnout.add_engine("legacy", lambda message: message)
    calls: list[str] = []

    @turnout.engine("graph")
    async def graph(message: str) -> str:
        calls.append(message)
        return await turnout.run("coordinator", message)  # served by legacy, not shadowed again

    await turnout.run("coordinator", "hi", context=RoutingContext("u1"))
    assert await turnout.shadows.drain(GUARD_S)
    assert calls == ["hi"]


async def test_the_intent_is_classified_off_the_critical_path_for_per_intent_figures() -> None:
    class Keywords:
        def predict(self, text: str) -> Any:
            from turnout import Intent

            return Intent("refund" if "refund" in text else "other", 0.9)

    turnout = Turnout(
        {
            "intent": {"enabled": True, "min_confidence": 0.5},
            "flags": {
                "coordinator": {
                    "variants": ["legacy", "graph"],
                    "default": "legacy",
                    "shadow": {"engine": "graph", "sample": 1, "comparator": "exact"},
                }
            },
            "events": {"enabled": False},
        },
        env={},
        classifier=Keywords(),
    )
    turnout.add_engine("legacy", lambda message: "A")
    turnout.add_engine("graph", lambda message: "A" if "refund" in message else "B")
    for index, text in enumerate(["refund please", "hello", "refund now", "where is it"]):
        await turnout.run("coordinator", text, context=RoutingContext(f"u{index}", text=text))
    assert await turnout.shadows.drain(GUARD_S)
    intents = turnout.telemetry.live()["shadows"]["coordinator"]["legacy->graph"]["intents"]
    assert {name: stats["match_rate"] for name, stats in intents.items()} == {"other": 0.0, "refund": 1.0}


# -- engines that must not be shadows ------------------------------------------------------------


def test_a_config_engine_declared_not_shadow_safe_is_refused_naming_the_setting() -> None:
    config = {
        "engines": {"graph": {"shadow_safe": False}},
        "flags": {
            "coordinator": {
                "variants": ["legacy", "graph"],
                "default": "legacy",
                "rules": [{"name": "all", "serve": "legacy", "shadow": {"engine": "graph"}}],
            }
        },
    }
    with pytest.raises(ConfigError) as caught:
        Turnout(config, env={})
    (issue,) = caught.value.issues
    assert issue.path == "flags.coordinator.rules[0].shadow.engine"
    assert "engines.graph.shadow_safe" in issue.message


def test_add_engine_with_shadow_safe_false_is_refused_and_leaves_nothing_behind() -> None:
    turnout = make_turnout({})
    with pytest.raises(ConfigError) as caught:
        turnout.add_engine("graph", lambda message: message, shadow_safe=False)
    assert caught.value.issues[0].path == "flags.coordinator.shadow.engine"
    assert "shadow_safe=False" in caught.value.issues[0].message
    assert "graph" not in turnout.engines
    turnout.add_engine("graph", lambda message: message)  # a safe one is fine
    assert "graph" in turnout.engines


def test_a_reload_naming_an_unsafe_code_engine_as_shadow_keeps_the_old_config() -> None:
    turnout = make_turnout()
    turnout.add_engine("graph", lambda message: message, shadow_safe=False)
    shadowed = {
        "flags": {
            "coordinator": {
                "variants": ["legacy", "graph"],
                "default": "legacy",
                "shadow": {"engine": "graph"},
            }
        }
    }
    with pytest.raises(ConfigError, match=r"flags\.coordinator\.shadow\.engine"):
        turnout.reload(shadowed)
    assert not turnout.shadowing


def test_an_unknown_comparator_is_a_config_error_naming_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        make_turnout({"comparator": "no-such-comparator"})
    (issue,) = caught.value.issues
    assert issue.path == "flags.coordinator.shadow.comparator"
    assert "turnout.comparators" in issue.message


# -- mismatch samples ----------------------------------------------------------------------------


async def test_mismatch_samples_are_bounded_cut_and_have_credentials_masked() -> None:
    turnout = make_turnout({"comparator": "exact", "mismatch_samples": 3, "sample_chars": 40})
    turnout.add_engine("legacy", lambda message: "served " + message)
    turnout.add_engine("graph", lambda message: "other " + message + " see https://bot:hunter2@api.example/x")
    for index in range(6):
        text = f"call {index} https://me:secret@db.example/" + "." * index * 30
        await turnout.run("coordinator", text, context=RoutingContext(f"u{index}"))
    assert await turnout.shadows.drain(GUARD_S)
    samples = figures(turnout)["mismatches"]
    assert len(samples) == 3
    for sample in samples:
        assert set(sample) >= {"input", "served", "shadow", "score", "served_ms", "shadow_ms", "variant"}
        assert all(len(sample[part]) <= 40 for part in ("input", "served", "shadow"))
        assert "hunter2" not in sample["shadow"]
        assert "secret" not in sample["input"]
        assert sample["input"].startswith("call ")


async def test_mismatch_samples_can_leave_the_inputs_out() -> None:
    turnout = make_turnout({"comparator": "exact", "sample_inputs": False})
    turnout.add_engine("legacy", lambda message: "a")
    turnout.add_engine("graph", lambda message: "b")
    await turnout.run("coordinator", "my address is 1 Main St", context=RoutingContext("u1"))
    assert await turnout.shadows.drain(GUARD_S)
    (sample,) = figures(turnout)["mismatches"]
    assert "input" not in sample
    assert (sample["served"], sample["shadow"], sample["score"]) == ("a", "b", 0.0)


async def test_a_snapshot_line_carries_only_its_interval_mismatches() -> None:
    turnout = make_turnout({"comparator": "exact"})
    turnout.add_engine("legacy", lambda message: "a")
    turnout.add_engine("graph", lambda message: "b")
    await turnout.run("coordinator", "one", context=RoutingContext("u1"))
    assert await turnout.shadows.drain(GUARD_S)
    first = turnout.telemetry.take().model_dump()["shadows"]["coordinator"]["legacy->graph"]["intents"][
        "unknown"
    ]
    second = turnout.telemetry.take().model_dump()["shadows"]["coordinator"]["legacy->graph"]["intents"][
        "unknown"
    ]
    assert [s["served"] for s in first["window"]["mismatches"]] == ["a"]
    assert "mismatches" not in first
    assert second["window"]["mismatches"] == []
    assert (second["compared"], second["window"]["compared"]) == (1, 0)


# -- tracing -------------------------------------------------------------------------------------


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


async def test_the_shadow_span_is_linked_to_the_request_span_not_its_child(
    spans: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, exporter = spans
    turnout = make_turnout({}, tracer_provider=provider)
    turnout.add_engine("legacy", lambda message: message)
    turnout.add_engine("graph", lambda message: message)
    with provider.get_tracer("app").start_as_current_span("POST /chat") as request_span:
        await turnout.run("coordinator", "hi", context=RoutingContext("u1"))
    assert await turnout.shadows.drain(GUARD_S)
    (shadow,) = [span for span in exporter.get_finished_spans() if span.name == SHADOW_SPAN]
    assert shadow.parent is None
    assert shadow.context.trace_id != request_span.get_span_context().trace_id
    (link,) = shadow.links
    assert link.context.span_id == request_span.get_span_context().span_id
    assert shadow.attributes is not None
    assert shadow.attributes["turnout.shadow"] is True
    assert shadow.attributes["turnout.engine.name"] == "graph"
    assert shadow.attributes["turnout.shadow.served_engine"] == "legacy"
    assert shadow.attributes["turnout.shadow.match"] is True


async def test_stop_waits_for_running_shadows_before_the_final_snapshot() -> None:
    turnout = make_turnout({})
    turnout.add_engine("legacy", lambda message: message)

    @turnout.engine("graph")
    async def graph(message: str) -> str:
        for _ in range(5):
            await asyncio.sleep(0)
        return message

    await turnout.start()
    await turnout.run("coordinator", "hi", context=RoutingContext("u1"))
    await turnout.stop()
    assert figures(turnout)["compared"] == 1


async def test_a_shadow_naming_an_engine_nobody_registered_fails_at_start() -> None:
    turnout = make_turnout({})
    turnout.add_engine("legacy", lambda message: message)
    with pytest.raises(ConfigError) as caught:
        await turnout.start()
    (issue,) = caught.value.issues
    assert (issue.path, issue.value) == ("flags.coordinator.shadow.engine", "graph")
    assert "unknown engine" in issue.message


async def test_a_sync_handler_in_a_worker_thread_gets_its_shadow_on_the_apps_loop() -> None:
    turnout = make_turnout({})
    turnout.add_engine("legacy", lambda message: message)
    loops: list[asyncio.AbstractEventLoop] = []

    @turnout.engine("graph")
    async def graph(message: str) -> str:
        loops.append(asyncio.get_running_loop())
        return message

    @experiment("coordinator")
    def chat(request: Request, engine: BoundEngine) -> JSONResponse:
        return JSONResponse({"reply": engine("hi"), "thread": threading.current_thread().name})

    app = Starlette(routes=[Route("/chat", chat)])
    app.add_middleware(TurnoutMiddleware, turnout=turnout)
    async with client(app) as http:
        response = await http.get("/chat", headers={"X-User-Id": "u1"})
        assert response.json()["reply"] == "hi"
        assert response.json()["thread"] != threading.current_thread().name
        assert await turnout.shadows.drain(GUARD_S)
    assert loops == [asyncio.get_running_loop()]


def test_turnout_validate_describes_the_shadows(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from turnout.cli import main

    path = tmp_path / "turnout.toml"
    path.write_text(
        '[engines.legacy]\ntarget = "builtins:str"\n[engines.graph]\ntarget = "builtins:repr"\n'
        '[flags.coordinator]\nvariants = ["legacy", "graph"]\ndefault = "legacy"\n'
        'shadow = { engine = "graph", sample = 0.1 }\n'
        '[[flags.coordinator.rules]]\nname = "beta"\nserve = "legacy"\n'
        'shadow = { engine = "graph", sample = 0.5, comparator = "json" }\n'
    )
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert (
        "1. beta: -> serve legacy; shadow: graph beside the served engine for 50% of users, compared by json"
        in out
    )
    assert (
        "    shadow: graph beside the served engine for 10% of users, compared by normalised, never served"
        in out
    )


async def test_mismatch_samples_mask_secrets_by_key_name_too() -> None:
    turnout = make_turnout({"comparator": "exact"})
    turnout.add_engine("legacy", lambda message, **options: {"reply": "a", "token": "tok-123"})
    turnout.add_engine("graph", lambda message, **options: {"reply": "b", "token": "tok-456"})
    await turnout.run("coordinator", "hi", api_key="sk-live-999", context=RoutingContext("u1"))
    assert await turnout.shadows.drain(GUARD_S)
    (sample,) = figures(turnout)["mismatches"]
    assert "sk-live-999" not in sample["input"] and "'api_key': '***'" in sample["input"]
    assert "tok-123" not in sample["served"] and "tok-456" not in sample["shadow"]


async def test_no_shadow_when_the_served_engine_failed_or_a_reload_removed_it() -> None:
    turnout = make_turnout({})
    calls: list[str] = []

    def legacy(message: str) -> str:
        if message == "boom":
            raise RuntimeError("down")
        return message

    turnout.add_engine("legacy", legacy)
    turnout.add_engine("graph", lambda message: calls.append(message) or message)
    with pytest.raises(RuntimeError):
        await turnout.run("coordinator", "boom", context=RoutingContext("u1"))
    await turnout.run("coordinator", "ok", context=RoutingContext("u2"))
    turnout.reload({"flags": {"coordinator": {"variants": ["legacy", "graph"], "default": "legacy"}}})
    assert not turnout.shadowing
    await turnout.run("coordinator", "after", context=RoutingContext("u3"))
    assert await turnout.shadows.drain(GUARD_S)
    assert calls == ["ok"]
