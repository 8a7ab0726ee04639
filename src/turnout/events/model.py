"""The event record, its identifiers, and the checks every event passes before delivery.

Names are 1–200 characters from `[A-Za-z0-9_.:$ -]` (`session.start`,
`$feature_flag_called`); property keys are strings of 1–200 characters; property values
must be JSON-serialisable (NaN and infinities are not). The tracker never lets
these checks raise into a request: a bad event is dropped, a bad property is removed, and
both are counted.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from turnout.context import RoutingContext, _current
from turnout.decision import Decision

EventKind = Literal["track", "identify", "exposure"]
MAX_NAME = 200
MAX_KEY = 200
MAX_DISTINCT_ID = 1024
IDENTIFY = "$identify"
EXPOSURE = "$exposure"
RECORD = "$record"
_RESERVED = frozenset({"flag", "experiment", "variant"})

_COUNTER = (1 << 40) - 1
_EPOCH_MIN, _EPOCH_MAX = 0.0, 253402300799.0
_NAME = re.compile(rf"[A-Za-z0-9_.:$ -]{{1,{MAX_NAME}}}")


def _encoder() -> Callable[[Any], str]:
    """Compact, strict (no NaN) JSON; the C encoder made once, not once per call as `json.dumps` does."""

    def default(value: object) -> Any:
        raise TypeError(f"{type(value).__name__} is not JSON-serialisable")

    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (PyPy): the standard library's path
        return json.JSONEncoder(allow_nan=False, ensure_ascii=False, separators=(",", ":")).encode
    # No markers: a cycle ends in RecursionError rather than ValueError; either one is caught.
    encode = make(None, default, json.encoder.encode_basestring, None, ":", ",", False, False, False)
    return lambda value: "".join(encode(value, 0))


_dumps = _encoder()


class InvalidEvent(ValueError):
    """An event the tracker refused (bad name, key, distinct id or timestamp)."""


class PropertyDropped(ValueError):
    """A property removed from an event because its value is not JSON-serialisable."""


def check_name(name: object) -> str:
    """`name` if it is a valid event name, else raise `InvalidEvent`."""
    if isinstance(name, str) and _NAME.fullmatch(name):
        return name
    raise InvalidEvent(
        f"event name {str(name)[:60]!r} must be 1-{MAX_NAME} characters of letters, digits and '_.:$ -'"
    )


def check_record_name(name: object) -> str:
    """`name` if it can name a recorded value (a property key other than flag/experiment/variant)."""
    if isinstance(name, str) and 0 < len(name) <= MAX_KEY and name not in _RESERVED and _utf8(name):
        return name
    raise InvalidEvent(
        f"a recorded value's name must be 1-{MAX_KEY} characters and not flag, experiment or variant, "
        f"not {str(name)[:60]!r}"
    )


def who_of(distinct_id: object, context: RoutingContext | None = None) -> tuple[str, str | None]:
    """(distinct id, session id): the given id, else the context's key (`anonymous_<key>`).

    The context is the current request's unless one is given.
    """
    if context is None:
        context = _current.get()
    session_id = None
    if context is not None:
        session_id = context.session_id
        if distinct_id is None:
            key = context.targeting_key
            distinct_id = f"anonymous_{key}" if context.anonymous else key
    if type(distinct_id) is not str:
        if not isinstance(distinct_id, int | str) or isinstance(distinct_id, bool):
            raise InvalidEvent("no distinct_id given and no routing context to take one from")
        distinct_id = str(distinct_id)
    if not 0 < len(distinct_id) <= MAX_DISTINCT_ID:
        raise InvalidEvent(f"distinct_id must be 1-{MAX_DISTINCT_ID} characters")
    return distinct_id, session_id


def exposure_properties(
    base: Mapping[str, Any], decision: Decision, context: RoutingContext | None = None
) -> dict[str, Any]:
    """The properties of an `$exposure`: the base ones, then what the decision says.

    With a routing context, also the message intent (when a rule classified it) and the
    routing attributes, so reports can break results down by them without re-classifying.
    """
    props = {
        **base,
        "flag": decision.flag,
        "experiment": decision.experiment,
        "variant": decision.variant,
        "reason": str(decision.reason),
        "rule": decision.rule,
    }
    if context is not None:
        if context.intent is not None:
            props["intent"] = context.intent.label
            props["intent_confidence"] = round(context.intent.confidence, 4)
        if context.attributes:
            props["attributes"] = dict(context.attributes)
    return props


def to_epoch(timestamp: object) -> float:
    """Seconds since the epoch from a datetime (naive means UTC) or a number."""
    if isinstance(timestamp, datetime):
        epoch = (timestamp if timestamp.tzinfo is not None else timestamp.replace(tzinfo=UTC)).timestamp()
    elif isinstance(timestamp, int | float) and not isinstance(timestamp, bool):
        epoch = float(timestamp)
    else:
        raise InvalidEvent(f"timestamp must be a datetime or epoch seconds, not {type(timestamp).__name__}")
    if _EPOCH_MIN <= epoch <= _EPOCH_MAX:  # also rejects NaN
        return epoch
    raise InvalidEvent(f"timestamp {timestamp!r} is outside the years 1970-9999")


def sanitize(properties: Mapping[Any, Any]) -> tuple[dict[str, Any], str, list[str]]:
    """(clean properties, their JSON text, what was removed and why) — never raises.

    A dict that passes is returned as it is (the tracker hands in a fresh one).
    """
    try:
        text = _dumps(properties)
        if not text.isascii():
            text.encode()
        # Keys that json.dumps accepts and that have a length are strings: check the lengths.
        if not properties or (min(map(len, properties)) > 0 and max(map(len, properties)) <= MAX_KEY):
            return (properties if type(properties) is dict else dict(properties)), text, []
    except Exception:  # a bad key or value: find it (or them) one by one and keep the rest
        pass
    props = dict(properties)
    dropped = []
    for key in [k for k in props if not isinstance(k, str) or not 0 < len(k) <= MAX_KEY or not _utf8(k)]:
        del props[key]
        dropped.append(f"key {str(key)[:60]!r}: not a string of 1-{MAX_KEY} characters")
    for key, value in list(props.items()):
        try:
            _dumps(value).encode()  # lone surrogates encode to JSON but not to UTF-8
        except Exception as exc:
            dropped.append(f"{key[:60]!r}: not JSON-serialisable ({type(exc).__name__})")
            del props[key]
    try:
        return props, _dumps(props), dropped
    except Exception:  # each value encodes alone but not together (nesting at the recursion limit)
        return {}, "{}", [*dropped, *(f"{key[:60]!r}: too deeply nested" for key in props)]


class _Ids:
    """UUIDv7 layout: 48-bit ms, version 7, then a per-process random nonce and a counter."""

    def __init__(self) -> None:
        self.reseed()

    def reseed(self) -> None:
        nonce = secrets.randbits(32)
        # version nibble 7; 12 random bits; variant 0b10 + 2 random bits; 20 random bits
        self.middle = f"7{nonce >> 20:03x}{0x8 | (nonce >> 18) & 0x3:x}{secrets.randbits(20):05x}"
        self.counter = itertools.count(secrets.randbits(39))
        self.last = (-1, "")

    def new(self, epoch_s: float) -> str:
        millis = int(epoch_s * 1000)
        last = self.last  # (ms, the id's first 22 digits), swapped whole so threads never mix them
        if last[0] != millis:
            last = self.last = (millis, f"{millis & 0xFFFF_FFFF_FFFF:012x}{self.middle}")
        return f"{last[1]}{next(self.counter) & _COUNTER:010x}"


_ids = _Ids()
# A forked child must not mint the same ids as its parent.
os.register_at_fork(after_in_child=_ids.reseed)


def new_event_id(epoch_s: float | None = None) -> str:
    """A new event id: 32 hex digits of a UUIDv7 (sorts by creation time)."""
    return _ids.new(time.time() if epoch_s is None else epoch_s)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Event:
    """One tracked event, as sinks receive it. Read-only by contract: every sink gets the same object.

    Not a frozen dataclass: a frozen `__init__` (one `object.__setattr__` per field) costs
    about 0.5 µs more, a sixth of what delivering an event costs in all.
    """

    name: str
    distinct_id: str
    properties: Mapping[str, Any] = field(default_factory=dict)
    timestamp: datetime = field(default_factory=_now)
    kind: EventKind = "track"
    session_id: str | None = None
    id: str = field(default_factory=new_event_id)
    properties_json: str | None = field(default=None, compare=False, repr=False)
    """The properties as compact JSON text when already serialised (the tracker fills it in)."""
    created_at: str | None = field(default=None, compare=False, repr=False)
    """`timestamp` as ISO 8601 UTC text with microseconds, when already made (the tracker fills it in)."""

    def properties_text(self) -> str:
        """The properties as compact JSON text."""
        text = self.properties_json
        return text if text is not None else _dumps(dict(self.properties))

    def created_text(self) -> str:
        """`timestamp` as ISO 8601 UTC text with microseconds (`2026-12-03T10:00:00.000000+00:00`)."""
        text = self.created_at
        if text is not None:
            return text
        return self.timestamp.astimezone(UTC).isoformat(timespec="microseconds")

    def as_record(self) -> dict[str, Any]:
        """A JSON-ready dict (the jsonl sink's line)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "event": self.name,
            "distinct_id": self.distinct_id,
            "session_id": self.session_id,
            "timestamp": self.timestamp.isoformat(timespec="microseconds"),
            "properties": self.properties,
        }


Raw = tuple[EventKind, str, str, str | None, Mapping[str, Any], float]
"""What `track()` queues: kind, name, distinct id, session id, properties, epoch seconds."""


def _utf8(text: str) -> bool:
    """False for strings with lone surrogates, which no database accepts as text."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


_SHAPES = 4096
_shapes: set[tuple[str, ...]] = set()
"""Sets of property keys already checked (bounded: past `_SHAPES`, new ones are checked each time)."""


def build_events(
    raw: Iterable[Raw],
    report: Callable[[str, list[str]], object],
    reject: Callable[[Exception, str], object],
) -> list[Event]:
    """`Event`s from what `track()` queued: bad properties are removed (`report`), bad events skipped.

    The hot loop of delivery, written for speed: one JSON encoding per event both checks
    the properties and gives the text sinks store.
    """
    events: list[Event] = []
    append = events.append
    fromtimestamp = datetime.fromtimestamp
    new_id = _ids.new
    shapes = _shapes
    second, head = -1, ""
    for kind, name, distinct_id, session_id, queued, epoch in raw:
        if not (_utf8(distinct_id) and (session_id is None or _utf8(session_id))):
            reject(InvalidEvent("distinct_id or session_id is not valid Unicode text"), name)
            continue
        props = queued
        try:
            text = _dumps(props)
            if not text.isascii():
                text.encode()
            # Keys json accepts that have a length are strings; check their lengths, once per
            # set of keys (events of one name mostly share theirs).
            shape = tuple(props)
            if shape not in shapes:
                if props and (min(map(len, props)) == 0 or max(map(len, props)) > MAX_KEY):
                    raise InvalidEvent("property key length")
                if len(shapes) < _SHAPES:
                    shapes.add(shape)
        except Exception:
            props, text, dropped = sanitize(queued)
            report(name, dropped)
        timestamp = fromtimestamp(epoch, UTC)
        # The text of `timestamp.isoformat()`, made by hand: one strftime per second of events.
        micros = timestamp.microsecond
        whole = int(epoch)
        fraction = (epoch - whole) * 1e6
        # The datetime rounded to the microsecond, maybe across a second: its microseconds tell.
        if micros >= 500_000 > fraction:
            whole -= 1
        elif micros < 500_000 <= fraction:
            whole += 1
        if whole != second:
            second, head = whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
        created = f"{head}.{micros:06d}+00:00"
        append(Event(name, distinct_id, props, timestamp, kind, session_id, new_id(epoch), text, created))
    return events
