"""Exporters: the metrics.jsonl format and rotation, the logging exporter, plugins, health statuses."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
import types
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from turnout import ConfigError, RoutingContext, Turnout
from turnout import plugins as plugin_module
from turnout.telemetry.exporters import Exporter, JsonlExporter
from turnout.telemetry.snapshot import MetricsSnapshot, snapshot_from
from turnout.testing import InMemoryExporter, make_turnout

FLAG = "coordinator"
EXPERIMENT = "workflow-canary"
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
LATENCY = {"mean", "sd", "p50", "p95", "p99", "max"}
STATUSES = {"healthy", "warning", "critical"}


NO_BREAKER = {"circuit_breaker": {"enabled": False}}  # every failure reaches the engine: exact counts


def config(**telemetry: Any) -> dict[str, Any]:
    return {
        "engines": {"legacy": NO_BREAKER, "workflow": {"fallback": "legacy", **NO_BREAKER}},
        "flags": {
            FLAG: {
                "variants": ["legacy", "workflow"],
                "default": "legacy",
                "rules": [
                    {"name": "canary", "experiment": EXPERIMENT, "split": {"legacy": 50, "workflow": 50}}
                ],
            }
        },
        "telemetry": {"exporters": [], "snapshot_interval_s": 3600, "exporter_timeout_s": 5} | telemetry,
    }


def make(settings: dict[str, Any], *exporters: Exporter, fail: str | None = None) -> Turnout:
    t = make_turnout(settings, exporters=exporters)

    def engine_named(name: str) -> Any:
        def engine(message: str) -> str:
            if name == fail:
                raise ConnectionError(f"{name} is down")
            return f"{name}:{message}"

        return engine

    t.add_engine("legacy", engine_named("legacy"))
    t.add_engine("workflow", engine_named("workflow"))
    return t


async def traffic(t: Turnout, n: int) -> None:
    for i in range(n):
        await t.run(FLAG, "hi", context=RoutingContext(f"user-{i}"))


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def a_snapshot(n: int) -> MetricsSnapshot:
    stats = {
        "total_requests": n,
        "success_rate": 1.0,
        "latency_ms": {"mean": 1.0, "p50": 1.0, "p95": 1.0, "p99": 1.0, "max": 1.0},
    }
    return snapshot_from({"components": {"decide": stats}}, interval_s=10)


def assert_stats_shape(stats: dict[str, Any]) -> None:
    assert isinstance(stats["total_requests"], int)
    assert stats["success_rate"] is None or 0.0 <= stats["success_rate"] <= 1.0
    assert set(stats["latency_ms"]) == LATENCY
    assert stats["status"] in STATUSES
    assert isinstance(stats["status_reason"], str)
    window = stats["window"]
    assert set(window) >= {"total_requests", "success_rate", "latency_ms", "status"}
    assert set(window["latency_ms"]) == LATENCY
    assert window["total_requests"] <= stats["total_requests"]


# -- jsonl -------------------------------------------------------------------------------------


async def test_jsonl_lines_follow_the_architecture_format(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "metrics.jsonl"
    t = make(config(exporters=["jsonl"], jsonl_path=str(path), snapshot_interval_s=10), fail="workflow")
    await t.start()
    assert path.parent.is_dir()  # created at start

    await traffic(t, 20)
    await t.telemetry.publish()
    await traffic(t, 4)
    await t.stop()

    first, final = lines(path)
    for line in (first, final):
        assert TIMESTAMP.match(line["timestamp"]), line["timestamp"]
        taken = datetime.fromisoformat(line["timestamp"].replace("Z", "+00:00"))
        assert taken.tzinfo is not None
        assert taken.utcoffset() == UTC.utcoffset(None)
        assert line["interval_s"] == 10
        assert line["process"] == f"{socket.gethostname()}:{os.getpid()}"
        assert {"decide", "engine.legacy", "engine.workflow"} <= set(line["components"])
        for stats in line["components"].values():
            assert_stats_shape(stats)
        experiment = line["experiments"][EXPERIMENT]
        assert experiment["flag"] == FLAG
        assert set(experiment["variants"]) == {"legacy", "workflow"}
        for stats in experiment["variants"].values():
            assert_stats_shape(stats)
            assert stats["exposures"] >= stats["window"]["exposures"]
    decide = final["components"]["decide"]
    assert (decide["total_requests"], decide["window"]["total_requests"]) == (24, 4)
    variants = final["experiments"][EXPERIMENT]["variants"]
    assert variants["legacy"]["exposures"] + variants["workflow"]["exposures"] == 24
    # The canary failed every time (the fallback served), and says so.
    assert variants["workflow"]["success_rate"] == 0.0
    assert variants["workflow"]["errors"] == {"ConnectionError": variants["workflow"]["total_requests"]}
    assert final["failures"] == {
        "engine.workflow": {"ConnectionError": variants["workflow"]["total_requests"]}
    }
    assert first["timestamp"] <= final["timestamp"]
    # A line reads back as the snapshot it was.
    restored = MetricsSnapshot.model_validate_json(path.read_text().splitlines()[-1])
    assert restored.components["decide"].total_requests == 24


def test_jsonl_appends_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"written": "by another process"}\n')

    JsonlExporter(path).export(a_snapshot(1))

    first, second = lines(path)
    assert first == {"written": "by another process"}
    assert second["components"]["decide"]["total_requests"] == 1


def test_jsonl_rotates_by_size_and_keeps_at_most_the_configured_backups(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    size = len(a_snapshot(0).model_dump_json().encode()) + 1
    exporter = JsonlExporter(path, max_bytes=int(size * 2.5), backups=2)

    for n in range(1, 8):
        exporter.export(a_snapshot(n))

    def totals(file: Path) -> list[int]:
        return [line["components"]["decide"]["total_requests"] for line in lines(file)]

    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "metrics.jsonl",
        "metrics.jsonl.1",
        "metrics.jsonl.2",
    ]
    assert totals(path.with_name("metrics.jsonl.2")) == [3, 4]
    assert totals(path.with_name("metrics.jsonl.1")) == [5, 6]
    assert totals(path) == [7]
    assert all(p.stat().st_size <= size * 2.5 for p in tmp_path.iterdir())


def test_jsonl_without_backups_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    size = len(a_snapshot(0).model_dump_json().encode()) + 1
    exporter = JsonlExporter(path, max_bytes=size * 2, backups=0)

    for n in range(1, 6):
        exporter.export(a_snapshot(n))

    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]
    assert [line["components"]["decide"]["total_requests"] for line in lines(path)] == [5]


def test_a_line_longer_than_max_bytes_gets_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    exporter = JsonlExporter(path, max_bytes=10, backups=3)

    for n in range(1, 4):
        exporter.export(a_snapshot(n))

    assert [len(lines(p)) for p in sorted(tmp_path.iterdir())] == [1, 1, 1]
    assert not path.with_name("metrics.jsonl.3").exists()  # no empty file was rotated in


async def test_rotation_settings_come_from_config(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    t = make(config(exporters=["jsonl"], jsonl_path=str(path), jsonl_max_bytes=1024, jsonl_backups=2))
    await t.start()

    for n in range(6):
        await traffic(t, n + 1)
        await t.telemetry.publish()
    await t.stop()

    assert sorted(p.name for p in tmp_path.glob("metrics.jsonl*")) == [
        "metrics.jsonl",
        "metrics.jsonl.1",
        "metrics.jsonl.2",
    ]
    assert t.failures.snapshot() == {}


async def test_a_non_writable_log_directory_is_reported_at_start_and_requests_are_served(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log directory should be")
    path = blocker / "metrics.jsonl"
    memory = InMemoryExporter()
    t = make(config(exporters=["jsonl"], jsonl_path=str(path)), memory)

    with capture_logs() as logs:
        await t.start()
        at_start = [log for log in logs if log["event"] == "turnout.metrics_not_writable"]
        await traffic(t, 3)
        await t.telemetry.publish()
        await t.telemetry.publish()

    (report,) = at_start
    assert report["log_level"] == "error"
    assert report["path"] == str(path)
    assert [log for log in logs if log["event"] == "turnout.metrics_not_writable"] == [report]
    assert [s.components["decide"].total_requests for s in memory.snapshots] == [3, 3]
    assert t.failures.count("exporter.jsonl") == 2

    # Once the directory can be created, lines are written again.
    blocker.unlink()
    with capture_logs():
        await t.stop()
    assert [line["components"]["decide"]["total_requests"] for line in lines(path)] == [3]


# -- logging -----------------------------------------------------------------------------------


async def test_logging_exporter_emits_one_structlog_line_per_component_and_variant() -> None:
    t = make(config(exporters=["logging"]))
    await t.start()
    await traffic(t, 10)

    with capture_logs() as logs:
        await t.stop()

    metrics = [log for log in logs if log["event"] == "turnout.metrics"]
    assert all(log["log_level"] == "info" for log in metrics)
    by_component = {log["component"]: log for log in metrics if "component" in log}
    assert set(by_component) == {"decide", "engine.legacy", "engine.workflow"}
    decide = by_component["decide"]
    assert decide["requests"] == 10
    assert decide["success_rate"] == 1.0
    assert decide["status"] == "healthy"
    assert decide["reason"] == "within thresholds"
    assert decide["p50_ms"] <= decide["p95_ms"] <= decide["p99_ms"]
    by_variant = {log["variant"]: log for log in metrics if "variant" in log}
    assert set(by_variant) == {"legacy", "workflow"}
    assert sum(log["exposures"] for log in by_variant.values()) == 10
    assert all(log["experiment"] == EXPERIMENT and log["flag"] == FLAG for log in by_variant.values())


# -- plugins -----------------------------------------------------------------------------------


class Recording(InMemoryExporter):
    name = "recording"

    def __init__(self, tag: str = "") -> None:
        super().__init__()
        self.tag = tag
        built.append(self)


built: list[Recording] = []


@pytest.fixture
def acme(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    module = types.ModuleType("acme_exporters")
    module.Recording = Recording  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "acme_exporters", module)

    class EntryPoint:
        name, group, value, dist = "recording", "turnout.exporters", "acme_exporters:Recording", None

        def load(self) -> Any:
            return Recording

    def fake_entry_points(*, group: str) -> list[Any]:
        return [EntryPoint()] if group == "turnout.exporters" else []

    monkeypatch.setattr(plugin_module, "entry_points", fake_entry_points)
    monkeypatch.delenv("TURNOUT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    plugin_module.clear_cache()
    built.clear()
    yield
    plugin_module.clear_cache()


@pytest.mark.parametrize("name", ["recording", "acme_exporters:Recording"])
async def test_exporters_from_plugins_get_snapshots_with_their_options(acme: None, name: str) -> None:
    t = make(config(exporters=[name], exporter_options={name: {"tag": "blue"}}))
    await t.start()
    await traffic(t, 2)
    await t.stop()

    (exporter,) = built
    assert exporter.tag == "blue"
    assert [s.components["decide"].total_requests for s in exporter.snapshots] == [2]
    assert exporter.shut_down


def test_an_unknown_exporter_fails_at_load_naming_what_is_installed(acme: None, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        make(config(exporters=["jsonl", "nope"], jsonl_path=str(tmp_path / "metrics.jsonl")))
    issue = caught.value.issues[0]
    assert (issue.path, issue.value) == ("telemetry.exporters[1]", "nope")
    assert re.search(r"no plugin 'nope' in entry-point group 'turnout.exporters'.*recording", issue.message)
    assert not (tmp_path / "metrics.jsonl").exists()


# -- health ------------------------------------------------------------------------------------


async def test_health_statuses_come_from_thresholds() -> None:
    settings = config(components={"engine.slow": {"p99_ms_warning": 5, "p99_ms_critical": 60_000}})
    settings["flags"]["pick"] = {
        "variants": ["slow", "broken"],
        "default": "slow",
        "overrides": {"b": "broken"},
    }
    memory = InMemoryExporter()
    t = Turnout({**settings, "engines": {"broken": NO_BREAKER}}, exporters=[memory])

    async def slow(message: str) -> str:
        await asyncio.sleep(0.01)  # at least 10 ms: well over the 5 ms warning threshold
        return message

    async def broken(message: str) -> str:
        raise ConnectionError("down")

    for name, engine in {"slow": slow, "broken": broken, "legacy": str, "workflow": str}.items():
        t.add_engine(name, engine)
    await t.start()

    for _ in range(3):
        await t.run("pick", "hi", context=RoutingContext("u1"))
    for _ in range(20):
        with pytest.raises(ConnectionError):
            await t.run("pick", "hi", context=RoutingContext("b"))
    await traffic(t, 5)
    await t.stop()

    (snapshot,) = memory.snapshots
    slow_stats = snapshot.components["engine.slow"].model_dump()
    assert slow_stats["status"] == "warning"
    assert re.fullmatch(r"P99 \d+(\.\d+)? ms > 5 ms", slow_stats["status_reason"])
    assert slow_stats["window"]["status"] == "warning"
    broken_stats = snapshot.components["engine.broken"].model_dump()
    assert broken_stats["status"] == "critical"
    assert broken_stats["status_reason"] == "success rate 0.0% < 90.0%"
    legacy = snapshot.components["engine.legacy"].model_dump()
    assert (legacy["status"], legacy["status_reason"]) == ("healthy", "within thresholds")


async def test_too_few_samples_do_not_judge_the_success_rate() -> None:
    memory = InMemoryExporter()
    t = make(config(thresholds={"min_samples": 50}), memory, fail="workflow")
    await t.start()
    await traffic(t, 40)
    await t.stop()

    (snapshot,) = memory.snapshots
    workflow = snapshot.experiments[EXPERIMENT].variants["workflow"].model_dump()
    assert workflow["success_rate"] == 0.0
    assert workflow["status"] == "healthy"


async def test_a_failing_variant_is_critical() -> None:
    memory = InMemoryExporter()
    t = make(config(), memory, fail="workflow")
    await t.start()
    await traffic(t, 60)
    await t.stop()

    (snapshot,) = memory.snapshots
    variants = {name: v.model_dump() for name, v in snapshot.experiments[EXPERIMENT].variants.items()}
    assert variants["workflow"]["total_requests"] >= 20
    assert variants["workflow"]["status"] == "critical"
    assert variants["workflow"]["status_reason"].startswith("success rate 0.0%")
    assert variants["legacy"]["status"] == "healthy"
    assert snapshot.components["engine.workflow"].status == "critical"


def test_an_unknown_exporter_name_is_a_load_error() -> None:
    from turnout import ConfigError, Turnout

    with pytest.raises(ConfigError) as caught:
        Turnout({"telemetry": {"exporters": ["jsonl", "statsd"]}})
    issue = caught.value.issues[0]
    assert (issue.path, issue.value) == ("telemetry.exporters[1]", "statsd")
    assert "turnout.exporters" in issue.message and "built in: jsonl" in issue.message
