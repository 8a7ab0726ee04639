"""The dashboard in a real headless Chromium (Debian's), driven by Playwright, against a live app.

The browser comes from `tests/browser.py` (installed by `make test`); without it these tests
skip with the reason, unless TURNOUT_REQUIRE_BROWSER=1 (CI), where they fail. The write
controls call the admin API, so their tests need `turnout.admin_app`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_scene import READ_TOKEN, WRITE_TOKEN, Scene, drive, make_turnout, tokens
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

import browser  # tests/browser.py
import turnout.admin
from turnout.admin.ui import ui_app

REPO = Path(__file__).resolve().parents[2]
PAGES = {
    "overview": "",
    "flag": "flags/coordinator",
    "engines": "engines",
    "experiment": "experiments/workflow-canary",
    "rollout": "rollouts/coordinator",
}
WAIT_MS = 15_000


def _unavailable(why: str) -> Any:
    if os.environ.get("TURNOUT_REQUIRE_BROWSER") == "1":
        pytest.fail(f"a browser is required (TURNOUT_REQUIRE_BROWSER=1) but unavailable: {why}")
    pytest.skip(f"browser unavailable: {why}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LiveApp:
    """The scene served over HTTP by uvicorn in a thread: the dashboard at /ui, the admin API at /."""

    def __init__(self, root: Path) -> None:
        import uvicorn

        self.scene = Scene(make_turnout(root), root)
        admin_app = getattr(turnout.admin, "admin_app", None)
        self.has_admin_api = admin_app is not None
        routes: list[BaseRoute] = [Mount("/ui", ui_app(self.scene.turnout, tokens=tokens(), refresh_s=1))]
        if admin_app is not None:
            routes.append(Mount("/", admin_app(self.scene.turnout, tokens=tokens(), env={})))
        app = Starlette(routes=routes, lifespan=self._lifespan)
        self.port = _free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="on")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="dashboard-live-app", daemon=True)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await drive(self.scene.turnout)
        yield
        await self.scene.turnout.stop()
        self.scene.turnout.rollouts.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ui"

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 60
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live app did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)


@pytest.fixture(scope="module")
def chromium() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable('Playwright for Python is not installed: pip install -e ".[dev]"')
    path = browser.find_chromium()
    if path is None:
        _unavailable("no Chromium executable (install Debian's `chromium`: python tests/browser.py)")
    return str(path)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Iterator[LiveApp]:
    app = LiveApp(tmp_path_factory.mktemp("dashboard"))
    app.start()
    yield app
    app.stop()


@pytest.fixture(scope="module")
def chrome(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # As root Chromium refuses its sandbox; the pages are our own.
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


class Tab:
    """A browser page that records console errors and uncaught exceptions."""

    def __init__(self, chrome: Any, live: LiveApp, *, width: int = 1280, height: int = 800) -> None:
        self.live = live
        self.context = chrome.new_context(viewport={"width": width, "height": height})
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def sign_in(self, token: str) -> None:
        self.page.goto(self.live.url + "/")
        self.page.get_by_label("Access token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        self.page.locator("main h1").wait_for()
        # The first, unsigned request was refused with 401 on purpose: only later errors count.
        self.errors.clear()

    def open(self, path: str) -> None:
        self.page.goto(f"{self.live.url}/{path}")
        self.page.locator("main h1").wait_for()
        self.page.wait_for_function("document.getElementById('age').textContent.includes('data is')")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def reader(chrome: Any, live: LiveApp) -> Iterator[Tab]:
    tab = Tab(chrome, live)
    tab.sign_in(READ_TOKEN)
    yield tab
    tab.close()


@pytest.fixture
def writer(chrome: Any, live: LiveApp) -> Iterator[Tab]:
    if not live.has_admin_api:
        pytest.skip("the write controls call the admin API, and turnout.admin.admin_app is not in this build")
    tab = Tab(chrome, live)
    tab.sign_in(WRITE_TOKEN)
    yield tab
    tab.close()


def _shots_dir(tmp_path: Path) -> Path:
    chosen = os.environ.get("TURNOUT_SCREENSHOTS")
    folder = REPO / chosen if chosen else tmp_path
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.parametrize("name", list(PAGES))
def test_each_page_loads_without_console_errors_and_says_how_old_its_data_is(reader: Tab, name: str) -> None:
    reader.open(PAGES[name])
    age = reader.page.locator("#age").inner_text()
    assert age.startswith("data is ") and age.endswith(" s old")
    assert reader.page.locator("#role").inner_text() == "role: read"
    assert reader.errors == []


def test_charts_render_with_content(reader: Tab) -> None:
    reader.open("engines")
    charts = reader.page.locator("svg.chart")
    assert charts.count() >= 6
    box = charts.first.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 40
    assert reader.page.locator("svg.chart polyline").count() >= charts.count()
    points = reader.page.locator("svg.chart polyline").first.get_attribute("points") or ""
    assert len(points.split()) >= 2
    reader.open(PAGES["experiment"])
    assert reader.page.locator(".report svg circle").count() > 0


def test_flag_page_draws_decision_reasons_and_engines_page_lists_the_registry(reader: Tab) -> None:
    reader.open(PAGES["flag"])
    chart = reader.page.get_by_role("img", name="coordinator: decisions per interval, by reason")
    box = chart.bounding_box()
    assert box is not None and box["width"] > 100 and box["height"] > 40
    points = chart.locator("polyline").first.get_attribute("points") or ""
    assert len(points.split()) >= 2
    assert (
        "SPLIT"
        in reader.page.get_by_role(
            "table", name="Decisions by reason, since each process started"
        ).inner_text()
    )
    reader.open("engines")
    registry = reader.page.get_by_role("table", name="Registered engine versions, oldest first")
    assert "validated" in registry.inner_text() and "2.1.0" in registry.inner_text()
    assert reader.errors == []


def test_a_read_token_sees_no_write_controls(reader: Tab) -> None:
    for path in PAGES.values():
        reader.open(path)
        assert reader.page.locator("form.act").count() == 0
        assert reader.page.get_by_role("button", name="Save split").count() == 0
        assert reader.page.get_by_role("button", name="Abort").count() == 0


def test_pages_refresh_without_a_reload(reader: Tab) -> None:
    reader.open("engines")
    reader.page.evaluate("window.__kept = true")
    first = reader.page.locator("#age").inner_text()
    reader.page.wait_for_function(f"document.getElementById('age').textContent !== {first!r}")
    assert reader.page.evaluate("window.__kept") is True  # the same page, not a reload


def test_keyboard_reaches_the_navigation_and_badges_have_words(reader: Tab) -> None:
    reader.open("")
    reader.page.keyboard.press("Tab")
    assert reader.page.evaluate("document.activeElement.textContent") == "Skip to the page"
    reader.page.keyboard.press("Tab")
    assert reader.page.evaluate("document.activeElement.textContent") == "Overview"
    badges = reader.page.locator(".badge").all_inner_texts()
    assert badges and all(text.strip() for text in badges)


def test_a_phone_width_viewport_needs_no_sideways_scrolling(chrome: Any, live: LiveApp) -> None:
    tab = Tab(chrome, live, width=390, height=844)
    try:
        tab.sign_in(READ_TOKEN)
        for path in PAGES.values():
            tab.open(path)
            overflow = tab.page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, path
        assert tab.errors == []
    finally:
        tab.close()


def test_screenshot_of_each_page(reader: Tab, chrome: Any, live: LiveApp, tmp_path: Path) -> None:
    folder = _shots_dir(tmp_path)
    for name, path in PAGES.items():
        reader.open(path)
        shot = folder / f"dashboard-{name}.png"
        reader.page.screenshot(path=str(shot), full_page=False)
        assert shot.stat().st_size > 10_000
    phone = Tab(chrome, live, width=390, height=844)
    try:
        phone.sign_in(READ_TOKEN)
        phone.open("")
        shot = folder / "dashboard-phone.png"
        phone.page.screenshot(path=str(shot), full_page=False)
        assert shot.stat().st_size > 5_000
    finally:
        phone.close()


def test_kill_switch_turns_the_flag_off_for_the_live_app(writer: Tab, live: LiveApp) -> None:
    assert live.scene.served("summaries").keys() == {"legacy", "workflow"}
    writer.open("flags/summaries")
    writer.page.get_by_label("Reason").first.fill("workflow answers are wrong")
    writer.page.get_by_role("button", name="Turn the flag off (everyone gets the default)").click()
    writer.page.get_by_text("off (kill switch)").first.wait_for()
    assert live.scene.served("summaries") == {"legacy": 200}
    writer.page.get_by_label("Reason").first.fill("fixed")
    writer.page.get_by_role("button", name="Turn the flag back on").click()
    writer.page.get_by_role("button", name="Turn the flag off (everyone gets the default)").wait_for()
    assert live.scene.served("summaries").keys() == {"legacy", "workflow"}
    assert writer.errors == []


def test_split_editor_changes_who_gets_what(writer: Tab, live: LiveApp) -> None:
    writer.open("flags/summaries")
    writer.page.get_by_label("legacy (%)").fill("0")
    writer.page.get_by_label("workflow (%)").fill("100")
    writer.page.locator("form.split").get_by_label("Reason").fill("everyone on workflow")
    writer.page.get_by_role("button", name="Save split").click()
    writer.page.get_by_text("split legacy 0%, workflow 100%").wait_for()
    assert live.scene.served("summaries") == {"workflow": 200}
    assert writer.errors == []


def test_an_invalid_split_shows_the_validators_error_next_to_the_field(writer: Tab, live: LiveApp) -> None:
    before = live.scene.served("summaries")
    writer.open("flags/summaries")
    writer.page.get_by_label("legacy (%)").fill("70")
    writer.page.get_by_label("workflow (%)").fill("70")
    writer.page.locator("form.split").get_by_label("Reason").fill("a typo")
    writer.page.get_by_role("button", name="Save split").click()
    error = writer.page.locator("form.split .field-error:not(:empty)").first
    error.wait_for()
    assert "flags.summaries.rules[0].split" in error.inner_text()
    assert live.scene.served("summaries") == before


def test_rollout_buttons_pause_and_resume_with_the_reason_in_the_audit_log(
    writer: Tab, live: LiveApp
) -> None:
    writer.open("rollouts/coordinator")
    writer.page.get_by_label("Reason for the action").fill("holding for the weekend")
    writer.page.get_by_role("button", name="Pause").click()
    writer.page.locator("h2 .badge", has_text="paused").wait_for()
    assert live.scene.turnout.rollouts.status("coordinator").state == "paused"
    assert writer.page.get_by_text("holding for the weekend").count() == 1
    writer.page.get_by_label("Reason for the action").fill("back to it")
    writer.page.get_by_role("button", name="Resume").click()
    writer.page.locator("h2 .badge", has_text="running").wait_for()
    assert live.scene.turnout.rollouts.status("coordinator").state == "running"
    assert writer.errors == []
