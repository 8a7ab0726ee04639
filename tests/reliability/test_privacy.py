"""The `privacy` settings: what spans, logs and events keep of users and of engine errors."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from structlog.testing import capture_logs

from turnout import ConfigError, RoutingContext, Turnout
from turnout.events import MemorySink
from turnout.testing import make_turnout

FLAG = "coordinator"
SECRET_TEXT = "db password is hunter2 and the user said: my card is 4111"


@pytest.fixture
def spans() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def make(privacy: dict[str, Any], provider: TracerProvider, sink: MemorySink) -> Turnout:
    t = make_turnout(
        {
            "privacy": privacy,
            "engines": {"workflow": {"fallback": "legacy"}, "legacy": {}},
            "flags": {
                FLAG: {
                    "variants": ["legacy", "workflow"],
                    "default": "legacy",
                    "rules": [{"experiment": "canary", "split": {"legacy": 0, "workflow": 100}}],
                }
            },
        },
        tracer_provider=provider,
        sink=sink,
    )

    def broken(message: str) -> str:
        raise RuntimeError(SECRET_TEXT)

    t.add_engine("workflow", broken)
    t.add_engine("legacy", lambda message: f"legacy:{message}")
    return t


async def served(t: Turnout, provider: TracerProvider) -> None:
    await t.events.start()
    with provider.get_tracer("test").start_as_current_span("request"):
        assert await t.run(FLAG, "hi", context=RoutingContext("alice", session_id="s-1")) == "legacy:hi"
    await t.events.stop()


def evaluation_ids(exporter: InMemorySpanExporter) -> list[Any]:
    request = next(s for s in exporter.get_finished_spans() if s.name == "request")
    return [dict(e.attributes or {}).get("feature_flag.context.id", "<absent>") for e in request.events]


async def test_raw_is_the_default(spans: Any) -> None:
    provider, exporter = spans
    sink = MemorySink()
    await served(make({}, provider, sink), provider)
    assert evaluation_ids(exporter) == ["alice"]
    (exposure,) = sink.events
    assert (exposure.distinct_id, exposure.session_id) == ("alice", "s-1")


async def test_hash_stores_a_keyed_hash_everywhere(spans: Any) -> None:
    provider, exporter = spans
    sink = MemorySink()
    await served(make({"targeting_key": "hash", "salt": "pepper"}, provider, sink), provider)
    alice = hmac.new(b"pepper", b"alice", hashlib.sha256).hexdigest()
    assert evaluation_ids(exporter) == [alice]
    (exposure,) = sink.events
    assert exposure.distinct_id == alice
    assert exposure.session_id == hmac.new(b"pepper", b"s-1", hashlib.sha256).hexdigest()


async def test_drop_leaves_the_key_out(spans: Any) -> None:
    provider, exporter = spans
    sink = MemorySink()
    await served(make({"targeting_key": "drop"}, provider, sink), provider)
    assert evaluation_ids(exporter) == ["<absent>"]
    (exposure,) = sink.events
    assert (exposure.distinct_id, exposure.session_id) == ("redacted", None)


def test_hash_needs_a_salt() -> None:
    with pytest.raises(ConfigError) as caught:
        Turnout({"privacy": {"targeting_key": "hash"}}, env={})
    assert [issue.path for issue in caught.value.issues] == ["privacy.salt"]


async def test_exception_texts_are_cut_in_spans_logs_and_decisions(spans: Any) -> None:
    provider, exporter = spans
    t = make({"exception_text_length": 10}, provider, MemorySink())
    with capture_logs() as logs:
        await served(t, provider)
    (engine_span, _) = [s for s in exporter.get_finished_spans() if s.name == "turnout.engine"]
    texts = [str(dict(e.attributes or {})) for e in engine_span.events] + [
        engine_span.status.description or ""
    ]
    texts += [str(e.get("error")) for e in logs if e["event"] == "turnout.failure"]
    assert "hunter2" not in "".join(texts) and "4111" not in "".join(texts)
    assert any("db passwor" in text for text in texts)


async def test_type_only_keeps_no_exception_text(spans: Any) -> None:
    provider, exporter = spans
    t = make({"exception_text": "type"}, provider, MemorySink())
    with capture_logs() as logs:
        await served(t, provider)
    (engine_span, _) = [s for s in exporter.get_finished_spans() if s.name == "turnout.engine"]
    (exception,) = [e for e in engine_span.events if e.name == "exception"]
    assert dict(exception.attributes or {}) == {"exception.type": "RuntimeError"}
    assert engine_span.status.description == "RuntimeError"
    failure = next(e for e in logs if e["event"] == "turnout.failure")
    assert failure["error"] == "RuntimeError"
    decision = t.decide(FLAG, RoutingContext("bob"))
    assert "db password" not in str(decision)
