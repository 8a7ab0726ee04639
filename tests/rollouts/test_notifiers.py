"""Notifiers: the log, a webhook posting JSON with retries to a real local server, plugins by name."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from canary_app import START, Canary, FakeClock
from structlog.testing import capture_logs

from turnout import ConfigError, Turnout
from turnout.config import PluginsConfig, RolloutsConfig
from turnout.errors import TurnoutError
from turnout.rollouts import LogNotifier, Notice, WebhookNotifier
from turnout.rollouts.notifiers import build_notifiers

NOTICE = Notice(
    flag="coordinator",
    rule="canary",
    action="rollback",
    reason="workflow success rate 0.62 < 0.95 over 1,204 requests in 3 consecutive 30 s intervals",
    actor="guardrails",
    at=START,
    state="rolled_back",
    step_percent=10.0,
    checks=[{"check": "success rate ≥ 0.95", "value": 0.62, "samples": 1204}],
    details={"failures": 3},
)


class Receiver:
    """A local HTTP server that answers each POST with the next status in `statuses` (then 200)."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.received.append({"body": json.loads(body), "type": self.headers["Content-Type"]})
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/turnout"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver(request: pytest.FixtureRequest) -> Iterator[Receiver]:
    server = Receiver(list(getattr(request, "param", [])))
    yield server
    server.close()


def no_sleep(seconds: float) -> None:
    pass


def test_the_webhook_posts_the_notice_as_json(receiver: Receiver) -> None:
    WebhookNotifier(receiver.url, sleep=no_sleep).notify(NOTICE)
    (got,) = receiver.received
    assert got["type"] == "application/json"
    body = got["body"]
    assert (body["flag"], body["rule"], body["action"], body["state"]) == (
        "coordinator",
        "canary",
        "rollback",
        "rolled_back",
    )
    assert body["reason"] == NOTICE.reason
    assert body["checks"] == NOTICE.checks
    assert body["time"] == "2026-12-01T00:00:00Z"


@pytest.mark.parametrize("receiver", [[503, 500]], indirect=True)
def test_the_webhook_retries_server_errors(receiver: Receiver) -> None:
    pauses: list[float] = []
    WebhookNotifier(receiver.url, retries=3, backoff_s=0.5, sleep=pauses.append).notify(NOTICE)
    assert len(receiver.received) == 3
    assert pauses == [0.5, 1.0]


@pytest.mark.parametrize("receiver", [[503, 503, 503]], indirect=True)
def test_the_webhook_gives_up_after_its_retries(receiver: Receiver) -> None:
    with pytest.raises(TurnoutError, match="notice not delivered"):
        WebhookNotifier(receiver.url, retries=2, sleep=no_sleep).notify(NOTICE)
    assert len(receiver.received) == 3


@pytest.mark.parametrize("receiver", [[400]], indirect=True)
def test_a_refused_notice_is_not_sent_again(receiver: Receiver) -> None:
    with pytest.raises(TurnoutError, match="400"):
        WebhookNotifier(receiver.url, sleep=no_sleep).notify(NOTICE)
    assert len(receiver.received) == 1


def test_the_log_notifier_writes_the_reason() -> None:
    with capture_logs() as logs:
        LogNotifier().notify(NOTICE)
    (log,) = logs
    assert (log["event"], log["log_level"], log["reason"]) == (
        "turnout.rollout.rollback",
        "warning",
        NOTICE.reason,
    )


async def test_a_rollback_reaches_the_configured_webhook(tmp_path: Path, receiver: Receiver) -> None:
    canary = Canary(f"sqlite:///{tmp_path / 'state.db'}", FakeClock(), failure_threshold=1)
    canary.turnout.rollouts._notifiers[:] = build_notifiers(
        RolloutsConfig(notifiers=["webhook"], notifier_options={"webhook": {"url": receiver.url}}),
        PluginsConfig(),
    )
    canary.failing = True
    assert await canary.interval() == "rolled_back"
    (got,) = receiver.received
    assert got["body"]["action"] == "rollback"
    assert got["body"]["reason"].startswith("workflow success rate 0.00 < 0.95 over ")
    await canary.turnout.stop()


async def test_a_failing_notifier_is_counted_and_the_rollback_stands(tmp_path: Path) -> None:
    canary = Canary(f"sqlite:///{tmp_path / 'state.db'}", FakeClock(), failure_threshold=1)
    unreachable = WebhookNotifier("http://127.0.0.1:9/nobody", retries=0, timeout_s=2)
    canary.turnout.rollouts._notifiers[:] = [unreachable]
    canary.failing = True
    assert await canary.interval() == "rolled_back"
    assert canary.turnout.failures.count("notifier.webhook") == 1
    await canary.turnout.stop()


class _EntryPoint:
    def __init__(self, name: str, factory: Any) -> None:
        self.name, self.value, self.dist = name, f"tests:{name}", None
        self.factory = factory

    def load(self) -> Any:
        return self.factory


class Pager:
    def __init__(self, channel: str) -> None:
        self.channel = channel
        self.sent: list[Notice] = []

    def notify(self, notice: Notice) -> None:
        self.sent.append(notice)


@pytest.fixture
def pager_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from turnout import plugins

    installed = [_EntryPoint("pager", Pager)]
    monkeypatch.setattr(
        plugins, "entry_points", lambda *, group: installed if group == "turnout.notifiers" else []
    )
    monkeypatch.delenv("TURNOUT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    plugins.clear_cache()
    yield
    plugins.clear_cache()


@pytest.mark.usefixtures("pager_plugin")
def test_a_notifier_plugin_is_built_by_name_with_its_options() -> None:
    config = RolloutsConfig(notifiers=["log", "pager"], notifier_options={"pager": {"channel": "#ops"}})
    log, pager = build_notifiers(config, PluginsConfig())
    assert isinstance(log, LogNotifier)
    assert isinstance(pager, Pager)
    assert pager.channel == "#ops"


@pytest.mark.usefixtures("pager_plugin")
def test_a_missing_notifier_is_a_config_error_at_load() -> None:
    with pytest.raises(ConfigError) as raised:
        Turnout({"rollouts": {"notifiers": ["sms"]}}, env={})
    (issue,) = raised.value.issues
    assert issue.path == "rollouts.notifiers"
    assert "no plugin 'sms' in entry-point group 'turnout.notifiers'" in issue.message


def test_bad_webhook_options_are_a_config_error_at_load() -> None:
    with pytest.raises(ConfigError, match=r"rollouts\.notifiers.*webhook url must be http"):
        Turnout(
            {"rollouts": {"notifiers": ["webhook"], "notifier_options": {"webhook": {"url": "ftp://x"}}}},
            env={},
        )
