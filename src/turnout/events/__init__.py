"""Exposure and business events: `EventTracker` queues them, sinks receive them in batches."""

from turnout.events.delivery import EventsLost
from turnout.events.lanes import QueueOverflow
from turnout.events.model import Event, EventKind, InvalidEvent, PropertyDropped, new_event_id
from turnout.events.sinks import EventSink, JsonlSink, MemorySink, SQLiteSink, ThreadedSink, sink_from_url
from turnout.events.tracker import EventTracker

__all__ = [
    "Event",
    "EventKind",
    "EventSink",
    "EventTracker",
    "EventsLost",
    "InvalidEvent",
    "JsonlSink",
    "MemorySink",
    "PropertyDropped",
    "QueueOverflow",
    "SQLiteSink",
    "ThreadedSink",
    "new_event_id",
    "sink_from_url",
]
