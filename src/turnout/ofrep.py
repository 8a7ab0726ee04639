"""The OpenFeature Remote Evaluation Protocol (OFREP) as an ASGI app, for services in other languages.

`POST /ofrep/v1/evaluate/flags/{key}` evaluates one flag, `POST /ofrep/v1/evaluate/flags` all of
them (with an ETag, and 304 for an unchanged result), `GET /ofrep/v1/configuration` tells
clients what this server supports. Every evaluation is `Turnout.decide`, so a Go, Java or
JavaScript service gets the same sticky variant as the Python app for the same user, and its
exposures are tracked as the app's are.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import structlog

from turnout.errors import MissingExtraError
from turnout.evaluation import ContextError, Evaluation, evaluate, parse_context

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response

    from turnout.router import Turnout

_log = structlog.get_logger("turnout")

MAX_BODY_BYTES = 1_000_000
_SUPPORTED_TYPES = ["boolean", "string", "int", "float", "object"]


def ofrep_app(
    turnout: Turnout,
    *,
    tokens: Mapping[str, str] | None = None,
    admit: Callable[[Request], str | None] | None = None,
) -> Starlette:
    """The OFREP endpoints as a Starlette app; mount it anywhere, or serve it alone.

    `tokens` (SHA-256 hex of a bearer token → caller name) replaces `[ofrep] tokens`; with no
    tokens at all, anyone who reaches the app may evaluate flags. `admit` is a second way in
    (the admin app passes its own token check): the caller's name, or None to refuse; with it,
    a request that carries no OFREP token must pass it.
    """
    try:
        from starlette.applications import Starlette
        from starlette.routing import Route
    except ImportError as exc:
        raise MissingExtraError("cli", "starlette", "the OFREP endpoint") from exc
    endpoint = _Endpoint(turnout, tokens, admit)
    return Starlette(
        routes=[
            Route("/ofrep/v1/evaluate/flags/{key:path}", endpoint.single, methods=["POST"]),
            Route("/ofrep/v1/evaluate/flags", endpoint.bulk, methods=["POST"]),
            Route("/ofrep/v1/configuration", endpoint.configuration, methods=["GET"]),
        ]
    )


class _Endpoint:
    def __init__(
        self,
        turnout: Turnout,
        tokens: Mapping[str, str] | None,
        admit: Callable[[Request], str | None] | None = None,
    ) -> None:
        self.turnout = turnout
        self.tokens = None if tokens is None else {k.lower(): v for k, v in tokens.items()}
        self.admit = admit

    # -- auth ----------------------------------------------------------------------------

    def _caller(self, request: Request) -> str | None:
        """The caller's name; "" when no token is needed, None when the token is missing or wrong."""
        tokens = self.tokens if self.tokens is not None else self.turnout.config.ofrep.tokens
        if not tokens:
            return "" if self.admit is None else self.admit(request)
        presented = _presented_token(request)
        found = None
        if presented is not None:
            digest = hashlib.sha256(presented.encode()).hexdigest()
            # Every digest is compared, in constant time, so timing tells nothing about the tokens.
            for known, name in tokens.items():
                if hmac.compare_digest(digest, known.lower()):
                    found = name
        if found is None and self.admit is not None:
            return self.admit(request)
        return found

    def _refused(self) -> Response:
        from starlette.responses import JSONResponse

        return JSONResponse(
            {"errorDetails": "send a valid token: Authorization: Bearer <token>"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="ofrep"'},
        )

    # -- endpoints -----------------------------------------------------------------------

    async def single(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        key = request.path_params["key"]
        caller = self._caller(request)
        if caller is None:
            return self._refused()
        try:
            targeting_key, attributes = parse_context(await _request_context(request))
            result = evaluate(self.turnout, key, targeting_key, attributes, key_from_request=not caller)
        except ContextError as exc:
            return JSONResponse(_failure(key, exc.code, exc.message), status_code=400)
        except Exception as exc:
            return self._server_error(exc)
        if result.error_code == "FLAG_NOT_FOUND":
            return JSONResponse(_failure(key, result.error_code, result.error_message), status_code=404)
        if result.error_code is not None:
            return JSONResponse(_failure(key, result.error_code, result.error_message), status_code=400)
        return JSONResponse({**_success(result), "cacheable": False})

    async def bulk(self, request: Request) -> Response:
        from starlette.responses import JSONResponse, Response

        caller = self._caller(request)
        if caller is None:
            return self._refused()
        try:
            targeting_key, attributes = parse_context(await _request_context(request))
            flags = [
                _bulk_entry(
                    evaluate(self.turnout, key, targeting_key, attributes, key_from_request=not caller)
                )
                for key in self.turnout.config.flags
            ]
        except ContextError as exc:
            return JSONResponse({"errorCode": exc.code, "errorDetails": exc.message}, status_code=400)
        except Exception as exc:
            return self._server_error(exc)
        body = json.dumps({"flags": flags}, separators=(",", ":"), sort_keys=True).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        if _matches(request.headers.get("if-none-match"), etag):
            return Response(status_code=304, headers={"ETag": etag})
        return Response(body, media_type="application/json", headers={"ETag": etag})

    async def configuration(self, request: Request) -> Response:
        from starlette.responses import JSONResponse

        if self._caller(request) is None:
            return self._refused()
        interval = self.turnout.config.ofrep.poll_interval_ms
        return JSONResponse(
            {
                "name": "turnout",
                "capabilities": {
                    "cacheInvalidation": {"polling": {"enabled": True, "minPollingIntervalMs": interval}},
                    "flagEvaluation": {"supportedTypes": _SUPPORTED_TYPES},
                },
            }
        )

    def _server_error(self, exc: Exception) -> Response:
        from starlette.responses import JSONResponse

        # The caller falls back to its default value; the failure is logged once and counted.
        self.turnout.failures.record("ofrep", exc)
        return JSONResponse({"errorDetails": "the evaluation failed on the server"}, status_code=500)


async def _request_context(request: Request) -> Any:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            # Stop reading: a huge body is refused without being held in memory.
            raise ContextError("PARSE_ERROR", f"the request body is larger than {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body.strip():
        return None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ContextError("PARSE_ERROR", f"the request body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ContextError("PARSE_ERROR", 'the request body must be an object: {"context": {...}}')
    return data.get("context")


def _presented_token(request: Request) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


def _success(result: Evaluation) -> dict[str, Any]:
    return {
        "key": result.key,
        "value": result.value,
        "variant": result.variant,
        "reason": result.reason,
        "metadata": result.metadata,
    }


def _failure(key: str, code: str, message: str | None) -> dict[str, Any]:
    return {"key": key, "errorCode": code, "errorDetails": message or code}


def _bulk_entry(result: Evaluation) -> dict[str, Any]:
    if result.error_code is not None:
        return _failure(result.key, result.error_code, result.error_message)
    return _success(result)


def _matches(if_none_match: str | None, etag: str) -> bool:
    if not if_none_match:
        return False
    candidates = [tag.strip().removeprefix("W/") for tag in if_none_match.split(",")]
    return "*" in candidates or etag in candidates
