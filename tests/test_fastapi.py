from __future__ import annotations

from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel

from turnout import BoundEngine, Reason, Turnout, TurnoutError, current_context, experiment
from turnout.asgi import TurnoutMiddleware

VARIANTS = ["legacy", "workflow", "langgraph"]


class ChatIn(BaseModel):
    message: str
    channel: str = "web"


class ChatRequest(BaseModel):
    text: str


def make_turnout() -> Turnout:
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
    }
    turnout = Turnout(config)
    for name in VARIANTS:
        turnout.add_engine(name, lambda message, name=name: f"{name}:{message}")
    return turnout


def common_key() -> str:
    return "dep-value"


def build_app(turnout: Turnout, *, middleware: bool) -> FastAPI:
    app = FastAPI()
    if middleware:
        app.add_middleware(TurnoutMiddleware, turnout=turnout)
    else:
        app.state.turnout = turnout

    @app.post("/chat")
    @experiment("coordinator")
    async def chat(body: ChatIn, engine, verbose: bool = False) -> dict[str, Any]:
        return {
            "variant": engine.variant,
            "reply": await engine(body.message),
            "channel": body.channel,
            "verbose": verbose,
            "key": current_context().targeting_key,
        }

    @app.get("/sync")
    @experiment("coordinator")
    def sync_chat(engine: BoundEngine, q: int = 1) -> dict[str, Any]:
        return {"variant": engine.variant, "reply": engine(f"q{q}"), "q": q}

    @app.get("/annotated")
    @experiment("coordinator")
    async def annotated(
        engine: BoundEngine,
        page: Annotated[int, Query(ge=1)] = 1,
        extra: Annotated[str, Depends(common_key)] = "",
    ) -> dict[str, Any]:
        return {"page": page, "extra": extra, "variant": engine.variant}

    @app.post("/named-request")
    @experiment("coordinator")
    async def named_request(request: ChatRequest, engine) -> dict[str, Any]:
        return {"text": request.text, "variant": engine.variant, "key": current_context().targeting_key}

    @app.get("/with-request")
    @experiment("coordinator")
    async def with_request(request: Request, engine) -> dict[str, Any]:
        return {"path": request.url.path, "variant": engine.variant}

    @app.get("/depends")
    async def depends(engine: BoundEngine = Depends(turnout.choose("coordinator"))) -> dict[str, Any]:  # noqa: B008
        return {
            "type": type(engine).__name__,
            "variant": engine.variant,
            "reason": engine.decision.reason,
            "reply": await engine("dep"),
            "key": current_context().targeting_key if current_context() else None,
        }

    @app.get("/depends-sync")
    def depends_sync(engine: BoundEngine = Depends(turnout.choose("coordinator"))) -> dict[str, Any]:  # noqa: B008
        return {"variant": engine.variant, "reply": engine.call_sync("s")}

    return app


def client(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


both = pytest.mark.parametrize("middleware", [True, False], ids=["middleware", "app-state"])


# --- path operations ---------------------------------------------------------------------------


@both
async def test_body_and_query_are_parsed_and_the_engine_injected(middleware):
    app = build_app(make_turnout(), middleware=middleware)
    async with client(app) as c:
        premium = await c.post(
            "/chat?verbose=true",
            json={"message": "hi", "channel": "sms"},
            headers={"X-User-Id": "u1", "X-Plan": "premium"},
        )
        free = await c.post("/chat", json={"message": "yo"}, headers={"X-User-Id": "u2"})
    assert premium.status_code == 200
    assert premium.json() == {
        "variant": "workflow",
        "reply": "workflow:hi",
        "channel": "sms",
        "verbose": True,
        "key": "u1",
    }
    assert free.json() == {
        "variant": "legacy",
        "reply": "legacy:yo",
        "channel": "web",
        "verbose": False,
        "key": "u2",
    }
    assert current_context() is None


@both
async def test_engine_is_not_a_query_parameter(middleware):
    app = build_app(make_turnout(), middleware=middleware)
    async with client(app) as c:
        response = await c.post(
            "/chat", params={"engine": "langgraph"}, json={"message": "hi"}, headers={"X-User-Id": "u1"}
        )
    assert response.status_code == 200
    assert response.json()["variant"] == "legacy"


@both
async def test_sync_path_operation(middleware):
    app = build_app(make_turnout(), middleware=middleware)
    async with client(app) as c:
        response = await c.get("/sync", params={"q": 3}, headers={"X-User-Id": "vip"})
    assert response.json() == {"variant": "langgraph", "reply": "langgraph:q3", "q": 3}


@both
async def test_annotated_query_constraints_and_dependencies_still_apply(middleware):
    app = build_app(make_turnout(), middleware=middleware)
    async with client(app) as c:
        ok = await c.get("/annotated", params={"page": 2}, headers={"X-User-Id": "u1", "X-Plan": "premium"})
        too_small = await c.get("/annotated", params={"page": 0}, headers={"X-User-Id": "u1"})
    assert ok.json() == {"page": 2, "extra": "dep-value", "variant": "workflow"}
    assert too_small.status_code == 422
    assert too_small.json()["detail"][0]["loc"] == ["query", "page"]


@both
async def test_a_body_named_request_is_not_mistaken_for_the_request(middleware):
    app = build_app(make_turnout(), middleware=middleware)
    async with client(app) as c:
        response = await c.post("/named-request", json={"text": "hello"}, headers={"X-User-Id": "vip"})
    assert response.status_code == 200
    assert response.json() == {"text": "hello", "variant": "langgraph", "key": "vip"}


@both
async def test_an_explicit_request_parameter_is_passed_through(middleware):
    app = build_app(make_turnout(), middleware=middleware)
    async with client(app) as c:
        response = await c.get("/with-request", headers={"X-User-Id": "u1", "X-Plan": "premium"})
    assert response.json() == {"path": "/with-request", "variant": "workflow"}


@both
async def test_validation_errors_come_out_as_usual(middleware):
    app = build_app(make_turnout(), middleware=middleware)
    async with client(app) as c:
        missing = await c.post("/chat", json={}, headers={"X-User-Id": "u1"})
        bad_query = await c.post("/chat?verbose=maybe", json={"message": "hi"}, headers={"X-User-Id": "u1"})
        bad_int = await c.get("/sync", params={"q": "abc"}, headers={"X-User-Id": "u1"})
    assert missing.status_code == 422
    assert [e["loc"] for e in missing.json()["detail"]] == [["body", "message"]]
    assert bad_query.status_code == 422
    assert [e["loc"] for e in bad_query.json()["detail"]] == [["query", "verbose"]]
    assert bad_int.status_code == 422
    assert [e["loc"] for e in bad_int.json()["detail"]] == [["query", "q"]]


async def test_without_middleware_or_state_the_error_names_the_fix():
    app = FastAPI()

    @app.get("/")
    @experiment("coordinator")
    async def endpoint(engine) -> str:
        return engine.variant

    async with client(app) as c:
        with pytest.raises(TurnoutError, match="TurnoutMiddleware"):
            await c.get("/")


async def test_bound_form_needs_neither_middleware_nor_state():
    turnout = make_turnout()
    app = FastAPI()

    @app.get("/")
    @turnout.experiment("coordinator")
    async def endpoint(engine) -> dict[str, Any]:
        return {"variant": engine.variant, "key": current_context().targeting_key}

    async with client(app) as c:
        response = await c.get("/", headers={"X-User-Id": "vip"})
    assert response.json() == {"variant": "langgraph", "key": "vip"}


# --- OpenAPI -----------------------------------------------------------------------------------


def _parameters(app: FastAPI, path: str, method: str) -> list[str]:
    operation = app.openapi()["paths"][path][method]
    return [p["name"] for p in operation.get("parameters", [])]


def test_openapi_lists_neither_the_engine_nor_the_request():
    app = build_app(make_turnout(), middleware=True)
    schema = app.openapi()
    assert _parameters(app, "/chat", "post") == ["verbose"]
    chat_body = schema["paths"]["/chat"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert chat_body == {"$ref": "#/components/schemas/ChatIn"}
    assert _parameters(app, "/sync", "get") == ["q"]
    assert _parameters(app, "/annotated", "get") == ["page"]
    assert _parameters(app, "/named-request", "post") == []
    assert _parameters(app, "/with-request", "get") == []
    assert _parameters(app, "/depends", "get") == []
    assert _parameters(app, "/depends-sync", "get") == []
    text = str(schema)
    assert "engine" not in text.lower()
    assert "turnout" not in text.lower()
    assert set(schema["components"]["schemas"]) >= {"ChatIn", "ChatRequest"}


# --- Depends(turnout.choose(flag)) -------------------------------------------------------------


@both
async def test_depends_choose_gives_a_bound_engine(middleware):
    app = build_app(make_turnout(), middleware=middleware)
    async with client(app) as c:
        premium = await c.get("/depends", headers={"X-User-Id": "u1", "X-Plan": "premium"})
        vip = await c.get("/depends", headers={"X-User-Id": "vip"})
        synced = await c.get("/depends-sync", headers={"X-User-Id": "vip"})
    assert premium.json()["type"] == "BoundEngine"
    assert premium.json()["variant"] == "workflow"
    assert premium.json()["reason"] == Reason.TARGETING_MATCH
    assert premium.json()["reply"] == "workflow:dep"
    assert vip.json()["reply"] == "langgraph:dep"
    assert synced.json() == {"variant": "langgraph", "reply": "langgraph:s"}
    # with the middleware the request's context is current in the handler
    assert premium.json()["key"] == ("u1" if middleware else None)


async def test_depends_choose_without_anything_else_configured():
    turnout = make_turnout()
    app = FastAPI()

    @app.get("/")
    async def endpoint(engine: BoundEngine = Depends(turnout.choose("coordinator"))) -> str:  # noqa: B008
        return await engine("x")

    async with client(app) as c:
        response = await c.get("/", headers={"X-User-Id": "vip"})
    assert response.json() == "langgraph:x"
