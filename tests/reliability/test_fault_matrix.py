"""The fault matrix: every part that can fail fails, under 2,000 requests; no request fails with it.

Engines raise and hang (sync and async), exporters raise and hang, sinks raise and hang,
the classifier raises, a plugin does not import, and the config file turns to garbage, goes
empty, is cut short and loses the flag in use while requests go on. Every response must be
a 200 and every fault must show up in `Turnout.failures`. `bench/soak.py` runs it longer.
"""

from __future__ import annotations

import json
import os
import types
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faults
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from turnout import Turnout
from turnout import plugins as plugin_module
from turnout.asgi import STATE_KEY, TurnoutMiddleware
from turnout.events import MemorySink
from turnout.watch import FileWatcher

FLAG = "coordinator"
FAULTY = ["raise_sync", "raise_async", "hang_sync", "hang_async"]
REQUESTS = int(os.environ.get("TURNOUT_SOAK_REQUESTS", "2000"))
"""2,000 in CI; `make soak` runs many more."""
CONFIG: dict[str, Any] = {
    "engines": {
        "raise_sync": {"fallback": "legacy"},
        "raise_async": {"fallback": "legacy"},
        "hang_sync": {"fallback": "legacy", "timeout_ms": 5},
        "hang_async": {"fallback": "legacy", "timeout_ms": 5},
        "legacy": {},
    },
    "intent": {"enabled": True},
    "flags": {
        FLAG: {
            "variants": ["legacy", *FAULTY],
            "default": "legacy",
            "rules": [
                {"name": "refunds", "when": {"intent": "refund"}, "serve": "legacy"},
                {"name": "faults", "experiment": "faults", "split": dict.fromkeys(["legacy", *FAULTY], 20)},
            ],
        }
    },
    "telemetry": {"exporters": [], "snapshot_interval_s": 0.05, "exporter_timeout_s": 0.05},
    "events": {"flush_interval_s": 0.05, "sink_timeout_s": 0.05, "shutdown_timeout_s": 0.5},
}


class _BrokenEntryPoint:
    name, group, value = "broken", "turnout.engines", "acme_broken:engine"
    dist = types.SimpleNamespace(name="acme-broken", version="1.0")

    def load(self) -> Any:
        raise ImportError("No module named 'acme_broken_dependency'")


@pytest.fixture
def broken_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(plugin_module, "entry_points", lambda *, group: [_BrokenEntryPoint()])
    monkeypatch.delenv("TURNOUT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    plugin_module.clear_cache()
    yield
    plugin_module.clear_cache()


def config_faults(good: str) -> list[tuple[str, str, bool]]:
    """(name, file content, whether the reload fails) for each way the file can go wrong."""
    with_plugin = json.loads(good)
    with_plugin["engines"]["plugged"] = {"plugin": "broken"}
    without_flag = {
        **json.loads(good),
        "flags": {"other": {"variants": ["a"], "default": "a", "kind": "value"}},
    }
    return [
        ("garbage", "{{{ not a config \x00", True),
        ("empty", "", True),
        ("truncated", good[: len(good) // 2], True),
        ("plugin", json.dumps(with_plugin), True),
        ("flag dropped", json.dumps(without_flag), False),
    ]


def make_app(t: Turnout) -> Starlette:
    async def chat(request: Request) -> JSONResponse:
        context = request.scope["state"][STATE_KEY]
        context.text = request.query_params.get("q", "hello")
        reply = await t.run(FLAG, "hi", context=context)
        t.track("chat.reply", properties={"length": len(reply)})
        decision = context.decisions[FLAG]
        return JSONResponse({"variant": decision.variant, "reason": decision.reason, "reply": reply})

    app = Starlette(routes=[Route("/chat", chat)])
    app.add_middleware(TurnoutMiddleware, turnout=t)
    return app


async def test_no_fault_fails_a_request_and_every_fault_is_counted(
    tmp_path: Path, broken_plugin: None
) -> None:
    path = tmp_path / "turnout.json"
    good = json.dumps(CONFIG)
    path.write_text(good)
    classifier, raising_exporter, hanging_exporter = (
        faults.RaisingClassifier(),
        faults.RaisingExporter(),
        faults.HangingExporter(),
    )
    raising_sink, memory = faults.RaisingSink(), MemorySink()
    t = Turnout.from_file(
        path,
        env={},
        classifier=classifier,
        exporters=[raising_exporter, hanging_exporter],
        event_sinks=[raising_sink, faults.HangingSink(), memory],
    )
    for name, engine in [(n, getattr(faults, n)) for n in FAULTY] + [("legacy", faults.legacy)]:
        t.add_engine(name, engine)
    watcher = FileWatcher(path, t.reload, interval_s=1.0, failures=t.failures)
    schedule = config_faults(good)
    statuses: Counter[int] = Counter()
    served: Counter[str] = Counter()
    unknown_flag = expected_reload_failures = 0
    dropped = False

    await t.start()
    try:
        transport = httpx.ASGITransport(app=make_app(t))
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for i in range(REQUESTS):
                if i % 100 == 50:  # the file goes wrong, settles (two polls), then is repaired
                    name, content, fails = schedule[(i // 100) % len(schedule)]
                    for text in (content, good):
                        path.write_text(text)
                        watcher.poll()
                        watcher.poll()
                        if text == content:
                            expected_reload_failures += fails
                            dropped = name == "flag dropped"
                            if dropped:
                                for _ in range(20):
                                    response = await client.get("/chat", headers={"X-User-Id": f"d{i}-{_}"})
                                    statuses[response.status_code] += 1
                                    unknown_flag += 1
                                    assert faults.body(response)["reason"] == "ERROR"
                query = {"q": "refund please"} if i % 10 == 0 else {}
                response = await client.get("/chat", params=query, headers={"X-User-Id": f"u{i}"})
                statuses[response.status_code] += 1
                served[faults.body(response)["variant"]] += 1
    finally:
        await t.stop()
        hanging_exporter.release.set()

    failures = t.failures.snapshot()
    assert statuses == {200: REQUESTS + unknown_flag}  # not one 5xx
    for variant in FAULTY:  # each request routed to a faulty engine is one counted fault
        assert served[variant] > 100
        assert faults.count(failures, f"engine.{variant}") == served[variant], variant
    assert set(failures["engine.hang_sync"]) <= {"EngineTimeoutError", "CircuitOpenError"}
    assert failures["engine.raise_async"].get("EngineDown", 0) >= 1
    assert faults.count(failures, "intent.classify") == classifier.calls == REQUESTS  # one per decision
    # A call the loop gave up on (busy machine) is counted as a timeout, not again when it raises.
    assert faults.count(failures, "exporter.raising") >= raising_exporter.calls >= 1
    assert faults.count(failures, "exporter.hanging") >= 1
    assert faults.count(failures, "events.sink.raising") == raising_sink.calls >= 1
    assert faults.count(failures, "events.sink.hanging") >= 1
    assert failures["config.reload"] == {"ConfigError": expected_reload_failures}
    assert failures["decide"] == {"UnknownFlagError": unknown_flag}
    # The healthy sink got every event; the other two sinks' copies are counted as lost.
    assert memory.events and t.events.dropped == 0
    assert t.events.lost == 2 * len(memory.events)
