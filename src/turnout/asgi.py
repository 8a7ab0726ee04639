"""`TurnoutMiddleware`: pure ASGI; puts a `RoutingContext` in a contextvar for each request."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from turnout.config import HttpConfig
from turnout.context import RoutingContext, _current
from turnout.shadow import defer_shadows, stop_deferring
from turnout.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from turnout.router import Turnout

STATE_KEY = "turnout_context"
_NO_OVERRIDES: Mapping[str, str] = MappingProxyType({})


class ContextReader:
    """Builds a `RoutingContext` from an ASGI scope, as the `http` config says."""

    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        self._user_header = _lower(config.user_header)
        self._session_header = _lower(config.session_header)
        self._override_header = _lower(config.override_header)
        self._attribute_headers = {
            k.lower().encode("latin-1"): v for k, v in config.attribute_headers.items()
        }
        self._cookie = config.user_cookie
        self._anonymous_cookie = config.anonymous_cookie
        self._query = config.user_query
        self._override_query = config.override_query
        self._query_marks = tuple(
            f"{name}=".encode() for name in (config.user_query, config.override_query) if name
        )
        self._max = config.max_key_length
        self._cookie_suffix = (
            f"; Path=/; Max-Age={int(config.anonymous_cookie_max_age)}; HttpOnly; SameSite=Lax"
        )

    def read(self, scope: Scope, turnout: Turnout | None = None) -> tuple[RoutingContext, str | None]:
        """The context for this request, and the anonymous id to set as a cookie if one was made."""
        key = session = cookie_header = override_header = None
        attributes: dict[str, Any] = {}
        for name, raw in scope.get("headers", ()):
            if name == self._user_header:
                key = _text(raw)
            elif name == b"cookie":
                # HTTP/2 clients may split cookies over several headers.
                cookie_header = f"{cookie_header}; {_text(raw)}" if cookie_header else _text(raw)
            elif name == self._session_header:
                session = _text(raw)
            elif name == self._override_header:
                override_header = _text(raw)
            elif name in self._attribute_headers:
                attributes[self._attribute_headers[name]] = _text(raw)
        query: dict[str, str] = {}
        raw_query = scope.get("query_string", b"")
        if raw_query and any(mark in raw_query for mark in self._query_marks):
            query = dict(parse_qsl(raw_query.decode("latin-1"), keep_blank_values=False))
        if not key and self._query:
            key = query.get(self._query)
        cookies = _cookies(cookie_header) if cookie_header else {}
        if not key and self._cookie:
            key = cookies.get(self._cookie)
        key = self._clean(key)
        anonymous, new_cookie = key is None, None
        if key is None:
            key = self._clean(cookies.get(self._anonymous_cookie))
            if key is None:
                key = new_cookie = uuid.uuid4().hex
        forced = query.get(self._override_query) if query else None
        context = RoutingContext(
            key,
            attributes,
            session_id=self._clean(session) or (key if anonymous else None),
            anonymous=anonymous,
            overrides=_overrides(override_header, forced) if override_header or forced else _NO_OVERRIDES,
            turnout=turnout,
        )
        return context, new_cookie

    def set_cookie_header(self, anonymous_id: str, scope: Scope) -> tuple[bytes, bytes]:
        """The Set-Cookie header that keeps an anonymous user sticky."""
        secure = "; Secure" if scope.get("scheme") == "https" else ""
        value = f"{self._anonymous_cookie}={anonymous_id}{self._cookie_suffix}{secure}"
        return b"set-cookie", value.encode("latin-1")

    def _clean(self, key: str | None) -> str | None:
        if key is None:
            return None
        key = key.strip()
        if not key:
            return None
        if len(key) > self._max:
            # Hash instead of dropping: a huge id stays sticky without growing anything.
            return "sha256:" + hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        return key


class TurnoutMiddleware:
    """Pure ASGI middleware giving each HTTP request its `RoutingContext`."""

    def __init__(self, app: ASGIApp, *, turnout: Turnout) -> None:
        self.app = app
        self.turnout = turnout
        self._config: HttpConfig | None = None
        self._reader = self._reader_for(turnout.config.http)

    def _reader_for(self, config: HttpConfig) -> ContextReader:
        if config is not self._config:
            self._config = config
            self._reader = ContextReader(config)
            self._variant_header = _lower(config.variant_header)
        return self._reader

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reader = self._reader_for(self.turnout.config.http)
        context, new_cookie = reader.read(scope, self.turnout)
        state = scope.get("state")
        if state is None:
            state = scope["state"] = {}
        state[STATE_KEY] = context
        variant_header = self._variant_header
        if new_cookie is not None or variant_header is not None:
            send = self._wrap_send(send, scope, context, reader, new_cookie, variant_header)
        if self.turnout.shadowing:
            await self._call_with_shadows(scope, receive, send, context)
            return
        token = _current.set(context)
        try:
            await self.app(scope, receive, send)
        finally:
            _current.reset(token)

    async def _call_with_shadows(
        self, scope: Scope, receive: Receive, send: Send, context: RoutingContext
    ) -> None:
        """Run the app holding its shadow calls back until the response has been sent."""
        runner = self.turnout.shadows
        pending, deferring = defer_shadows()
        token = _current.set(context)

        async def send_then_shadow(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False) and pending:
                runner.start(pending)

        try:
            await self.app(scope, receive, send_then_shadow)
        finally:
            _current.reset(token)
            stop_deferring(deferring)
            if pending:  # the app ended without a complete response (or raised): start them now
                runner.start(pending)

    @staticmethod
    def _wrap_send(
        send: Send,
        scope: Scope,
        context: RoutingContext,
        reader: ContextReader,
        new_cookie: str | None,
        variant_header: bytes | None,
    ) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                if new_cookie is not None:
                    headers.append(reader.set_cookie_header(new_cookie, scope))
                if variant_header is not None and context.decisions:
                    value = ",".join(f"{d.flag}={d.variant}" for d in context.decisions.values())
                    headers.append((variant_header, value.encode("latin-1", "replace")))
                message["headers"] = headers
            await send(message)

        return wrapped


def _lower(name: str | None) -> bytes | None:
    return name.lower().encode("latin-1") if name else None


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


def _cookies(header: str) -> dict[str, str]:
    cookies: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            cookies[name.strip()] = value.strip().strip('"')
    return cookies


def _overrides(header: str | None, query: str | None) -> dict[str, str]:
    """Parse "flag=variant, flag2=variant2" from the override header and query parameter."""
    overrides: dict[str, str] = {}
    for source in (header, query):
        if source:
            for item in source.split(","):
                flag, sep, variant = item.partition("=")
                if sep and flag.strip() and variant.strip():
                    overrides[flag.strip()] = variant.strip()
    return overrides
