import asyncio
from http.cookies import SimpleCookie
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from turnout import RoutingContext, Turnout, current_context, experiment
from turnout.asgi import STATE_KEY, TurnoutMiddleware, sign_override

VARIANTS = ["legacy", "workflow", "langgraph"]
SPLIT = {"name": "split", "split": {"legacy": 34, "workflow": 33, "langgraph": 33}}


def make_turnout(
    http: dict[str, Any] | None = None, engines: dict[str, Any] | None = None, **flag: Any
) -> Turnout:
    config: dict[str, Any] = {
        "engines": engines or {},
        "flags": {
            "coordinator": {
                "variants": VARIANTS,
                "default": "legacy",
                "rules": [{"name": "premium", "when": {"plan": "premium"}, "serve": "langgraph"}],
                **flag,
            }
        },
        "http": http or {},
    }
    turnout = Turnout(config)
    for name in VARIANTS:
        turnout.add_engine(name, lambda message, name=name: f"{name}:{message}")
    return turnout


def _context_json(ctx: RoutingContext | None) -> dict[str, Any]:
    assert ctx is not None
    return {
        "key": ctx.targeting_key,
        "attributes": dict(ctx.attributes),
        "anonymous": ctx.anonymous,
        "session": ctx.session_id,
        "overrides": dict(ctx.overrides),
    }


async def whoami(request: Request) -> JSONResponse:
    ctx = current_context()
    assert request.scope["state"][STATE_KEY] is ctx
    return JSONResponse(_context_json(ctx))


@experiment("coordinator")
async def chat(request: Request, engine: Any) -> JSONResponse:
    return JSONResponse(
        {"variant": engine.variant, "reason": engine.decision.reason, "reply": await engine("hi")}
    )


async def plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("no decision here")


async def boom(request: Request) -> PlainTextResponse:
    assert current_context() is not None
    raise RuntimeError("handler failed")


def make_app(turnout: Turnout) -> Starlette:
    app = Starlette(
        routes=[
            Route("/whoami", whoami),
            Route("/chat", chat),
            Route("/plain", plain),
            Route("/boom", boom),
        ]
    )
    app.add_middleware(TurnoutMiddleware, turnout=turnout)
    return app


def client(app: Any, base_url: str = "http://testserver", **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, **kwargs), base_url=base_url)


async def whoami_of(turnout: Turnout, **request: Any) -> tuple[dict[str, Any], httpx.Response]:
    async with client(make_app(turnout)) as c:
        response = await c.get("/whoami", **request)
    assert response.status_code == 200
    return response.json(), response


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


# --- where the targeting key comes from -----------------------------------------------------


async def test_targeting_key_comes_from_x_user_id_by_default():
    body, response = await whoami_of(make_turnout(), headers={"X-User-Id": "u-42"})
    assert body["key"] == "u-42"
    assert body["anonymous"] is False
    assert set_cookies(response) == []


async def test_session_header_sets_the_session_id():
    body, _ = await whoami_of(make_turnout(), headers={"X-User-Id": "u1", "X-Session-Id": "s-9"})
    assert body["session"] == "s-9"


async def test_targeting_key_from_a_configured_cookie():
    turnout = make_turnout({"user_cookie": "uid"})
    body, response = await whoami_of(turnout, headers={"Cookie": "theme=dark; uid=cookie-user; x=1"})
    assert body["key"] == "cookie-user"
    assert body["anonymous"] is False
    assert set_cookies(response) == []


async def test_cookie_split_over_several_headers_is_read_whole():
    turnout = make_turnout({"user_cookie": "uid"})
    body, _ = await whoami_of(turnout, headers=[("cookie", "uid=split-user"), ("cookie", "theme=dark")])
    assert body["key"] == "split-user"


async def test_targeting_key_from_a_configured_query_parameter():
    turnout = make_turnout({"user_query": "user"})
    body, _ = await whoami_of(turnout, params={"page": "2", "user": "query-user"})
    assert body["key"] == "query-user"
    assert body["anonymous"] is False


async def test_query_parameter_is_ignored_when_not_configured():
    body, _ = await whoami_of(make_turnout(), params={"user": "query-user"})
    assert body["anonymous"] is True
    assert body["key"] != "query-user"


async def test_header_wins_over_cookie_and_query():
    turnout = make_turnout({"user_cookie": "uid", "user_query": "user"})
    body, _ = await whoami_of(
        turnout, headers={"X-User-Id": "from-header", "Cookie": "uid=from-cookie"}, params={"user": "q"}
    )
    assert body["key"] == "from-header"


async def test_custom_user_header():
    turnout = make_turnout({"user_header": "X-Account"})
    body, _ = await whoami_of(turnout, headers={"X-Account": "acct-1", "X-User-Id": "ignored"})
    assert body["key"] == "acct-1"


async def test_attribute_headers_become_attributes_and_drive_a_when_rule():
    turnout = make_turnout({"attribute_headers": {"X-Plan": "plan", "X-Country": "country"}})
    app = make_app(turnout)
    async with client(app) as c:
        who = (
            await c.get("/whoami", headers={"X-User-Id": "u1", "x-plan": "premium", "X-Country": "DE"})
        ).json()
        premium = (await c.get("/chat", headers={"X-User-Id": "u1", "X-Plan": "premium"})).json()
        free = (await c.get("/chat", headers={"X-User-Id": "u1", "X-Plan": "free"})).json()
        none = (await c.get("/chat", headers={"X-User-Id": "u1"})).json()
    assert who["attributes"] == {"plan": "premium", "country": "DE"}
    assert premium == {"variant": "langgraph", "reason": "TARGETING_MATCH", "reply": "langgraph:hi"}
    assert free["variant"] == none["variant"] == "legacy"
    assert none["reason"] == "DEFAULT"


async def test_headers_not_configured_as_attributes_are_not_attributes():
    body, _ = await whoami_of(make_turnout(), headers={"X-User-Id": "u1", "X-Plan": "premium"})
    assert body["attributes"] == {}


# --- anonymous users ---------------------------------------------------------------------------


@pytest.mark.parametrize("headers", [{}, {"X-User-Id": ""}, {"X-User-Id": "   "}, {"X-User-Id": "\t"}])
async def test_missing_or_blank_user_id_gets_an_anonymous_id_and_cookie(headers):
    body, response = await whoami_of(make_turnout(), headers=headers)
    assert body["anonymous"] is True
    assert body["key"].strip() == body["key"] != ""
    assert body["session"] == body["key"]
    [header] = set_cookies(response)
    cookie = SimpleCookie(header)["turnout_id"]
    assert cookie.value == body["key"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["path"] == "/"
    assert int(cookie["max-age"]) == 365 * 86400
    assert not cookie["secure"]


async def test_anonymous_cookie_is_secure_over_https():
    async with client(make_app(make_turnout()), base_url="https://testserver") as c:
        response = await c.get("/whoami")
    [header] = set_cookies(response)
    assert SimpleCookie(header)["turnout_id"]["secure"] is True


async def test_anonymous_ids_differ_between_new_visitors():
    first, _ = await whoami_of(make_turnout())
    second, _ = await whoami_of(make_turnout())
    assert first["key"] != second["key"]


async def test_returning_anonymous_visitor_keeps_the_key_and_gets_no_new_cookie():
    app = make_app(make_turnout())
    async with client(app) as c:
        first = await c.get("/whoami")
        c.cookies.clear()  # send the cookie by hand, as a browser would
        anonymous_id = SimpleCookie(set_cookies(first)[0])["turnout_id"].value
        second = await c.get("/whoami", headers={"Cookie": f"turnout_id={anonymous_id}"})
        third = await c.get("/chat", headers={"Cookie": f"other=1; turnout_id={anonymous_id}"})
    assert second.json()["key"] == first.json()["key"] == anonymous_id
    assert second.json()["anonymous"] is True
    assert set_cookies(second) == []
    assert set_cookies(third) == []


async def test_anonymous_visitor_is_sticky_through_a_browser_like_client():
    turnout = make_turnout(rules=[SPLIT])
    async with client(make_app(turnout)) as c:
        variants = {(await c.get("/chat")).json()["variant"] for _ in range(5)}
    assert len(variants) == 1


async def test_known_user_gets_no_anonymous_cookie_even_with_a_stale_one():
    body, response = await whoami_of(
        make_turnout(), headers={"X-User-Id": "u1", "Cookie": "turnout_id=old-anonymous"}
    )
    assert body["key"] == "u1"
    assert body["anonymous"] is False
    assert set_cookies(response) == []


async def test_anonymous_cookie_is_added_next_to_the_apps_own_cookies():
    async def sets_cookie(request: Request) -> PlainTextResponse:
        response = PlainTextResponse("ok")
        response.set_cookie("app_cookie", "1")
        return response

    app = Starlette(routes=[Route("/", sets_cookie)])
    app.add_middleware(TurnoutMiddleware, turnout=make_turnout())
    async with client(app) as c:
        response = await c.get("/")
    names = {next(iter(SimpleCookie(header))) for header in set_cookies(response)}
    assert names == {"app_cookie", "turnout_id"}


# --- hostile ids -------------------------------------------------------------------------------


async def test_huge_id_becomes_a_sticky_bounded_key():
    huge = "x" * 100_000
    first, r1 = await whoami_of(make_turnout(), headers={"X-User-Id": huge})
    second, _ = await whoami_of(make_turnout(), headers={"X-User-Id": huge})
    other, _ = await whoami_of(make_turnout(), headers={"X-User-Id": huge[:-1] + "y"})
    assert first["key"] == second["key"]
    assert first["key"] != other["key"]
    assert 0 < len(first["key"]) <= 256
    assert first["anonymous"] is False
    assert set_cookies(r1) == []


async def test_id_at_the_length_limit_is_kept_as_is():
    limit = "k" * 256
    body, _ = await whoami_of(make_turnout(), headers={"X-User-Id": limit})
    assert body["key"] == limit


async def test_huge_anonymous_cookie_is_bounded_too():
    body, response = await whoami_of(make_turnout(), headers={"Cookie": "turnout_id=" + "z" * 50_000})
    assert len(body["key"]) <= 256
    assert set_cookies(response) == []


async def test_huge_id_routes_stickily():
    turnout = make_turnout(rules=[SPLIT])
    headers = [(b"x-user-id", ("é" * 60_000).encode())]
    async with client(make_app(turnout)) as c:
        variants = {(await c.get("/chat", headers=headers)).json()["variant"] for _ in range(3)}
    assert len(variants) == 1


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("用户42".encode(), "用户42"),
        ("Müller".encode("latin-1"), "Müller"),
        ("Zoë".encode(), "Zoë"),
        (b"\xff\xfe\x80", "\xff\xfe\x80"),
    ],
)
async def test_non_ascii_ids_are_read_and_sticky(raw, expected):
    turnout = make_turnout(rules=[SPLIT])
    async with client(make_app(turnout)) as c:
        who = await c.get("/whoami", headers=[(b"x-user-id", raw)])
        chats = [await c.get("/chat", headers=[(b"x-user-id", raw)]) for _ in range(3)]
    assert who.json()["key"] == expected
    assert who.json()["anonymous"] is False
    assert {r.status_code for r in chats} == {200}
    assert len({r.json()["variant"] for r in chats}) == 1


async def test_non_ascii_attribute_header_is_read():
    turnout = make_turnout({"attribute_headers": {"X-City": "city"}})
    body, _ = await whoami_of(turnout, headers=[(b"x-user-id", b"u1"), (b"x-city", "Zürich".encode())])
    assert body["attributes"] == {"city": "Zürich"}


# --- X-Turnout-Variant -------------------------------------------------------------------------


async def test_variant_header_only_when_a_decision_was_made():
    turnout = make_turnout({"variant_header": "X-Turnout-Variant", "attribute_headers": {"X-Plan": "plan"}})
    async with client(make_app(turnout)) as c:
        decided = await c.get("/chat", headers={"X-User-Id": "u1", "X-Plan": "premium"})
        undecided = await c.get("/plain", headers={"X-User-Id": "u1"})
    assert decided.headers["x-turnout-variant"] == "coordinator=langgraph"
    assert "x-turnout-variant" not in undecided.headers
    assert undecided.text == "no decision here"


async def test_no_variant_header_unless_configured():
    async with client(make_app(make_turnout())) as c:
        response = await c.get("/chat", headers={"X-User-Id": "u1"})
    assert response.status_code == 200
    assert "x-turnout-variant" not in response.headers


async def test_variant_header_shows_the_fallback_engine_that_served():
    turnout = make_turnout(
        {"variant_header": "X-Turnout-Variant"},
        engines={"workflow": {"fallback": "legacy"}, "legacy": {}},
        default="workflow",
    )

    def broken(message: str) -> str:
        raise ValueError("down")

    turnout.add_engine("workflow", broken)
    async with client(make_app(turnout)) as c:
        response = await c.get("/chat", headers={"X-User-Id": "u1"})
    assert response.json()["reply"] == "legacy:hi"
    # the variant served stays the flag's; the engine that answered is recorded on the decision
    assert response.headers["x-turnout-variant"] == "coordinator=workflow"


# --- the contextvar ----------------------------------------------------------------------------


async def test_context_is_reset_after_the_request():
    assert current_context() is None
    async with client(make_app(make_turnout())) as c:
        response = await c.get("/whoami", headers={"X-User-Id": "u1"})
    assert response.json()["key"] == "u1"
    assert current_context() is None


async def test_context_is_reset_when_the_app_raises():
    async with client(make_app(make_turnout())) as c:
        with pytest.raises(RuntimeError, match="handler failed"):
            await c.get("/boom", headers={"X-User-Id": "u1"})
    assert current_context() is None


async def test_app_error_still_becomes_a_500_and_the_context_is_reset():
    async with client(make_app(make_turnout()), raise_app_exceptions=False) as c:
        response = await c.get("/boom")
    assert response.status_code == 500
    assert current_context() is None


async def test_context_reset_when_called_directly_and_the_app_raises():
    seen: list[RoutingContext | None] = []

    async def failing_app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(current_context())
        raise KeyError("inner")

    middleware = TurnoutMiddleware(failing_app, turnout=make_turnout())
    scope = {"type": "http", "method": "GET", "path": "/", "headers": [(b"x-user-id", b"u7")]}
    with pytest.raises(KeyError):
        await middleware(scope, _never_receive, _discard)
    assert seen[0] is not None
    assert seen[0].targeting_key == "u7"
    assert current_context() is None


async def test_concurrent_requests_each_see_their_own_context():
    inside: list[str] = []
    all_inside = asyncio.Event()
    release = asyncio.Event()

    async def slow(request: Request) -> JSONResponse:
        ctx = current_context()
        assert ctx is not None
        inside.append(ctx.targeting_key)
        if len(inside) == 5:
            all_inside.set()
        await release.wait()  # every request is in flight at once here
        after = current_context()
        assert after is not None
        return JSONResponse({"before": ctx.targeting_key, "after": after.targeting_key})

    app = Starlette(routes=[Route("/", slow)])
    app.add_middleware(TurnoutMiddleware, turnout=make_turnout())
    async with client(app) as c:
        tasks = [asyncio.create_task(c.get("/", headers={"X-User-Id": f"u{i}"})) for i in range(5)]
        await all_inside.wait()
        release.set()
        responses = await asyncio.gather(*tasks)
    assert sorted(inside) == [f"u{i}" for i in range(5)]
    assert [r.json() for r in responses] == [{"before": f"u{i}", "after": f"u{i}"} for i in range(5)]
    assert current_context() is None


# --- non-http scopes ---------------------------------------------------------------------------


async def _never_receive() -> dict[str, Any]:
    raise AssertionError("receive should not be called")


async def _discard(message: Any) -> None:
    return None


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
async def test_non_http_scopes_pass_straight_through(scope_type):
    calls: list[tuple[Any, Any, Any, RoutingContext | None]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        calls.append((scope, receive, send, current_context()))

    middleware = TurnoutMiddleware(app, turnout=make_turnout({"variant_header": "X-Turnout-Variant"}))
    scope = {"type": scope_type, "headers": [(b"x-user-id", b"u1")]}
    original = dict(scope)

    async def receive() -> dict[str, Any]:
        return {"type": f"{scope_type}.disconnect"}

    async def send(message: Any) -> None:
        return None

    await middleware(scope, receive, send)
    [(seen_scope, seen_receive, seen_send, ctx)] = calls
    assert seen_scope is scope
    assert seen_receive is receive
    assert seen_send is send
    assert ctx is None
    assert scope == original


async def test_websocket_routes_work_behind_the_middleware():
    async def echo(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text(str(current_context()))
        await websocket.close()

    app = Starlette(routes=[Route("/whoami", whoami), WebSocketRoute("/ws", echo)])
    app.add_middleware(TurnoutMiddleware, turnout=make_turnout())
    messages: list[dict[str, Any]] = []
    inbox = [{"type": "websocket.connect"}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0) if inbox else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    await app({"type": "websocket", "path": "/ws", "headers": [], "query_string": b""}, receive, send)
    assert [m["type"] for m in messages] == ["websocket.accept", "websocket.send", "websocket.close"]
    assert messages[1]["text"] == "None"


# --- streaming ---------------------------------------------------------------------------------


async def test_streaming_responses_are_not_buffered():
    produced: list[str] = []

    async def chunks() -> Any:
        for i in range(3):
            produced.append(f"chunk-{i}")
            yield f"chunk-{i};"

    @experiment("coordinator")
    async def stream(request: Request, engine: Any) -> StreamingResponse:
        return StreamingResponse(chunks(), media_type="text/plain")

    turnout = make_turnout({"variant_header": "X-Turnout-Variant"})
    app = Starlette(routes=[Route("/stream", stream)])
    app.add_middleware(TurnoutMiddleware, turnout=turnout)
    sent: list[tuple[dict[str, Any], list[str]]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append((message, list(produced)))

    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if requests:
            return requests.pop(0)
        await asyncio.Event().wait()  # the client stays connected until the response is done
        raise AssertionError("unreachable")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/stream",
        "raw_path": b"/stream",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"x-user-id", b"u1"), (b"host", b"testserver")],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 1234),
    }
    await app(scope, receive, send)

    start, *bodies = (message for message, _ in sent)
    assert start["type"] == "http.response.start"
    assert (b"x-turnout-variant", b"coordinator=legacy") in start["headers"]
    chunk_messages = [(m, seen) for m, seen in sent[1:] if m.get("body")]
    assert [m["body"] for m, _ in chunk_messages] == [b"chunk-0;", b"chunk-1;", b"chunk-2;"]
    assert all(m["more_body"] is True for m, _ in chunk_messages)
    # each chunk reached the client before the next one was produced
    assert [seen for _, seen in chunk_messages] == [
        ["chunk-0"],
        ["chunk-0", "chunk-1"],
        ["chunk-0", "chunk-1", "chunk-2"],
    ]
    assert bodies[-1]["type"] == "http.response.body"
    assert bodies[-1].get("more_body", False) is False


async def test_streaming_through_httpx_delivers_the_whole_body():
    async def numbers(request: Request) -> StreamingResponse:
        async def gen() -> Any:
            for i in range(4):
                yield f"{i}\n"

        return StreamingResponse(gen())

    app = Starlette(routes=[Route("/", numbers)])
    app.add_middleware(TurnoutMiddleware, turnout=make_turnout())
    async with client(app) as c:
        response = await c.get("/")
    assert response.text == "0\n1\n2\n3\n"
    assert "turnout_id=" in response.headers["set-cookie"]


# --- request overrides -------------------------------------------------------------------------


async def test_override_header_and_query_are_honoured_when_the_flag_allows():
    turnout = make_turnout({"override_secret": "s3"}, allow_overrides=True)
    signed = sign_override("s3", "coordinator", "workflow")
    async with client(make_app(turnout)) as c:
        by_header = await c.get("/chat", headers={"X-User-Id": "u1", "X-Turnout-Override": signed})
        by_query = await c.get("/chat", headers={"X-User-Id": "u1"}, params={"turnout_override": signed})
        plain_request = await c.get("/chat", headers={"X-User-Id": "u1"})
    assert by_header.json() == {"variant": "workflow", "reason": "OVERRIDE", "reply": "workflow:hi"}
    assert by_query.json() == {"variant": "workflow", "reason": "OVERRIDE", "reply": "workflow:hi"}
    assert plain_request.json()["variant"] == "legacy"


async def test_overrides_are_ignored_unless_the_flag_allows_them():
    turnout = make_turnout()
    async with client(make_app(turnout)) as c:
        by_header = await c.get(
            "/chat", headers={"X-User-Id": "u1", "X-Turnout-Override": "coordinator=workflow"}
        )
        by_query = await c.get("/chat?turnout_override=coordinator%3Dworkflow", headers={"X-User-Id": "u1"})
    assert by_header.json()["variant"] == by_query.json()["variant"] == "legacy"
    assert by_header.json()["reason"] == by_query.json()["reason"] == "DEFAULT"


async def test_override_of_an_undeclared_variant_is_ignored():
    turnout = make_turnout({"override_ids": ["u1"]}, allow_overrides=True)
    async with client(make_app(turnout)) as c:
        response = await c.get("/chat", headers={"X-User-Id": "u1", "X-Turnout-Override": "coordinator=nope"})
    assert response.json()["variant"] == "legacy"


async def test_override_list_is_parsed_per_flag():
    body, _ = await whoami_of(
        make_turnout({"override_ids": ["u1"]}),
        headers={"X-User-Id": "u1", "X-Turnout-Override": " coordinator = workflow , other=x, junk, =y"},
    )
    assert body["overrides"] == {"coordinator": "workflow", "other": "x"}


# --- config reloads ----------------------------------------------------------------------------


async def test_middleware_follows_a_reloaded_http_config():
    turnout = make_turnout()
    app = make_app(turnout)
    async with client(app) as c:
        before = (await c.get("/whoami", headers={"X-User-Id": "u1", "X-Account": "a1"})).json()
        config = turnout.config.model_dump()
        config["http"] = {"user_header": "X-Account"}
        turnout.reload(config)
        after = (await c.get("/whoami", headers={"X-User-Id": "u1", "X-Account": "a1"})).json()
    assert before["key"] == "u1"
    assert after["key"] == "a1"
