"""`TurnoutMiddleware`: pure ASGI; puts a `RoutingContext` in a contextvar for each request."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

from turnout.config import HttpConfig
from turnout.context import RoutingContext
from turnout.shadow import defer_shadows, stop_deferring
from turnout.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from turnout.router import Turnout

STATE_KEY = "turnout_context"
# The roles of the headers a ContextReader reads besides attribute headers (whose role is the
# name of the attribute they fill).
_USER, _COOKIE, _SESSION, _OVERRIDE = range(4)
_NO_OVERRIDES: Mapping[str, str] = MappingProxyType({})


class AttributeTooLong(ValueError):
    """An attribute header's value was longer than `http.max_attribute_length` and was cut."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"attribute header longer than {limit} characters, cut to that length")


class UnsignedOverride(ValueError):
    """A request override without a valid signature (and not from an allowlisted id): ignored."""

    def __init__(self, flag: str) -> None:
        super().__init__(f"override of {flag!r} is not signed with http.override_secret; ignored")


class ContextReader:
    """Builds a `RoutingContext` from an ASGI scope, as the `http` config says."""

    def __init__(self, config: HttpConfig) -> None:
        self.config = config
        trusted = config.trusted_headers
        # What each header this reader looks at means: one of the roles above, or the name of the
        # attribute it fills. A header named twice is read as the user first, then the cookie,
        # session and override headers, then an attribute, as the order of the checks always had it.
        self._roles: dict[bytes, int | str] = (
            {k.lower().encode("latin-1"): v for k, v in config.attribute_headers.items()} if trusted else {}
        )
        for header, role in (
            (_lower(config.override_header), _OVERRIDE),
            (_lower(config.session_header), _SESSION),
            (b"cookie", _COOKIE),
            (_lower(config.user_header) if trusted else None, _USER),
        ):
            if header is not None:
                self._roles[header] = role
        self._override_secret = config.override_secret.encode() if config.override_secret else None
        self._override_ids = frozenset(config.override_ids)
        self._cookie = config.user_cookie
        self._anonymous_cookie = config.anonymous_cookie
        self._query = config.user_query
        self._override_query = config.override_query
        self._query_marks = tuple(
            f"{name}=".encode() for name in (config.user_query, config.override_query) if name
        )
        self._max = config.max_key_length
        self._max_attribute = config.max_attribute_length
        same_site = config.cookie_samesite.capitalize()
        self._cookie_suffix = (
            f"; Path=/; Max-Age={int(config.anonymous_cookie_max_age)}; HttpOnly; SameSite={same_site}"
        )
        self._always_secure = config.cookie_secure or config.cookie_samesite == "none"

    def read(self, scope: Scope, turnout: Turnout | None = None) -> tuple[RoutingContext, str | None]:
        """The context for this request, and the anonymous id to set as a cookie if one was made."""
        key = session = cookie_header = override_header = None
        attributes: dict[str, Any] = {}
        roles = self._roles
        for name, raw in scope.get("headers", ()):
            role = roles.get(name)
            if role is None:
                continue  # most headers: one dict lookup each
            if role == _USER:
                key = _text(raw)
            elif role == _COOKIE:
                # HTTP/2 clients may split cookies over several headers.
                cookie_header = f"{cookie_header}; {_text(raw)}" if cookie_header else _text(raw)
            elif role == _SESSION:
                session = _text(raw)
            elif role == _OVERRIDE:
                override_header = _text(raw)
            elif isinstance(role, str):
                value = _text(raw)
                if len(value) > self._max_attribute:
                    # Capped like ids: rules ($regex above all) never see an unbounded client value.
                    value = value[: self._max_attribute]
                    if turnout is not None:
                        turnout.failures.record("http", AttributeTooLong(self._max_attribute), header=name)
                attributes[role] = value
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
        overrides = _NO_OVERRIDES
        if override_header or forced:
            overrides = self._accepted(_overrides(override_header, forced), key, turnout)
        context = RoutingContext(
            key,
            attributes,
            session_id=self._clean(session) or (key if anonymous else None),
            anonymous=anonymous,
            overrides=overrides,
            key_from_request=True,
        )
        return context, new_cookie

    def _accepted(
        self, requested: dict[str, tuple[str, str | None]], key: str, turnout: Turnout | None
    ) -> Mapping[str, str]:
        """The overrides signed with `override_secret`, or all of them for an allowlisted key."""
        trusted_key = key in self._override_ids
        accepted: dict[str, str] = {}
        for flag, (variant, signature) in requested.items():
            if trusted_key or (
                signature is not None
                and self._override_secret is not None
                and hmac.compare_digest(_sign(self._override_secret, flag, variant), signature.lower())
            ):
                accepted[flag] = variant
            elif turnout is not None:
                turnout.failures.record("http", UnsignedOverride(flag), flag=flag)
        return accepted or _NO_OVERRIDES

    def set_cookie_header(self, anonymous_id: str, scope: Scope) -> tuple[bytes, bytes]:
        """The Set-Cookie header that keeps an anonymous user sticky."""
        secure = "; Secure" if self._always_secure or scope.get("scheme") == "https" else ""
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
        with self.turnout.serving(context):
            await self.app(scope, receive, send)

    async def _call_with_shadows(
        self, scope: Scope, receive: Receive, send: Send, context: RoutingContext
    ) -> None:
        """Run the app holding its shadow calls back until the response has been sent."""
        runner = self.turnout.shadows
        pending, deferring = defer_shadows()

        async def send_then_shadow(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False) and pending:
                runner.start(pending)

        try:
            with self.turnout.serving(context):
                await self.app(scope, receive, send_then_shadow)
        finally:
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


def _overrides(header: str | None, query: str | None) -> dict[str, tuple[str, str | None]]:
    """Parse "flag=variant;sig=HEX, flag2=variant2" from the override header and query parameter."""
    overrides: dict[str, tuple[str, str | None]] = {}
    for source in (header, query):
        if source:
            for item in source.split(","):
                pair, _, extra = item.partition(";")
                flag, sep, variant = pair.partition("=")
                name, _, signature = extra.partition("=")
                if sep and flag.strip() and variant.strip():
                    signed = signature.strip() if name.strip() == "sig" and signature.strip() else None
                    overrides[flag.strip()] = (variant.strip(), signed)
    return overrides


def _sign(secret: bytes, flag: str, variant: str) -> str:
    return hmac.new(secret, f"{flag}={variant}".encode(), hashlib.sha256).hexdigest()


def sign_override(secret: str, flag: str, variant: str) -> str:
    """The override header value that forces `variant` of `flag`: `flag=variant;sig=<hex HMAC>`."""
    return f"{flag}={variant};sig={_sign(secret.encode(), flag, variant)}"
