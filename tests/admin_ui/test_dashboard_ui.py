"""The dashboard's pages over HTTP: who sees what, and that every page is drawn from the app's figures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from dashboard_scene import INTERVALS, READ_TOKEN, USERS, WRITE_TOKEN, Scene, build_scene, tokens

from turnout import RoutingContext, Turnout
from turnout.admin.ui import token_roles, ui_app

PAGES = ["", "flags/coordinator", "engines", "experiments/workflow-canary", "rollouts/coordinator"]


@pytest.fixture
async def scene(tmp_path: Path) -> AsyncIterator[Scene]:
    built = await build_scene(tmp_path)
    yield built
    await built.turnout.stop()
    built.turnout.rollouts.close()


def client(scene: Scene) -> httpx.AsyncClient:
    app = ui_app(scene.turnout, tokens=tokens())
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize("page", PAGES)
async def test_each_page_is_drawn_for_a_reader(scene: Scene, page: str) -> None:
    async with client(scene) as http:
        answer = await http.get(f"/view/{page}", headers=bearer(READ_TOKEN))
    assert answer.status_code == 200
    data = answer.json()
    assert data["role"] == "read" and data["as_of"] is not None
    assert "<h1>" in data["html"] and 'class="act' not in data["html"]


async def test_a_writer_gets_the_kill_switch_and_the_split_editor(scene: Scene) -> None:
    async with client(scene) as http:
        html = (await http.get("/view/flags/coordinator", headers=bearer(WRITE_TOKEN))).json()["html"]
        rollout = (await http.get("/view/rollouts/coordinator", headers=bearer(WRITE_TOKEN))).json()["html"]
    assert 'data-url="flags/coordinator/enabled"' in html
    assert 'data-url="flags/coordinator/rules/canary/split"' in html
    assert 'data-path="flags.coordinator.rules[1].split"' in html
    for action in ("promote", "pause", "resume", "abort"):
        assert f'data-url="rollouts/coordinator/{action}"' in rollout


async def test_overview_shows_state_split_rollout_health_and_rate(scene: Scene) -> None:
    async with client(scene) as http:
        html = (await http.get("/view/", headers=bearer(READ_TOKEN))).json()["html"]
    assert "canary: legacy 80% / workflow 20%" in html
    assert "running" in html and "at 20%" in html and "step 1 of 3" in html
    requests_per_s = 2 * 300 / 10  # both flags' requests in the newest interval, over 10 s
    assert f"{requests_per_s / 2:,.1f}" in html


async def test_engines_page_draws_a_line_per_percentile_over_the_windows(scene: Scene) -> None:
    async with client(scene) as http:
        html = (await http.get("/view/engines", headers=bearer(READ_TOKEN))).json()["html"]
    assert html.count("<polyline") >= 4
    assert "engine.workflow: latency over time (ms)" in html and "p99: " in html
    assert '<td data-label="Version">2.1.0</td>' in html
    assert '<td data-label="Breaker"><span class="badge ok">closed</span></td>' in html


async def test_flag_page_counts_decisions_by_reason_and_draws_them_over_time(scene: Scene) -> None:
    async with client(scene) as http:
        html = (await http.get("/view/flags/coordinator", headers=bearer(READ_TOKEN))).json()["html"]
    assert "<h2>Decision reasons</h2>" in html
    # Every request of every interval is one decision of the flag: SPLIT for the canary's users
    # (nobody is on the staff plan), counted once per `run`.
    decisions = USERS * INTERVALS
    assert f'<td data-label="Decisions">{decisions:,}</td>' in html
    assert '<th scope="row">SPLIT</th>' in html and "placed by a percentage split" in html
    chart = html[html.index("coordinator: decisions per interval, by reason") :]
    assert "<polyline" in chart and f"SPLIT: {USERS:,}" in chart


async def test_engines_page_lists_the_registered_versions(scene: Scene) -> None:
    async with client(scene) as http:
        html = (await http.get("/view/engines", headers=bearer(READ_TOKEN))).json()["html"]
    registry = html[html.index("<h2>Engine registry</h2>") :]
    assert '<th scope="row">workflow</th>' in registry
    assert '<td data-label="Stage"><span class="badge idle">validated</span></td>' in registry
    assert '<td data-label="Tags">latest</td>' in registry
    assert "linear workflow, prompt v7" in registry


async def test_an_unreadable_registry_is_said_and_the_rest_of_the_engines_page_is_drawn(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unreachable() -> None:
        raise OSError("database is locked")

    monkeypatch.setattr(scene.turnout.registry, "engines", unreachable)
    async with client(scene) as http:
        html = (await http.get("/view/engines", headers=bearer(READ_TOKEN))).json()["html"]
    assert "The engine registry cannot be read: database is locked" in html
    assert "engine.workflow: latency over time (ms)" in html


async def test_rollout_page_lists_steps_checks_and_history(scene: Scene) -> None:
    async with client(scene) as http:
        html = (await http.get("/view/rollouts/coordinator", headers=bearer(READ_TOKEN))).json()["html"]
    assert 'aria-current="step"' in html and "current" in html
    assert "Audit log" in html and "looking at the numbers" in html and "numbers look fine" in html


async def test_experiment_page_is_the_analysis_report(scene: Scene) -> None:
    async with client(scene) as http:
        html = (await http.get("/view/experiments/workflow-canary", headers=bearer(READ_TOKEN))).json()[
            "html"
        ]
    assert "Experiment workflow-canary" in html and "Relative effect per metric" in html
    assert "<svg" in html


async def test_without_a_token_the_shell_loads_but_no_figure_does(scene: Scene) -> None:
    async with client(scene) as http:
        shell = await http.get("/engines")
        figures = await http.get("/view/engines")
        wrong = await http.get("/view/engines", headers=bearer("not-a-token"))
        script = await http.get("/static/dashboard.js")
        missing = await http.get("/static/other.js")
    assert shell.status_code == 200 and "aria-current=page" in shell.text and "workflow" not in shell.text
    assert figures.status_code == 401 and "bearer token" in figures.json()["error"]
    assert wrong.status_code == 401 and wrong.json() == {"error": "unknown token"}
    assert script.status_code == 200 and script.headers["content-type"].startswith("text/javascript")
    assert missing.status_code == 404


async def test_unknown_pages_and_names_say_so(scene: Scene) -> None:
    async with client(scene) as http:
        page = await http.get("/view/nothing-here", headers=bearer(READ_TOKEN))
        flag = await http.get("/view/flags/nope", headers=bearer(READ_TOKEN))
    assert page.status_code == 404
    assert "No flag named nope" in flag.json()["html"]


def test_token_roles_refuse_an_unknown_role_and_no_tokens() -> None:
    with pytest.raises(ValueError, match="role 'owner' is not one of read, write, admin"):
        token_roles({"ab" * 32: "owner"})
    with pytest.raises(ValueError, match="insecure_local_only"):
        token_roles({})


async def test_without_tokens_only_loopback_clients_are_served(scene: Scene) -> None:
    app = ui_app(scene.turnout, insecure_local_only=True)
    local = httpx.ASGITransport(app, client=("127.0.0.1", 5000))
    remote = httpx.ASGITransport(app, client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=local, base_url="http://testserver") as http:
        assert (await http.get("/view/engines")).json()["role"] == "admin"
    async with httpx.AsyncClient(transport=remote, base_url="http://testserver") as http:
        assert (await http.get("/view/engines")).status_code == 403


async def test_experiment_page_breaks_the_report_down_by_intent(scene: Scene) -> None:
    async with client(scene) as http:
        answer = await http.get("/view/experiments/workflow-canary?by=intent", headers=bearer(READ_TOKEN))
    html = answer.json()["html"]
    assert 'href="?by=intent" aria-current=true' in html
    # The analysis module's own words: this scene has no per-user metric to split by segment.
    assert "<h2>By intent</h2>" in html or "no segment of &#x27;intent&#x27;" in html


async def test_without_tokens_of_its_own_it_asks_the_admin_api(scene: Scene) -> None:
    app = ui_app(scene.turnout)  # what the admin app mounts at /ui
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://testserver") as http:
        shell = await http.get("/")
        figures = await http.get("/view/engines", headers=bearer(READ_TOKEN))
    assert shell.status_code == 200
    # This scene configures no `[admin] tokens`: figures are refused with the reason, never served.
    assert figures.status_code == 403 and "cannot check tokens" in figures.json()["error"]


async def test_a_page_that_cannot_be_drawn_says_so_and_is_counted(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("the state store is gone")

    monkeypatch.setattr(scene.turnout.rollouts, "status", broken)
    async with client(scene) as http:
        answer = await http.get("/view/rollouts/coordinator", headers=bearer(READ_TOKEN))
        overview = await http.get("/view/", headers=bearer(READ_TOKEN))
    assert answer.status_code == 500 and "the state store is gone" in answer.json()["error"]
    assert scene.turnout.failures.snapshot()["dashboard"] == {"OSError": 2}
    assert overview.status_code == 500


async def test_engines_page_shows_each_shadow_run_per_intent() -> None:
    turnout = Turnout(
        {
            "flags": {
                "coordinator": {
                    "variants": ["legacy", "graph"],
                    "default": "legacy",
                    "shadow": {"engine": "graph", "sample": 1.0, "comparator": "exact"},
                }
            },
            "events": {"enabled": False},
        },
        env={},
    )
    turnout.add_engine("legacy", lambda message: message)
    turnout.add_engine("graph", lambda message: message if message != "b" else "other")
    for index, message in enumerate("abcd"):
        await turnout.run("coordinator", message, context=RoutingContext(f"u{index}"))
    assert await turnout.shadows.drain(30)
    app = ui_app(turnout, tokens=tokens())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://ui") as http:
        html = (await http.get("/view/engines", headers=bearer(READ_TOKEN))).json()["html"]
    assert "Shadow runs of coordinator" in html
    assert "graph in the shadow of legacy, per intent" in html
    assert "75% (" in html  # 3 of 4 compared answers matched, with its interval
