"""What every admin endpoint shares: the caller's role, JSON bodies, and errors as JSON."""

from __future__ import annotations

import json
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from turnout.admin.auth import Auth, AuthError, Caller, require
from turnout.errors import NOTHING, ConfigError, ConfigIssue

if TYPE_CHECKING:
    from turnout.router import Turnout

MAX_BODY = 256 * 1024
"""Bytes a request body may have."""


class ApiError(Exception):
    """An error response: `status` and a message (or 422 with config issues)."""

    def __init__(self, status: int, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class Admin:
    """The Turnout an admin app controls, and how it checks callers."""

    turnout: Turnout
    auth: Auth


@dataclass(frozen=True, slots=True)
class Call:
    """One request to an endpoint, its caller known and allowed."""

    request: Request
    caller: Caller
    admin: Admin

    @property
    def turnout(self) -> Turnout:
        """The Turnout this admin app controls."""
        return self.admin.turnout

    def param(self, name: str) -> str:
        """A path parameter."""
        return str(self.request.path_params[name])

    async def body(self) -> dict[str, Any]:
        """The JSON object sent (an empty object when none was sent)."""
        raw = await self.request.body()
        if len(raw) > MAX_BODY:
            raise ApiError(413, f"the body is larger than {MAX_BODY} bytes")
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            raise ApiError(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise invalid("<body>", data, "expected a JSON object")
        return data


Handler = Callable[[Call], Awaitable[Response]]


def endpoint(admin: Admin, role: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint: checks the caller has `role`, runs `handler`, turns errors into JSON."""

    async def run(request: Request) -> Response:
        try:
            client = request.client.host if request.client is not None else None
            caller = admin.auth.caller(request.headers.get("authorization"), client)
            require(caller, role)
            return await handler(Call(request, caller, admin))
        except AuthError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
            return JSONResponse({"error": str(exc)}, exc.status, headers=headers)
        except ConfigError as exc:
            return issues_response(exc.issues)
        except ApiError as exc:
            return JSONResponse({"error": str(exc)}, exc.status, headers=exc.headers)

    return run


def invalid(path: str, value: Any, message: str) -> ConfigError:
    """A 422 for one bad value of a request body, in the config file's error format."""
    return ConfigError([ConfigIssue(path, value, message)])


def issues_response(issues: tuple[ConfigIssue, ...]) -> JSONResponse:
    """422 `{"errors": [{"path", "value", "message"}]}`."""
    errors = [
        {"path": i.path, "value": None if i.value is NOTHING else plain(i.value), "message": i.message}
        for i in issues
    ]
    return JSONResponse({"errors": errors}, 422)


def plain(value: Any) -> Any:
    """`value` as JSON data: unknown types as text, non-finite numbers as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    return str(value)


def ok(data: Any, status: int = 200, *, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """A JSON response of plain data."""
    return JSONResponse(plain(data), status, headers=dict(headers or {}))


def text_field(body: Mapping[str, Any], name: str, *, default: str = "", limit: int = 1000) -> str:
    """A string field of a body (`reason`...), checked."""
    value = body.get(name, default)
    if not isinstance(value, str):
        raise invalid(name, value, "expected a string")
    if len(value) > limit:
        raise invalid(name, value[:40] + "...", f"at most {limit} characters")
    return value
