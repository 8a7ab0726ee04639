"""Notifiers: who hears of a guardrail action or a manual change. Built in: log, webhook.

More come from `turnout.notifiers` entry points (a factory called with the notifier's options
returning an object with `notify(notice)`). A notifier that fails is logged and counted; the
rollout goes on.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import structlog

from turnout.config import PluginsConfig, RolloutsConfig
from turnout.errors import TurnoutError, redact
from turnout.plugins import build_plugin

_log = structlog.get_logger("turnout.rollouts")

GROUP = "turnout.notifiers"
BUILTIN = ("log", "webhook")


@dataclass(frozen=True, slots=True)
class Notice:
    """What happened to a rollout, why in words, and the numbers behind it."""

    flag: str
    rule: str
    action: str
    reason: str
    actor: str
    at: float
    state: str
    step_percent: float
    checks: list[dict[str, Any]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON payload a webhook receives (`at` as ISO 8601 UTC too)."""
        payload = asdict(self)
        payload["time"] = datetime.fromtimestamp(self.at, UTC).isoformat().replace("+00:00", "Z")
        return payload


class Notifier(Protocol):
    """Receives notices; may block (it runs off the event loop)."""

    def notify(self, notice: Notice) -> None:
        """Deliver one notice; raise if it could not be delivered."""


class LogNotifier:
    """Writes each notice to the `turnout.rollouts` log (a warning for actions that stop a rollout)."""

    name = "log"

    def notify(self, notice: Notice) -> None:
        level = _log.warning if notice.action in ("rollback", "pause", "alert", "abort") else _log.info
        level(
            f"turnout.rollout.{notice.action}",
            flag=notice.flag,
            rule=notice.rule,
            state=notice.state,
            step_percent=notice.step_percent,
            actor=notice.actor,
            reason=notice.reason,
        )


class WebhookNotifier:
    """POSTs each notice as JSON; retries `retries` times on connection errors and 5xx/429 answers."""

    name = "webhook"

    def __init__(
        self,
        url: str,
        *,
        retries: int = 3,
        timeout_s: float = 5.0,
        backoff_s: float = 0.5,
        headers: Mapping[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook url must be http:// or https://, got {url!r}")
        if retries < 0:
            raise ValueError(f"retries must be 0 or more, got {retries}")
        self.url = url
        self.retries = retries
        self.timeout_s = timeout_s
        self.backoff_s = backoff_s
        self.headers = {"Content-Type": "application/json", **dict(headers or {})}
        self._sleep = sleep

    def notify(self, notice: Notice) -> None:
        body = json.dumps(notice.to_dict()).encode()
        error: Exception | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self._sleep(self.backoff_s * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=body, headers=self.headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    response.read()
                return
            except urllib.error.HTTPError as exc:
                exc.close()  # it holds the response's connection
                error = exc
                if exc.code < 500 and exc.code != 429:
                    break  # the receiver refuses this notice: sending it again cannot help
            except (urllib.error.URLError, OSError) as exc:
                error = exc
        raise TurnoutError(redact(f"webhook {self.url}: notice not delivered ({error})"))


def build_notifiers(config: RolloutsConfig, plugins: PluginsConfig) -> list[Notifier]:
    """The notifiers `[rollouts] notifiers` names, built with their options."""
    built: list[Notifier] = []
    for name in config.notifiers:
        options = config.notifier_options.get(name, {})
        if name == "log":
            built.append(LogNotifier())
        elif name == "webhook":
            try:
                built.append(WebhookNotifier(**options))
            except (TypeError, ValueError) as exc:
                raise TurnoutError(redact(f"rollouts.notifier_options.webhook: {exc}")) from None
        else:
            built.append(build_plugin(GROUP, name, options, block=plugins.block, autoload=plugins.autoload))
    return built
