"""The snapshot loop started by `Turnout.start()`: periodic and final snapshots, failing exporters."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from turnout import RoutingContext, Turnout
from turnout.telemetry.exporters import Exporter
from turnout.telemetry.snapshot import MetricsSnapshot
from turnout.testing import InMemoryExporter
from turnout.testing import eventually_async as eventually

FLAG = "coordinator"
EXPERIMENT = "canary"


def config(tmp_path: Path | None = None, **telemetry: Any) -> dict[str, Any]:
    settings: dict[str, Any] = {"exporters": [], "snapshot_interval_s": 3600, "exporter_timeout_s": 5}
    if tmp_path is not None:
        settings |= {"exporters": ["jsonl"], "jsonl_path": str(tmp_path / "logs" / "metrics.jsonl")}
    return {
        "flags": {
            FLAG: {
                "variants": ["legacy", "workflow"],
                "default": "legacy",
                "rules": [
                    {"name": "split", "experiment": EXPERIMENT, "split": {"legacy": 50, "workflow": 50}}
                ],
            }
        },
        "telemetry": settings | telemetry,
    }


def make(settings: dict[str, Any], *exporters: Exporter) -> Turnout:
    t = Turnout(settings, exporters=exporters)
    t.add_engine("legacy", lambda message: message)
    t.add_engine("workflow", lambda message: message)
    return t


async def traffic(t: Turnout, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        await t.run(FLAG, "hi", context=RoutingContext(f"user-{i}"))


def requests(snapshot: MetricsSnapshot, component: str = "decide", *, window: bool = False) -> int:
    stats = snapshot.components.get(component)
    if stats is None:
        return 0
    if window:
        return stats.window.total_requests if stats.window is not None else 0
    return stats.total_requests


class Raising(Exporter):
    name = "broken"

    def __init__(self) -> None:
        self.calls = 0

    def export(self, snapshot: MetricsSnapshot) -> None:
        self.calls += 1
        raise ConnectionRefusedError("collector unreachable")


class Hanging(Exporter):
    """Blocks in `export` until `release` is set."""

    name = "hanging"

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()
        self.shut_down = threading.Event()

    def export(self, snapshot: MetricsSnapshot) -> None:
        self.entered.set()
        self.release.wait()

    def shutdown(self) -> None:
        self.shut_down.set()


@pytest.fixture
def hanging() -> Iterator[Hanging]:
    exporter = Hanging()
    yield exporter
    exporter.release.set()  # whatever the test did, let the exporter's thread finish


# -- the periodic loop -------------------------------------------------------------------------


async def test_periodic_snapshots_then_a_final_one_on_stop(tmp_path: Path) -> None:
    memory = InMemoryExporter()
    t = make(config(tmp_path, snapshot_interval_s=0.05), memory)

    await t.start()
    await traffic(t, 10)
    await eventually(lambda: len(memory.snapshots) >= 2, "two periodic snapshots")
    await traffic(t, 5, start=10)
    before_stop = len(memory.snapshots)
    await t.stop()

    snapshots = memory.snapshots
    assert len(snapshots) > before_stop
    assert memory.shut_down
    final = snapshots[-1]
    assert requests(final) == 15
    assert requests(final, "engine.legacy") + requests(final, "engine.workflow") == 15
    variants = final.experiments[EXPERIMENT].variants
    assert sum(v.exposures for v in variants.values()) == 15
    # Windows partition the traffic: each request is in exactly one snapshot's window.
    assert sum(requests(s, window=True) for s in snapshots) == 15
    assert [requests(s) for s in snapshots] == sorted(requests(s) for s in snapshots)
    assert all(a.timestamp <= b.timestamp for a, b in itertools.pairwise(snapshots))
    assert all(s.interval_s == 0.05 for s in snapshots)
    # The jsonl exporter ran in the same loop: one line per snapshot.
    lines = (tmp_path / "logs" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(snapshots)
    assert json.loads(lines[-1])["components"]["decide"]["total_requests"] == 15
    assert t.failures.snapshot() == {}


async def test_cumulative_figures_and_per_interval_windows() -> None:
    memory = InMemoryExporter()
    t = make(config(), memory)
    await t.start()

    await traffic(t, 3)
    first = await t.telemetry.publish()
    await traffic(t, 2, start=3)
    second = await t.telemetry.publish()
    await t.stop()

    assert first is not None and second is not None
    final = memory.snapshots[-1]
    assert memory.snapshots == [first, second, final]
    assert [requests(s) for s in (first, second, final)] == [3, 5, 5]
    assert [requests(s, window=True) for s in (first, second, final)] == [3, 2, 0]
    variants = [s.experiments[EXPERIMENT].variants for s in (first, second, final)]
    assert [sum(v.exposures for v in vs.values()) for vs in variants] == [3, 5, 5]
    assert [sum(v.window.exposures for v in vs.values() if v.window) for vs in variants] == [3, 2, 0]
    # An empty window is healthy, with nothing to say but that.
    window = final.components["decide"].window
    assert window is not None
    assert window.model_dump()["status"] == "healthy"
    assert window.model_dump()["status_reason"] == "no requests"


async def test_lifespan_starts_and_stops_the_loop() -> None:
    memory = InMemoryExporter()
    t = make(config(), memory)

    async with t.lifespan(object()) as state:
        assert state == {"turnout": t}
        assert t.telemetry.exporters == [memory]
        await traffic(t, 4)

    assert t.telemetry.exporters == []
    (final,) = memory.snapshots
    assert requests(final) == 4
    assert memory.shut_down


async def test_start_twice_runs_one_loop_and_a_restart_works() -> None:
    memory = InMemoryExporter()
    t = make(config(), memory)

    await t.start()
    await t.start()
    await traffic(t, 1)
    await t.stop()
    await t.stop()
    assert len(memory.snapshots) == 1

    await t.start()
    await traffic(t, 1, start=1)
    await t.stop()
    assert [requests(s) for s in memory.snapshots] == [1, 2]


async def test_without_exporters_nothing_runs() -> None:
    t = make(config())

    await t.start()
    assert t.telemetry.exporters == []
    await traffic(t, 2)
    await t.stop()

    assert t.failures.snapshot() == {}


# -- failing exporters -------------------------------------------------------------------------


async def test_an_exporter_that_raises_is_logged_once_and_counted() -> None:
    memory, broken = InMemoryExporter(), Raising()
    t = make(config(), broken, memory)
    await t.start()

    with capture_logs() as logs:
        for i in range(3):
            await traffic(t, 1, start=i)
            await t.telemetry.publish()
        await t.stop()

    assert broken.calls == 4
    assert [requests(s) for s in memory.snapshots] == [1, 2, 3, 3]
    assert t.failures.snapshot() == {"exporter.broken": {"ConnectionRefusedError": 4}}
    failures = [log for log in logs if log["event"] == "turnout.failure"]
    assert len(failures) == 1
    assert failures[0]["component"] == "exporter.broken"
    assert failures[0]["step"] == "export"
    assert "collector unreachable" in failures[0]["error"]
    assert failures[0]["log_level"] == "warning"


async def test_an_exporter_that_raises_on_shutdown_does_not_stop_the_others() -> None:
    class BadShutdown(InMemoryExporter):
        name = "bad-shutdown"

        def shutdown(self) -> None:
            raise OSError("socket already closed")

    bad, memory = BadShutdown(), InMemoryExporter()
    t = make(config(), bad, memory)
    await t.start()
    await traffic(t, 1)

    with capture_logs():
        await t.stop()

    assert len(bad.snapshots) == len(memory.snapshots) == 1
    assert memory.shut_down
    assert t.failures.snapshot() == {"exporter.bad-shutdown": {"OSError": 1}}


async def test_an_exporter_that_hangs_is_timed_out_skipped_and_never_blocks(hanging: Hanging) -> None:
    memory = InMemoryExporter()
    t = make(config(exporter_timeout_s=0.1), hanging, memory)
    await t.start()

    with capture_logs() as logs:
        await traffic(t, 1)
        await t.telemetry.publish()  # the hanging exporter times out
        assert hanging.entered.is_set()
        await traffic(t, 1, start=1)  # requests are served meanwhile
        await t.telemetry.publish()  # still busy: skipped at once
        async with asyncio.timeout(5):  # a generous bound: stop() must not wait for the export
            await t.stop()

    assert not hanging.release.is_set()
    # A stuck export must not keep the process from exiting either.
    (lane,) = [thread for thread in threading.enumerate() if thread.name == "turnout-export-hanging"]
    assert lane.daemon
    assert [requests(s) for s in memory.snapshots] == [1, 2, 2]
    assert memory.shut_down
    assert t.failures.snapshot() == {"exporter.hanging": {"TimeoutError": 3}}
    failures = [log for log in logs if log["event"] == "turnout.failure"]
    assert len(failures) == 1
    assert "export took longer than 0.1s" in failures[0]["error"]

    # Once the export returns, the shutdown queued behind it still runs.
    assert not hanging.shut_down.is_set()
    hanging.release.set()
    await eventually(hanging.shut_down.is_set, "the hanging exporter's shutdown")


async def test_a_hanging_exporter_does_not_hold_up_periodic_snapshots(hanging: Hanging) -> None:
    memory = InMemoryExporter()
    t = make(config(snapshot_interval_s=0.05, exporter_timeout_s=0.1), hanging, memory)
    await t.start()

    with capture_logs():
        await traffic(t, 3)
        await eventually(lambda: len(memory.snapshots) >= 3, "three snapshots while one exporter hangs")
        async with asyncio.timeout(5):
            await t.stop()

    assert requests(memory.snapshots[-1]) == 3
    assert t.failures.count("exporter.hanging") >= 3


async def test_an_exporter_raising_timeout_error_is_not_reported_as_hanging() -> None:
    class Slowpoke(Exporter):
        name = "slowpoke"

        def export(self, snapshot: MetricsSnapshot) -> None:
            raise TimeoutError("upstream read timed out")

    t = make(config(), Slowpoke())
    await t.start()

    with capture_logs() as logs:
        await t.stop()

    (failure,) = [log for log in logs if log["event"] == "turnout.failure"]
    assert "upstream read timed out" in failure["error"]
    assert failure["step"] == "export"


async def test_a_failing_snapshot_is_counted_and_the_loop_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    memory = InMemoryExporter()
    t = make(config(), memory)
    await t.start()

    def broken(reset_window: bool = True) -> dict[str, Any]:
        raise RuntimeError("registry exploded")

    with capture_logs():
        with monkeypatch.context() as patch:
            patch.setattr(t.telemetry.metrics, "snapshot", broken)
            assert await t.telemetry.publish() is None
        await traffic(t, 1)
        await t.stop()

    assert t.failures.snapshot() == {"telemetry.snapshot": {"RuntimeError": 1}}
    (final,) = memory.snapshots
    assert final.failures == {"telemetry.snapshot": {"RuntimeError": 1}}
    assert requests(final) == 1
