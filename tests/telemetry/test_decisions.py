"""Decisions per flag and reason: counted on the decision path, written in every metrics line."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from pathlib import Path

from turnout import RoutingContext, Turnout
from turnout.decision import Reason
from turnout.telemetry.decisions import DecisionCounter
from turnout.telemetry.reading import MetricsReader


def test_totals_grow_and_a_window_holds_only_what_came_since_the_last_snapshot() -> None:
    counter = DecisionCounter()
    for _ in range(3):
        counter.count("coordinator", Reason.SPLIT)
    counter.count("coordinator", Reason.DEFAULT)
    assert counter.take() == {
        "coordinator": {"DEFAULT": {"total": 1, "window": 1}, "SPLIT": {"total": 3, "window": 3}}
    }
    counter.count("coordinator", Reason.SPLIT)
    live = counter.take(reset_window=False)
    assert live["coordinator"]["SPLIT"] == {"total": 4, "window": 1}
    assert counter.take()["coordinator"] == {
        "DEFAULT": {"total": 1, "window": 0},
        "SPLIT": {"total": 4, "window": 1},
    }
    assert counter.take()["coordinator"]["SPLIT"] == {"total": 4, "window": 0}


def test_counts_from_many_threads_add_up_exactly() -> None:
    counter = DecisionCounter()

    def work() -> None:
        for _ in range(20_000):
            counter.count("coordinator", Reason.SPLIT)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.take()["coordinator"]["SPLIT"]["total"] == 80_000


def test_distinct_flags_are_bounded_and_the_rest_are_counted_as_dropped() -> None:
    counter = DecisionCounter(max_flags=2)
    for name in ("a", "b", "c", "a"):
        counter.count(name, Reason.ERROR)
    counter.count("b", Reason.DEFAULT)  # a known flag may still gain reasons
    assert set(counter.take()) == {"a", "b"}
    assert counter.take()["b"] == {"DEFAULT": {"total": 1, "window": 0}, "ERROR": {"total": 1, "window": 0}}
    assert counter.dropped == 1


def _turnout(tmp_path: Path) -> Turnout:
    return Turnout(
        {
            "flags": {
                "coordinator": {
                    "variants": ["legacy", "workflow"],
                    "default": "legacy",
                    "overrides": {"qa": "workflow"},
                    "rules": [
                        {"name": "vip", "when": {"plan": "vip"}, "serve": "workflow"},
                        {"name": "canary", "split": {"legacy": 50, "workflow": 50}},
                    ],
                }
            },
            "telemetry": {"exporters": [], "jsonl_path": str(tmp_path / "metrics.jsonl")},
        },
        env={},
    )


def test_every_decision_is_counted_under_its_reason_and_written_in_the_metrics_line(tmp_path: Path) -> None:
    turnout = _turnout(tmp_path)
    for index in range(10):
        turnout.decide("coordinator", RoutingContext(f"user-{index}"))
    turnout.decide("coordinator", RoutingContext("someone", {"plan": "vip"}))
    turnout.decide("coordinator", RoutingContext("qa"))
    turnout.decide("no-such-flag", RoutingContext("user-1"))

    snapshot = turnout.telemetry.take()
    assert snapshot.decisions["coordinator"] == {
        "OVERRIDE": {"total": 1, "window": 1},
        "SPLIT": {"total": 10, "window": 10},
        "TARGETING_MATCH": {"total": 1, "window": 1},
    }
    assert snapshot.decisions["no-such-flag"] == {"ERROR": {"total": 1, "window": 1}}
    assert json.loads(snapshot.model_dump_json())["decisions"]["coordinator"]["SPLIT"]["total"] == 10

    live = turnout.telemetry.live()["decisions"]
    assert live["coordinator"]["SPLIT"] == {"total": 10, "window": 0}


async def test_a_fallback_is_counted_when_the_chosen_engine_fails(tmp_path: Path) -> None:
    turnout = Turnout(
        {
            "engines": {"workflow": {"fallback": "legacy"}},
            "flags": {"coordinator": {"variants": ["legacy", "workflow"], "default": "workflow"}},
            "telemetry": {"exporters": []},
        },
        env={},
    )
    turnout.add_engine("legacy", lambda message: "legacy")

    def workflow(message: str) -> str:
        raise RuntimeError("down")

    turnout.add_engine("workflow", workflow)
    assert await turnout.run("coordinator", "hi", context=RoutingContext("u1")) == "legacy"
    assert turnout.telemetry.take().decisions["coordinator"] == {
        "DEFAULT": {"total": 1, "window": 1},
        "FALLBACK": {"total": 1, "window": 1},
    }


def test_the_reader_adds_decisions_up_and_reads_lines_written_before_they_existed(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"

    def line(stamp: str, process: str, total: int, window: int) -> str:
        decisions = {"coordinator": {"SPLIT": {"total": total, "window": window}}}
        return json.dumps({"timestamp": stamp, "process": process, "components": {}, "decisions": decisions})

    old = json.dumps({"timestamp": "2026-01-29T11:59:00Z", "process": "web:3", "components": {}})
    path.write_text(
        "\n".join(
            [
                old,
                line("2026-01-29T11:59:40Z", "web:1", 90, 30),
                line("2026-01-29T11:59:50Z", "web:1", 100, 10),
                line("2026-01-29T11:59:50Z", "web:2", 7, 7),
            ]
        )
        + "\n"
    )
    latest = MetricsReader(str(path)).read()
    assert latest.decisions == {"coordinator": {"SPLIT": 107}}  # newest line of each process

    reader = MetricsReader(str(path), since="5m", now=lambda: datetime(2026, 1, 29, 12, 0, tzinfo=UTC))
    assert reader.read().decisions == {"coordinator": {"SPLIT": 47}}  # the windows in range
    assert reader.history()[0].decisions == {}  # the line from before decisions
