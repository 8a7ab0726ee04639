"""`ui_app`: the web dashboard as a Starlette app, mounted at `/ui` of the admin app.

Every page is one shell (no data in it) whose script asks `view/<page>` for the page's body
with the caller's bearer token, every few seconds, and says how old the data is. Write controls
call the admin API; the dashboard itself changes nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from importlib.resources import files
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from turnout.admin.ui import pages
from turnout.admin.ui.access import Denied, RoleOf, admin_roles, token_roles
from turnout.telemetry.figures import Dashboard, Reading
from turnout.telemetry.reading import MetricsReader

if TYPE_CHECKING:
    from turnout.router import Turnout

_STATIC = {"dashboard.css": "text/css", "dashboard.js": "text/javascript"}
_NAV = (
    ("", "Overview"),
    ("flags", "Flags"),
    ("engines", "Engines"),
    ("experiments", "Experiments"),
    ("rollouts", "Rollouts"),
)


class _Metrics:
    """The metrics file read twice over: newest cumulative figures, and the windows of the time range."""

    def __init__(self, turnout: Turnout, since: str) -> None:
        self._turnout = turnout
        self._since = since
        self._lock = threading.Lock()
        self._path: str | None = None
        self._latest: MetricsReader | None = None
        self._windows: MetricsReader | None = None

    def read(self) -> tuple[Dashboard, list[Reading]]:
        telemetry = self._turnout.config.telemetry
        with self._lock:
            if self._latest is None or self._windows is None or self._path != telemetry.jsonl_path:
                self._path = telemetry.jsonl_path
                self._latest = MetricsReader(self._path, telemetry=telemetry)
                self._windows = MetricsReader(self._path, since=self._since, telemetry=telemetry)
            latest = self._latest.read()
            self._windows.read()
            return latest, self._windows.history()


def ui_app(
    turnout: Turnout,
    *,
    tokens: Mapping[str, str] | None = None,
    role_of: RoleOf | None = None,
    insecure_local_only: bool = False,
    api_root: str | None = None,
    refresh_s: float = 5.0,
    since: str = "1h",
) -> Starlette:
    """The dashboard of `turnout`: pages Overview, Flag, Engines, Experiment and Rollout.

    Callers are known by `role_of`, or by `tokens` (each token's SHA-256 hex digest with its
    role), or else by the admin API's own tokens; a read role sees no write controls. Write controls call
    the admin API at `api_root` (default: the path the dashboard is mounted under, less `/ui`).
    Charts cover the last `since` of metrics windows; pages refresh every `refresh_s` seconds.
    """
    if refresh_s <= 0:
        raise ValueError(f"refresh_s: must be above 0, got {refresh_s!r}")
    if role_of is not None:
        who = role_of
    elif tokens is not None or insecure_local_only:
        who = token_roles(tokens or {}, insecure_local_only=insecure_local_only)
    else:
        who = admin_roles(turnout)
    return Starlette(routes=ui_routes(turnout, who, api_root=api_root, refresh_s=refresh_s, since=since))


def ui_routes(
    turnout: Turnout,
    role_of: RoleOf,
    *,
    api_root: str | None = None,
    refresh_s: float = 5.0,
    since: str = "1h",
) -> list[Route]:
    """The dashboard's routes, for an app that mounts them itself (the admin app at `/ui`)."""
    source = _Metrics(turnout, since)

    async def shell(request: Request) -> Response:
        return HTMLResponse(_shell(request, api_root, refresh_s))

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _STATIC:
            return Response("not found", status_code=404, media_type="text/plain")
        body = files("turnout.admin.ui").joinpath("static", name).read_bytes()
        return Response(body, media_type=_STATIC[name], headers={"Cache-Control": "no-cache"})

    async def view(request: Request) -> Response:
        try:
            role = role_of(request)
        except Denied as exc:
            return JSONResponse({"error": exc.message}, status_code=exc.status)
        page = request.path_params.get("page", "")
        name = request.path_params.get("name")
        try:
            look, drawn = await run_in_threadpool(
                _look_and_draw, turnout, source, role, page, name, request.query_params.get("by")
            )
        except Exception as exc:  # a page that cannot be drawn says so; the app goes on
            turnout.failures.record("dashboard", exc, page=page)
            return JSONResponse({"error": f"this page could not be drawn: {exc}"}, status_code=500)
        if drawn is None:
            return JSONResponse({"error": f"no page {page!r}"}, status_code=404)
        as_of = look.as_of
        return JSONResponse(
            {
                "title": drawn.title,
                "html": drawn.html,
                "role": role,
                "as_of": as_of.timestamp() if as_of is not None else None,
                "now": time.time(),
            },
            headers={"Cache-Control": "no-store"},
        )

    return [
        Route("/static/{name}", static),
        Route("/view/", view),
        Route("/view/{page}", view),
        Route("/view/{page}/{name:path}", view),
        Route("/", shell),
        Route("/{page}", shell),
        Route("/{page}/{name:path}", shell),
    ]


def _look_and_draw(
    turnout: Turnout, source: _Metrics, role: str, page: str, name: str | None, by: str | None
) -> tuple[pages.Look, pages.Page | None]:
    latest, history = source.read()
    look = pages.Look(turnout, role, latest, history)
    return look, _draw(look, page, name, by)


def _draw(look: pages.Look, page: str, name: str | None, by: str | None) -> pages.Page | None:
    drawers: dict[str, Callable[[], pages.Page]] = {
        "": lambda: pages.overview(look),
        "flags": lambda: pages.flag(look, name),
        "engines": lambda: pages.engines(look),
        "experiments": lambda: pages.experiment(look, name, by),
        "rollouts": lambda: pages.rollout(look, name),
    }
    drawer = drawers.get(page)
    return drawer() if drawer is not None else None


def _shell(request: Request, api_root: str | None, refresh_s: float) -> str:
    base = request.scope.get("root_path", "").rstrip("/")
    api = api_root if api_root is not None else base.rsplit("/", 1)[0] if base else ""
    page = request.path_params.get("page", "")
    links = "".join(
        f'<li><a href="{base}/{path}"{" aria-current=page" if path == page else ""}>{label}</a></li>'
        for path, label in _NAV
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>turnout dashboard</title>
<link rel="stylesheet" href="{base}/static/dashboard.css">
</head>
<body data-base="{base}" data-api="{api.rstrip("/")}" data-refresh="{refresh_s:g}">
<a class="skip" href="#main">Skip to the page</a>
<header><span class="brand">turnout</span>
<nav aria-label="Pages"><ul>{links}</ul></nav>
<p class="age" aria-live="polite"><span id="age">loading…</span>
<span id="role" class="badge idle" hidden></span></p></header>
<form id="login" hidden>
<label for="token">Access token</label> <input id="token" type="password" autocomplete="off" required>
<button type="submit">Sign in</button> <span id="login-error" role="alert"></span>
</form>
<main id="main" tabindex="-1"></main>
<script src="{base}/static/dashboard.js"></script>
</body></html>
"""
