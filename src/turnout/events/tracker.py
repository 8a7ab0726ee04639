"""`EventTracker`: `track()` / `identify()` / `exposure()` enqueue; a background task delivers.

The request path only validates cheaply and appends a tuple to a bounded, thread-safe
deque: no I/O, no await, no exception (bad input is dropped and counted through
`Failures`). The flusher task, started by `await start()` inside the running loop, wakes
every `flush_interval_s` or as soon as `batch_size` events are queued, turns the queued
tuples into `Event`s (ids, timestamps, JSON checks) and hands them to one lane per sink
(`lanes.Lane`), which writes batches and retries failures with exponential backoff.

Guarantees:

* Memory is bounded: at most `queue_size` events in the queue plus, per sink, `queue_size`
  in its backlog and one batch in flight. Past that, events are dropped by the `overflow`
  policy (`drop_newest` or `drop_oldest`), counted in `dropped` and in `Failures`.
* A sink that is down loses nothing that fits in its backlog: the events wait and are
  delivered when it returns; meanwhile requests and the other sinks are unaffected.
* `await stop()` delivers everything accepted before it, within `shutdown_timeout_s`;
  only what is still undelivered at the deadline is lost, and it is counted in `lost`.
* After a hard kill (SIGKILL, OOM, power loss) the loss is bounded by what was not yet
  written: the queue's contents plus, per sink, its backlog and the one batch in flight.
  With a healthy sink that is about the last `flush_interval_s` of events plus one batch.
* Fork-safe: nothing runs at import or construction; a forked child (gunicorn prefork)
  starts empty (its parent delivers what it had queued) and starts its own tasks.
"""

from __future__ import annotations

import math
import os
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import structlog

from turnout.config import EventsConfig, PluginsConfig
from turnout.context import RoutingContext, _current
from turnout.decision import Decision
from turnout.errors import TurnoutError
from turnout.events.delivery import Delivery
from turnout.events.lanes import QueueOverflow, make_lanes
from turnout.events.model import (
    EXPOSURE,
    IDENTIFY,
    RECORD,
    EventKind,
    InvalidEvent,
    Raw,
    check_name,
    check_record_name,
    exposure_properties,
    sanitize,
    to_epoch,
    who_of,
)
from turnout.events.sinks import EventSink, sink_from_url
from turnout.failures import Failures
from turnout.privacy import Privacy
from turnout.types import Clock

_MAX_NAMES = 10_000
_log = structlog.get_logger("turnout")
DROPPED_ID = "redacted"
"""The distinct_id of every event when `privacy.targeting_key = "drop"`."""
_live: weakref.WeakSet[EventTracker] = weakref.WeakSet()
_LATE_EXPOSURE = "exposure:late"
"""Marks a queued exposure whose properties are still to be built (`_pop` builds them)."""
_Exposure = tuple[str, Decision, str, str | None, RoutingContext | None, float]
_Queued = Raw | _Exposure


class SinkConfigError(TurnoutError):
    """A sink named in config cannot be built; `path` says which setting names it."""

    def __init__(self, path: str, url: str, cause: Exception) -> None:
        self.path = path
        self.url = url
        super().__init__(str(cause))


class EventsClosed(RuntimeError):
    """An event arrived after the tracker stopped."""


class EventTracker:
    """Queues events from any thread and delivers them in batches to its sinks."""

    def __init__(
        self,
        sinks: Sequence[EventSink] = (),
        config: EventsConfig | None = None,
        *,
        failures: Failures | None = None,
        clock: Clock = time.time,
        exposure_cache_size: int = 100_000,
        retry_base_s: float = 0.5,
        retry_max_s: float = 30.0,
        write_timeout_s: float | None = None,
    ) -> None:
        self.config = config = config or EventsConfig()
        self.failures = failures or Failures()
        self.enabled = config.enabled and bool(sinks)
        self._clock = clock
        self._base, _, bad = sanitize(config.base_properties)
        if bad:
            raise TurnoutError(f"events.base_properties: {'; '.join(bad)}")
        self._capacity = config.queue_size
        self._batch_size = config.batch_size
        self._drop_oldest = config.overflow == "drop_oldest"
        self._exposure_cap = exposure_cache_size
        self._names: set[str] = set()
        self.privacy = Privacy()
        """How distinct and session ids are stored (the configuration's, set by `Turnout`)."""
        self.lanes = make_lanes(
            sinks,
            config,
            self.failures,
            retry_base_s=retry_base_s,
            retry_max_s=retry_max_s,
            write_timeout_s=config.sink_timeout_s if write_timeout_s is None else write_timeout_s,
        )
        self._delivery = Delivery(
            self.lanes,
            self._pop,
            lambda: len(self._queue),
            self._reject,
            batch_size=config.batch_size,
            interval_s=config.flush_interval_s,
            failures=self.failures,
        )
        self._reset()
        _live.add(self)

    @classmethod
    def from_config(
        cls, config: EventsConfig, *, plugins: PluginsConfig | None = None, **kwargs: Any
    ) -> EventTracker:
        """A tracker writing to the sinks `config.sink` and `config.sinks` name (in that order)."""
        if not config.enabled:
            return cls([], config, **kwargs)
        found = plugins or PluginsConfig()
        named = [
            ("events.sink", config.sink),
            *((f"events.sinks[{i}]", url) for i, url in enumerate(config.sinks)),
        ]
        sinks: list[EventSink] = []
        seen: set[str] = set()
        for path, raw in named:
            url = raw.strip()
            if not url or url in seen:
                continue
            seen.add(url)
            try:
                sinks.append(sink_from_url(url, block=found.block, autoload=found.autoload))
            except TurnoutError as exc:
                raise SinkConfigError(path, url, exc) from exc
        return cls(sinks, config, **kwargs)

    def _reset(self) -> None:
        # Everything a forked child must not share with its parent.
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._queue: deque[_Queued] = deque()
        self._exposures: OrderedDict[tuple[str, str, str], None] = OrderedDict()
        self.tracked = self.invalid = self.deduplicated = self._dropped = 0
        self._closed = False
        self._unattended = True  # nothing delivers until start() (or a flush() call)
        self._delivery.reset()
        for lane in self.lanes:
            lane.clear()

    # -- the request path ----------------------------------------------------------------

    def track(
        self,
        event: str,
        distinct_id: str | None = None,
        properties: Mapping[str, Any] | None = None,
        timestamp: datetime | float | None = None,
    ) -> bool:
        """Queue a custom event; False if it was refused or dropped (counted). Never raises."""
        if not self.enabled:
            return False
        try:
            if event not in self._names:
                self._learn(event)
            base = self._base
            if properties is None:
                props: Mapping[str, Any] = base.copy()  # each event owns its properties
            else:
                props = {**base, **properties} if base else dict(properties)
            return self._put("track", event, distinct_id, props, timestamp)
        except Exception as exc:
            return self._reject(exc, event)

    def identify(self, distinct_id: str, traits: Mapping[str, Any] | None = None) -> bool:
        """Queue an `$identify` event setting `traits` on `distinct_id`. Never raises."""
        if not self.enabled:
            return False
        try:
            if distinct_id is None:
                raise InvalidEvent("identify() needs a distinct_id")
            return self._put("identify", IDENTIFY, distinct_id, dict(traits or {}), None)
        except Exception as exc:
            return self._reject(exc, IDENTIFY)

    def exposure(
        self, decision: Decision, distinct_id: str | None = None, *, context: RoutingContext | None = None
    ) -> bool:
        """Queue an `$exposure` for a decision of an experiment, once per (user, flag, variant).

        The user is `distinct_id`, else `context`'s, else the current request's. Only the
        deduplication happens here; the properties are built when the batch is formed.
        """
        if not self.enabled or decision.experiment is None:
            return False
        try:
            if context is None:
                context = _current.get()
            who, session_id = who_of(distinct_id, context)
            key = (who, decision.flag, decision.variant)
            exposures = self._exposures
            with self._lock:
                if key in exposures:
                    exposures.move_to_end(key)
                    self.deduplicated += 1
                    return False
                exposures[key] = None
                if len(exposures) > self._exposure_cap:
                    exposures.popitem(last=False)
            # Properties, privacy and the id are made by `_pop`, off the request's path.
            if self._enqueue((_LATE_EXPOSURE, decision, who, session_id, context, self._clock()), EXPOSURE):
                return True
            with self._lock:
                exposures.pop(key, None)
            return False
        except Exception as exc:
            return self._reject(exc, EXPOSURE)

    def record(self, name: str, value: float, *, flag: str | None = None) -> bool:
        """Queue a `$record` of a per-request value (cost, tokens, quality) for the variant serving it.

        The request's experiment decisions (only `flag`'s when given) name the variant; the
        event goes to the request's user. False, counted, if the value is not a finite number
        or no experiment decided this request. Never raises.
        """
        if not self.enabled:
            return False
        try:
            check_record_name(name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise InvalidEvent(f"record({name!r}) needs a finite number, not {value!r}")
            context = _current.get()
            decisions = [] if context is None else list(context.decisions.values())
            chosen = [d for d in decisions if d.experiment is not None and flag in (None, d.flag)]
            if context is None or not chosen:
                raise InvalidEvent(f"record({name!r}) outside a request that an experiment decided")
            for decision in chosen:
                props = {
                    **self._base,
                    name: value,
                    "flag": decision.flag,
                    "experiment": decision.experiment,
                    "variant": decision.variant,
                }
                self._put("track", RECORD, None, props, None)
            return True
        except Exception as exc:
            return self._reject(exc, RECORD)

    def _learn(self, name: str) -> None:
        if check_name(name) and len(self._names) < _MAX_NAMES:
            self._names.add(name)

    def _put(
        self, kind: EventKind, name: str, who: Any, props: Mapping[str, Any], stamp: object, sid: Any = None
    ) -> bool:
        if self._closed:
            return self._refuse(name)
        distinct_id, session_id = who_of(who)
        epoch = self._clock() if stamp is None else to_epoch(stamp)
        return self._enqueue(self._raw(kind, name, distinct_id, session_id, props, epoch, sid), name)

    def _raw(
        self,
        kind: EventKind,
        name: str,
        distinct_id: str,
        session_id: Any,
        props: Mapping[str, Any],
        epoch: float,
        sid: Any = None,
    ) -> Raw:
        explicit = props.get("session_id", sid)
        if explicit is not None and type(explicit) is str:
            session_id = explicit
        privacy = self.privacy
        if not privacy.keep_keys:
            distinct_id = privacy.key(distinct_id) or DROPPED_ID
            session_id = privacy.key(session_id)
            if "session_id" in props:
                props = {**props, "session_id": session_id}
        return (kind, name, distinct_id, session_id, props, epoch)

    def _refuse(self, name: str) -> bool:
        self._delivery.lost += 1
        self.failures.record("events", EventsClosed("tracked after stop(); not delivered"), event_name=name)
        return False

    def _enqueue(self, item: _Queued, name: str) -> bool:
        if self._closed:
            return self._refuse(name)
        if self._unattended:
            self._warn_unattended(name)
        queue = self._queue
        with self._lock:
            self.tracked += 1
            size = len(queue)
            if size < self._capacity:
                queue.append(item)
            else:
                self._dropped += 1
                if self._drop_oldest:
                    queue.popleft()
                    queue.append(item)
        if size < self._capacity:
            if size + 1 == self._batch_size:
                self._delivery.poke()
            return True
        self.failures.record("events", QueueOverflow(f"queue full ({self._capacity})"), event_name=name)
        return self._drop_oldest

    def _warn_unattended(self, name: str) -> None:
        self._unattended = False  # once per tracker
        _log.warning(
            "turnout.events_not_started",
            event_name=name,
            note="events are queued but nothing delivers them: start turnout (`await turnout.start()` or "
            "`lifespan=turnout.lifespan`), or call `turnout.events.flush()` before the program exits",
        )

    def _reject(self, exc: Exception, name: object) -> bool:
        with self._lock:
            self.invalid += 1
        self.failures.record("events", exc, event_name=str(name)[:60])
        return False

    # -- delivery --------------------------------------------------------------------------

    def _pop(self, limit: int) -> list[Raw]:
        with self._lock:
            queue = self._queue
            taken = [queue.popleft() for _ in range(min(limit, len(queue)))]
        raws: list[Raw] = []
        append = raws.append
        base = self._base
        for item in taken:
            if item[0] is not _LATE_EXPOSURE:
                append(cast(Raw, item))
                continue
            _, decision, who, session_id, context, epoch = cast(_Exposure, item)
            try:
                props = exposure_properties(base, decision, context)
                append(self._raw("exposure", EXPOSURE, who, session_id, props, epoch))
            except Exception as exc:  # a bug, not bad input: count it, keep the rest of the batch
                self._reject(exc, EXPOSURE)
        return raws

    async def start(self) -> None:
        """Start delivering in the background (call inside the running event loop)."""
        if self._pid != os.getpid():
            self._reset()
        self._closed = False
        self._unattended = False
        if self.enabled:
            await self._delivery.start()

    async def stop(self, timeout_s: float | None = None) -> bool:
        """Deliver everything queued, then stop and close the sinks; True if nothing was lost."""
        timeout = self.config.shutdown_timeout_s if timeout_s is None else timeout_s
        lost = await self._delivery.stop(timeout)
        # From here on nothing would deliver an event: refuse (and count) rather than queue forever.
        self._closed = True
        return lost == 0

    async def aflush(self, timeout_s: float | None = None) -> bool:
        """Deliver everything queued so far, waiting up to `timeout_s`; True if all was delivered."""
        return await self._delivery.flush(self.config.shutdown_timeout_s if timeout_s is None else timeout_s)

    def flush(self, timeout_s: float | None = None) -> bool:
        """`aflush` for sync code (scripts, CLI, threads); never call it on the tracker's loop."""
        if self._pid != os.getpid():
            self._reset()
        self._unattended = False
        return self._delivery.flush_sync(self.config.shutdown_timeout_s if timeout_s is None else timeout_s)

    @property
    def dropped(self) -> int:
        """Events dropped because the queue or a sink's backlog was full."""
        return self._dropped + sum(lane.dropped for lane in self.lanes)

    @property
    def lost(self) -> int:
        """Events still undelivered when a stop deadline passed."""
        return self._delivery.lost

    @property
    def pending(self) -> int:
        """Events accepted and not yet delivered (queue, backlogs, batches in flight)."""
        return len(self._queue) + sum(lane.pending for lane in self.lanes)

    def counts(self) -> dict[str, int]:
        """Every counter, flat (`sink.<name>.delivered` …), for metrics."""
        counts = {
            "tracked": self.tracked,
            "invalid": self.invalid,
            "properties_dropped": self._delivery.properties_dropped,
            "deduplicated": self.deduplicated,
            "dropped": self.dropped,
            "lost": self.lost,
            "queued": len(self._queue),
        }
        for lane in self.lanes:
            for key in ("delivered", "dropped", "failed_writes", "pending"):
                counts[f"sink.{lane.name}.{key}"] = getattr(lane, key)
        return counts


def _after_fork_in_child() -> None:
    for tracker in list(_live):
        tracker._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
