"""A config that disappears or arrives half-written under a running app never fails a request."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from structlog.testing import capture_logs

from turnout import ConfigError, Reason, RoutingContext, Turnout, experiment
from turnout.asgi import TurnoutMiddleware
from turnout.errors import EngineNotFoundError
from turnout.failures import Failures
from turnout.watch import FileWatcher

FLAG = "coordinator"
TOML = f'[flags.{FLAG}]\nvariants = ["legacy", "workflow"]\ndefault = "workflow"\n'


def with_engines(t: Turnout) -> Turnout:
    t.add_engine("legacy", lambda message: f"legacy:{message}")
    t.add_engine("workflow", lambda message: f"workflow:{message}")
    return t


def app_for(t: Turnout) -> Starlette:
    @experiment(FLAG)
    async def chat(request: Request, engine: Any) -> PlainTextResponse:
        return PlainTextResponse(f"{await engine('hi')}|{engine.decision.reason}")

    app = Starlette(routes=[Route("/chat", chat)])
    app.add_middleware(TurnoutMiddleware, turnout=t)
    return app


def test_an_empty_file_is_never_applied(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(TOML)
    t = Turnout.from_file(path, env={})
    for empty in ("", "   \n\n"):
        path.write_text(empty)
        with pytest.raises(ConfigError, match="the file is empty"):
            t.reload()
    assert t.decide(FLAG, RoutingContext("u1")).variant == "workflow"


async def test_a_reload_that_drops_a_flag_in_use_serves_its_last_default(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(TOML)
    t = with_engines(Turnout.from_file(path, env={}))
    transport = httpx.ASGITransport(app=app_for(t))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        assert (await client.get("/chat")).text == "workflow:hi|DEFAULT"
        path.write_text('[flags.other]\nvariants = ["a"]\ndefault = "a"\nkind = "value"\n')
        with capture_logs() as logs:
            t.reload()
            responses = [await client.get("/chat") for _ in range(5)]
    assert {r.status_code for r in responses} == {200}
    assert {r.text for r in responses} == {"workflow:hi|ERROR"}
    dropped = [e for e in logs if e["event"] == "turnout.reload_dropped_flags"]
    assert dropped and dropped[0]["flags"] == [FLAG]
    assert t.failures.snapshot()["decide"] == {"UnknownFlagError": 5}
    assert sum(e["event"] == "turnout.failure" for e in logs) == 1  # logged once, counted always


def test_the_default_engine_setting_serves_a_flag_never_declared() -> None:
    t = with_engines(Turnout({"routing": {"default_engine": "legacy"}}, env={}))
    decision = t.decide("never-declared", RoutingContext("u1"))
    assert (decision.reason, decision.engine) == (Reason.ERROR, "legacy")
    assert t.bind("never-declared", RoutingContext("u1"), sync=True)("x") == "legacy:x"


def test_without_any_default_the_error_names_the_flag_and_the_setting() -> None:
    t = with_engines(Turnout({}, env={}))
    bound = t.bind("never-declared", RoutingContext("u1"), sync=True)
    with pytest.raises(EngineNotFoundError, match=r"never-declared.*routing\.default_engine"):
        bound("x")


def test_a_flag_dropped_twice_keeps_its_last_default() -> None:
    t = with_engines(Turnout({"flags": {FLAG: {"variants": ["legacy"], "default": "legacy"}}}, env={}))
    t.reload({})
    t.reload({"routing": {"default_engine": "workflow"}})
    assert t.decide(FLAG, RoutingContext("u1")).engine == "legacy"  # what it last had, not the setting


def test_the_watcher_waits_until_the_file_holds_still(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(TOML)
    reloads: list[str] = []
    watcher = FileWatcher(path, lambda: reloads.append(path.read_text()), interval_s=1.0, failures=Failures())

    half = TOML[: len(TOML) // 2]
    path.write_text(half)  # a poll lands mid-write
    assert not watcher.poll()
    path.write_text(TOML.replace('workflow"\n', 'legacy"\n'))  # still being written
    assert not watcher.poll()
    assert watcher.poll()  # unchanged for one poll: applied
    assert not watcher.poll()  # and only once
    assert reloads == [TOML.replace('workflow"\n', 'legacy"\n')]


def test_the_watcher_never_applies_a_truncated_file_that_settles_empty(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(TOML)
    t = Turnout.from_file(path, env={})
    watcher = FileWatcher(path, t.reload, interval_s=1.0, failures=t.failures)
    path.write_text("")
    with capture_logs() as logs:
        assert not watcher.poll()
        assert watcher.poll()  # settled: tried, refused, logged
    assert [e["event"] for e in logs] == ["turnout.reload_failed"]
    assert t.decide(FLAG, RoutingContext("u1")).variant == "workflow"
