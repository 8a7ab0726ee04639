import asyncio
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from turnout import (
    BoundEngine,
    Intent,
    Reason,
    RoutingContext,
    Turnout,
    TurnoutError,
    current_context,
    current_decision,
    experiment,
)
from turnout.asgi import TurnoutMiddleware
from turnout.context import use_context

VARIANTS = ["legacy", "workflow", "langgraph"]


class FakeClassifier:
    """Labels a message `refund` when it mentions one; remembers what it was asked."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def predict(self, text: str) -> Intent:
        self.seen.append(text)
        return Intent("refund" if "refund" in text.lower() else "chitchat", 0.9)


def make_turnout(*, sync_engines: bool = False, **extra: Any) -> Turnout:
    config: dict[str, Any] = {
        "flags": {
            "coordinator": {
                "variants": VARIANTS,
                "default": "legacy",
                "overrides": {"vip": "langgraph"},
                "rules": [{"name": "premium", "when": {"plan": "premium"}, "serve": "workflow"}],
            }
        },
        # The "vip" override is reached through the X-User-Id header in these tests.
        "http": {"attribute_headers": {"X-Plan": "plan"}, "overrides_from_headers": True},
        **extra,
    }
    turnout = Turnout(config)
    for name in VARIANTS:
        if sync_engines:
            turnout.add_engine(name, lambda message, name=name: f"{name}:{message}")
        else:

            async def run(message: str, name: str = name) -> str:
                return f"{name}:{message}"

            turnout.add_engine(name, run)
    return turnout


def intent_turnout(classifier: FakeClassifier) -> Turnout:
    config = {
        "intent": {"enabled": True},
        "flags": {
            "coordinator": {
                "variants": VARIANTS,
                "default": "legacy",
                "rules": [{"name": "refunds", "when": {"intent": "refund"}, "serve": "workflow"}],
            }
        },
    }
    turnout = Turnout(config, classifier=classifier)
    for name in VARIANTS:
        turnout.add_engine(name, lambda message, name=name: f"{name}:{message}")
    return turnout


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


@experiment("coordinator")
async def chat(request, engine):
    return JSONResponse(
        {
            "variant": engine.variant,
            "engine": engine.name,
            "reason": engine.decision.reason,
            "reply": await engine("hi"),
            "key": current_context().targeting_key,
        }
    )


# --- Starlette endpoints -----------------------------------------------------------------------


async def test_starlette_endpoint_gets_the_chosen_engine_through_the_middleware():
    app = Starlette(routes=[Route("/chat", chat)])
    app.add_middleware(TurnoutMiddleware, turnout=make_turnout())
    async with client(app) as c:
        free = await c.get("/chat", headers={"X-User-Id": "u1"})
        premium = await c.get("/chat", headers={"X-User-Id": "u2", "X-Plan": "premium"})
        vip = await c.get("/chat", headers={"X-User-Id": "vip"})
    assert free.json() == {
        "variant": "legacy",
        "engine": "legacy",
        "reason": "DEFAULT",
        "reply": "legacy:hi",
        "key": "u1",
    }
    assert premium.json()["variant"] == "workflow"
    assert premium.json()["reason"] == Reason.TARGETING_MATCH
    assert premium.json()["reply"] == "workflow:hi"
    assert vip.json()["reply"] == "langgraph:hi"
    assert vip.json()["reason"] == "OVERRIDE"


async def test_decision_is_recorded_on_the_request_context():
    @experiment("coordinator")
    async def endpoint(request, engine):
        decision = current_decision("coordinator")
        return JSONResponse({"same": decision is engine.decision, "variant": decision.variant})

    app = Starlette(routes=[Route("/", endpoint)])
    app.add_middleware(TurnoutMiddleware, turnout=make_turnout())
    async with client(app) as c:
        response = await c.get("/", headers={"X-User-Id": "u1", "X-Plan": "premium"})
    assert response.json() == {"same": True, "variant": "workflow"}


async def test_sync_starlette_endpoint_runs_a_sync_engine():
    @experiment("coordinator")
    def endpoint(request, engine):
        reply = engine("hi")
        return JSONResponse({"reply": reply, "key": current_context().targeting_key})

    app = Starlette(routes=[Route("/", endpoint)])
    app.add_middleware(TurnoutMiddleware, turnout=make_turnout(sync_engines=True))
    async with client(app) as c:
        response = await c.get("/", headers={"X-User-Id": "u1", "X-Plan": "premium"})
    assert response.json() == {"reply": "workflow:hi", "key": "u1"}


async def test_without_middleware_the_turnout_is_found_on_app_state():
    app = Starlette(routes=[Route("/chat", chat)])
    app.state.turnout = make_turnout()
    async with client(app) as c:
        response = await c.get("/chat", headers={"X-User-Id": "u9", "X-Plan": "premium"})
    # the context is built from the request's own headers
    assert response.json()["key"] == "u9"
    assert response.json()["variant"] == "workflow"
    assert current_context() is None


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[Any]:
    """What an ASGI server does: run the lifespan, then give each request a copy of its state."""
    state: dict[str, Any] = {}
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": state}
    task = asyncio.create_task(app(scope, inbox.get, outbox.put))
    assert (await outbox.get())["type"] == "lifespan.startup.complete"

    async def served(scope: Any, receive: Any, send: Any) -> None:
        scope["state"] = dict(state)
        await app(scope, receive, send)

    try:
        yield served
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await task


async def test_without_middleware_the_turnout_is_found_in_lifespan_state():
    turnout = make_turnout()
    app = Starlette(routes=[Route("/chat", chat)], lifespan=turnout.lifespan)
    async with serving(app) as served, client(served) as c:
        response = await c.get("/chat", headers={"X-User-Id": "u3", "X-Plan": "premium"})
    assert not hasattr(app.state, "turnout")
    assert response.json()["key"] == "u3"
    assert response.json()["reply"] == "workflow:hi"


async def test_without_middleware_an_anonymous_request_still_gets_a_context():
    app = Starlette(routes=[Route("/chat", chat)])
    app.state.turnout = make_turnout()
    async with client(app) as c:
        response = await c.get("/chat")
    assert response.status_code == 200
    assert response.json()["key"] != ""
    assert response.json()["variant"] == "legacy"


async def test_request_parameter_under_another_name_is_found():
    @experiment("coordinator")
    async def endpoint(req, engine):
        return JSONResponse({"key": current_context().targeting_key, "variant": engine.variant})

    @experiment("coordinator")
    async def typed(incoming: Request, engine):
        return JSONResponse({"key": current_context().targeting_key, "variant": engine.variant})

    app = Starlette(routes=[Route("/a", endpoint), Route("/b", typed)])
    app.state.turnout = make_turnout()
    async with client(app) as c:
        a = await c.get("/a", headers={"X-User-Id": "ua", "X-Plan": "premium"})
        b = await c.get("/b", headers={"X-User-Id": "ub", "X-Plan": "premium"})
    assert a.json() == {"key": "ua", "variant": "workflow"}
    assert b.json() == {"key": "ub", "variant": "workflow"}


async def test_clear_error_when_no_turnout_can_be_found():
    app = Starlette(routes=[Route("/chat", chat)])
    async with client(app) as c:
        with pytest.raises(TurnoutError, match="no Turnout"):
            await c.get("/chat", headers={"X-User-Id": "u1"})

    @experiment("coordinator")
    async def handle(message, engine):
        return await engine(message)

    with pytest.raises(TurnoutError, match="TurnoutMiddleware"):
        await handle("hi")
    with pytest.raises(TurnoutError, match="no Turnout"):
        await handle("hi", context=RoutingContext("u1"))


# --- plain functions ---------------------------------------------------------------------------


async def test_plain_async_function_with_context_and_turnout_arguments():
    turnout = make_turnout()

    @experiment("coordinator")
    async def handle(message: str, engine: BoundEngine) -> tuple[str, str, str]:
        return current_context().targeting_key, engine.variant, await engine(message)

    ctx = RoutingContext("u1", {"plan": "premium"})
    assert await handle("hello", context=ctx, turnout=turnout) == ("u1", "workflow", "workflow:hello")
    assert ctx.decisions["coordinator"].variant == "workflow"
    assert current_context() is None
    free = RoutingContext("u2", {"plan": "free"})
    assert await handle("hello", context=free, turnout=turnout) == ("u2", "legacy", "legacy:hello")


async def test_plain_function_with_the_turnout_given_at_decoration():
    turnout = make_turnout()

    @experiment("coordinator", turnout=turnout)
    async def handle(message, engine):
        return await engine(message)

    assert await handle("x", context=RoutingContext("vip")) == "langgraph:x"


async def test_plain_function_finds_the_turnout_serving_the_block():
    turnout = make_turnout()

    @experiment("coordinator")
    async def handle(message, engine):
        return await engine(message)

    with turnout.serving(RoutingContext("u1", {"plan": "premium"})) as ctx:
        assert await handle("x") == "workflow:x"
        assert current_context() is ctx
    assert current_context() is None
    with pytest.raises(TurnoutError, match="no Turnout for this call"):
        await handle("x", context=ctx)


async def test_plain_function_inside_a_current_context():
    turnout = make_turnout()

    @experiment("coordinator", turnout=turnout)
    async def handle(message, engine):
        return await engine(message)

    with use_context(RoutingContext("u1", {"plan": "premium"})) as ctx:
        assert await handle("x") == "workflow:x"
        assert current_context() is ctx
    assert ctx.decisions["coordinator"].reason == Reason.TARGETING_MATCH


def test_plain_sync_function_with_context_and_turnout_arguments():
    turnout = make_turnout(sync_engines=True)

    @experiment("coordinator")
    def handle(message, engine):
        assert current_context() is ctx
        return engine(message)

    ctx = RoutingContext("u1", {"plan": "premium"})
    reply = handle("hello", context=ctx, turnout=turnout)
    assert reply == "workflow:hello"
    assert current_context() is None


def test_sync_handler_engine_returns_the_result_not_an_awaitable():
    turnout = make_turnout(sync_engines=True)

    @experiment("coordinator", turnout=turnout)
    def handle(engine):
        return engine, engine("m")

    engine, reply = handle(context=RoutingContext("vip"))
    assert reply == "langgraph:m"
    assert not inspect.isawaitable(reply)
    assert isinstance(engine, BoundEngine)
    assert engine.name == "langgraph"


def test_sync_handler_with_an_async_engine_raises_a_clear_error():
    turnout = make_turnout()

    @experiment("coordinator", turnout=turnout)
    def handle(engine):
        return engine("m")

    with pytest.raises(TurnoutError, match="async"):
        handle(context=RoutingContext("u1"))


async def test_async_handler_runs_a_sync_engine():
    turnout = make_turnout(sync_engines=True)

    @experiment("coordinator", turnout=turnout)
    async def handle(engine):
        return await engine("m")

    assert await handle(context=RoutingContext("u1")) == "legacy:m"


async def test_function_that_takes_its_own_context_parameter_keeps_it():
    turnout = make_turnout()

    @experiment("coordinator", turnout=turnout)
    async def handle(context, engine):
        return context, engine.variant

    ctx = RoutingContext("u1", {"plan": "premium"})
    received, variant = await handle(context=ctx)
    assert received is ctx
    assert variant == "workflow"


async def test_bound_form_turnout_experiment():
    turnout = make_turnout()

    @turnout.experiment("coordinator")
    async def handle(message, engine):
        return await engine(message)

    assert await handle("x", context=RoutingContext("u1", {"plan": "premium"})) == "workflow:x"

    @turnout.experiment("coordinator")
    async def endpoint(request, engine):
        return JSONResponse({"variant": engine.variant, "key": current_context().targeting_key})

    app = Starlette(routes=[Route("/", endpoint)])  # no middleware, no app.state
    async with client(app) as c:
        response = await c.get("/", headers={"X-User-Id": "vip"})
    assert response.json() == {"variant": "langgraph", "key": "vip"}


async def test_custom_engine_parameter_name():
    turnout = make_turnout()

    @experiment("coordinator", turnout=turnout, param="runner")
    async def handle(message, runner):
        return await runner(message)

    assert await handle("x", context=RoutingContext("vip")) == "langgraph:x"


def test_missing_engine_parameter_is_a_type_error_at_decoration():
    with pytest.raises(TypeError, match="engine"):

        @experiment("coordinator")
        async def handle(request):
            return None

    with pytest.raises(TypeError, match="runner"):

        @experiment("coordinator", param="runner")
        def handle_sync(request, engine):
            return None


def test_public_signature_hides_the_engine_and_keeps_the_name():
    @experiment("coordinator")
    async def handle(message: str, engine: BoundEngine, *, flag: bool = False) -> str:
        """Serve a message."""
        return message

    parameters = inspect.signature(handle).parameters
    assert "engine" not in parameters
    assert list(parameters)[:2] == ["message", "flag"]
    assert handle.__name__ == "handle"
    assert handle.__doc__ == "Serve a message."


async def test_unknown_flag_serves_an_error_decision_instead_of_raising():
    turnout = make_turnout()

    @experiment("nope", turnout=turnout)
    async def handle(engine):
        return engine.decision

    decision = await handle(context=RoutingContext("u1"))
    assert decision.reason == Reason.ERROR


# --- text for intent rules ---------------------------------------------------------------------


async def test_text_names_the_argument_to_classify():
    classifier = FakeClassifier()
    turnout = intent_turnout(classifier)

    @experiment("coordinator", turnout=turnout, text="message")
    async def handle(message, engine):
        assert current_context().text == message
        return engine.decision

    refund = await handle("I want a REFUND now", context=RoutingContext("u1"))
    chitchat = await handle(message="hello there", context=RoutingContext("u1"))
    assert (refund.variant, refund.reason, refund.intent) == ("workflow", Reason.TARGETING_MATCH, "refund")
    assert chitchat.variant == "legacy"
    assert classifier.seen == ["I want a REFUND now", "hello there"]


async def test_text_as_a_function_of_the_arguments():
    classifier = FakeClassifier()
    turnout = intent_turnout(classifier)

    @experiment("coordinator", turnout=turnout, text=lambda args: args["payload"]["text"])
    async def handle(payload, engine):
        return await engine(payload["text"])

    ctx = RoutingContext("u1")
    assert await handle({"text": "refund please"}, context=ctx) == "workflow:refund please"
    assert ctx.text == "refund please"
    assert ctx.intent == Intent("refund", 0.9)


def test_text_with_a_dotted_path_on_a_sync_function():
    classifier = FakeClassifier()
    turnout = intent_turnout(classifier)

    @experiment("coordinator", turnout=turnout, text="body.message")
    def handle(body, engine):
        return engine(body.message)

    assert handle(SimpleNamespace(message="refund?"), context=RoutingContext("u1")) == "workflow:refund?"
    assert classifier.seen == ["refund?"]


async def test_no_text_means_no_classification():
    classifier = FakeClassifier()
    turnout = intent_turnout(classifier)

    @experiment("coordinator", turnout=turnout)
    async def handle(message, engine):
        return engine.variant

    assert await handle("refund", context=RoutingContext("u1")) == "legacy"
    assert classifier.seen == []


async def test_new_text_in_the_same_request_is_classified_again():
    classifier = FakeClassifier()
    turnout = intent_turnout(classifier)

    @experiment("coordinator", turnout=turnout, text="message")
    async def handle(message, engine):
        return engine.variant

    ctx = RoutingContext("u1")
    assert await handle("hello", context=ctx) == "legacy"
    assert await handle("refund", context=ctx) == "workflow"
    assert classifier.seen == ["hello", "refund"]


def test_one_unresolvable_annotation_does_not_hide_the_others():
    @experiment("coordinator")
    async def endpoint(incoming: "Request", engine, later: "NotDefinedAnywhere" = None):  # noqa: F821
        return None

    parameters = inspect.signature(endpoint).parameters
    assert parameters["incoming"].annotation is Request
    assert parameters["later"].annotation == "NotDefinedAnywhere"
    assert "engine" not in parameters
