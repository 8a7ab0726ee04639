"""`PostHogSink`: turnout's event batches to PostHog, through the official SDK.

Exposures become `$feature_flag_called` with PostHog's property names, identify calls
`$identify` with the traits under `$set`, and custom events go as they are. A write
returns once PostHog has accepted the whole batch and raises otherwise, so turnout's
lane keeps the batch and retries it with backoff.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from turnout.events.model import Event
from turnout.events.sinks import ThreadedSink
from turnout_posthog.connection import Capture, Connection, PostHogConfigError, PostHogSettings, redact

FLAG_CALLED = "$feature_flag_called"
IDENTIFY = "$identify"
_IDS = uuid.UUID("5b0e6a52-9d53-4c55-8a55-7e1a1f0c3a61")
"""Namespace for PostHog uuids derived from event ids that are not UUIDs themselves."""


def options_from_url(url: str) -> dict[str, Any]:
    """Options from a sink URL: `posthog://[HOST[:PORT]][?host=URL&api_key=…&gzip=…]`.

    `posthog://eu.i.posthog.com` means `https://eu.i.posthog.com`; `?host=` takes a whole
    URL (for plain http, e.g. a local proxy). Messages never quote the URL: it may hold the key.
    """
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "posthog":
        raise PostHogConfigError(
            f"a PostHog sink URL starts with posthog://, not {parts.scheme or '(none)'}://"
        )
    if "@" in parts.netloc:
        raise PostHogConfigError("a PostHog sink URL takes its key as ?api_key= (or from POSTHOG_API_KEY)")
    options: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in options:
            raise PostHogConfigError(f"the PostHog sink URL gives {name!r} twice")
        options[name] = value
    if parts.netloc:
        if "host" in options:
            raise PostHogConfigError("the PostHog sink URL names its host twice (in the URL and as ?host=)")
        options["host"] = f"https://{parts.netloc}{parts.path.rstrip('/')}"
    return options


def _uuid_of(event_id: str) -> str:
    try:
        return str(uuid.UUID(event_id))
    except ValueError:  # not a turnout id: a stable uuid, so a retried batch is still stored once
        return str(uuid.uuid5(_IDS, event_id))


def to_capture(event: Event) -> Capture:
    """The SDK call that sends `event`."""
    name = event.name
    if event.kind == "identify":
        name = IDENTIFY
        properties: dict[str, Any] = {"$set": dict(event.properties)}
    else:
        properties = dict(event.properties)
        if event.kind == "exposure":
            name = FLAG_CALLED
            flag = properties.pop("flag", None)
            variant = properties.pop("variant", None)
            properties["$feature_flag"] = flag
            properties["$feature_flag_response"] = variant
            if flag is not None:
                properties[f"$feature/{flag}"] = variant
    if event.session_id is not None:
        properties.setdefault("$session_id", event.session_id)
    return Capture(name, event.distinct_id, properties, event.timestamp, _uuid_of(event.id))


class PostHogSink(ThreadedSink):
    """Sends turnout's events to PostHog (`events.sink = "posthog"` or `"posthog://…"`)."""

    name = "posthog"

    def __init__(
        self,
        url: str | None = None,
        *,
        api_key: str | None = None,
        host: str | None = None,
        env: Mapping[str, str] | None = None,
        **options: Any,
    ) -> None:
        super().__init__()
        given = options_from_url(url) if url else {}
        key = api_key or given.pop("api_key", None)
        where = host or given.pop("host", None)
        self.settings = PostHogSettings.resolve(key, where, env=env, **{**given, **options})
        self._connection = Connection(self.settings)

    def __repr__(self) -> str:
        return f"PostHogSink(host={self.settings.host!r}, api_key={redact(self.settings.api_key)!r})"

    # The SDK blocks while it sends: it runs in the sink's own thread (a slow PostHog must not
    # take the loop's default executor), or in the caller's for `EventTracker.flush()`.
    def write_blocking(self, batch: Sequence[Event]) -> None:
        self._connection.send([to_capture(event) for event in batch])

    def flush_blocking(self) -> None:
        self._connection.flush(self.settings.flush_timeout_s)

    def close_blocking(self) -> None:
        self._connection.close()
