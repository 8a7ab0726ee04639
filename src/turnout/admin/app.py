"""The admin Starlette app: a route per path of the operations table, the OpenAPI document, a docs page."""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route

from turnout.admin.auth import Auth, AuthError
from turnout.admin.http import Admin, endpoint
from turnout.admin.openapi import OPERATIONS, document

if TYPE_CHECKING:
    from turnout.router import Turnout


def build_admin_app(
    turnout: Turnout,
    *,
    tokens: Mapping[str, str] | None = None,
    insecure_local_only: bool | None = None,
    env: Mapping[str, str] | None = None,
) -> Starlette:
    """The admin API of `turnout` as a Starlette app (see `turnout.admin.admin_app`)."""
    from turnout import __version__

    auth = Auth(
        lambda: turnout.config.admin,
        env=os.environ if env is None else env,
        tokens=tokens,
        insecure_local_only=insecure_local_only,
    )
    admin = Admin(turnout, auth)
    spec = document(__version__)

    async def openapi(request: Request) -> Response:
        return JSONResponse(spec)

    async def docs(request: Request) -> Response:
        return HTMLResponse(docs_page(spec))

    by_path: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        by_path.setdefault(op.path, {})[op.method] = endpoint(admin, op.role, op.handler)
    # One route per path, so a method it lacks gets a 405 that lists every method it has.
    routes: list[Any] = [
        Route(path, _by_method(handlers), methods=list(handlers)) for path, handlers in by_path.items()
    ]
    routes += [Route("/openapi.json", openapi, methods=["GET"]), Route("/docs", docs, methods=["GET"])]
    ui = _ui(turnout, auth)
    routes.append(Mount("/ui", app=ui))
    routes += _ofrep(turnout, auth).routes  # /ofrep/v1/...: the protocol's own paths
    return Starlette(routes=routes)


def _by_method(handlers: Mapping[str, Any]) -> Any:
    async def dispatch(request: Any) -> Any:
        return await handlers[request.method](request)

    return dispatch


def _ui(turnout: Turnout, auth: Auth) -> Any:
    """The web UI, checking callers exactly as this API does (same tokens, same loopback rule)."""
    from turnout.admin.ui import Denied, ui_app

    def role_of(request: Request) -> str:
        client = request.client.host if request.client is not None else None
        try:
            return auth.caller(request.headers.get("authorization"), client).role
        except AuthError as exc:
            raise Denied(exc.status, str(exc)) from None

    return ui_app(turnout, role_of=role_of)


def _ofrep(turnout: Turnout, auth: Auth) -> Starlette:
    """OFREP for services in other languages: an `[ofrep] tokens` token, or any admin token."""
    from turnout.ofrep import ofrep_app

    def admit(request: Request) -> str | None:
        client = request.client.host if request.client is not None else None
        try:
            return auth.caller(request.headers.get("authorization"), client).name
        except AuthError:
            return None

    return ofrep_app(turnout, admit=admit)


def docs_page(spec: Mapping[str, Any]) -> str:
    """A plain HTML page listing every endpoint, its role and what it does."""
    rows = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            rows.append(
                f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op['x-turnout-role'])}</td><td>{html.escape(op['summary'])}</td></tr>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>turnout admin API</title>"
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 12px;text-align:left}</style>"
        "</head><body><h1>turnout admin API</h1>"
        "<p>Send <code>Authorization: Bearer &lt;token&gt;</code>. Roles: read &lt; write &lt; admin. "
        "The machine-readable description is <a href='openapi.json'>openapi.json</a>.</p>"
        "<table><tr><th>method</th><th>path</th><th>role</th><th>what</th></tr>"
        + "".join(rows)
        + "</table></body></html>"
    )
