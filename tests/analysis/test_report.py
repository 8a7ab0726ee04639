"""`report()`: verdicts, SRM, adjusted p-values and segments on synthetic experiments."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from turnout.analysis import Report, Verdict, default_rule, report, running_experiments
from turnout.analysis.html import render_html
from turnout.analysis.render import render_text
from turnout.config import TurnoutConfig, validate_config
from turnout.events import Event, SQLiteSink

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def config(**experiment: Any) -> TurnoutConfig:
    return validate_config(
        {
            "flags": {
                "coordinator": {
                    "variants": ["legacy", "workflow"],
                    "default": "legacy",
                    "rules": [
                        {"name": "canary", "experiment": "wf", "split": {"legacy": 50, "workflow": 50}},
                    ],
                }
            },
            "metrics": {
                "resolved": {"type": "proportion", "event": "session.resolved", "where": {"success": True}},
                "cost_usd": {"type": "mean", "direction": "decrease"},
            },
            "experiments": {"wf": {"primary": "resolved", "guardrails": ["cost_usd"], **experiment}},
        }
    )


def simulate(
    path: Path,
    *,
    users: dict[str, int],
    resolve: dict[str, float | dict[str, float]],
    cost: dict[str, float],
    seed: int = 3,
) -> str:
    """Exposures, resolutions and recorded costs; `resolve` may differ per intent."""
    rng = random.Random(seed)
    events: list[Event] = []
    intents = ("refund", "order_status", "chitchat")
    for variant, count in users.items():
        for n in range(count):
            user = f"{variant}-{n}"
            seen = START + timedelta(days=n % 5, seconds=n)
            intent = intents[n % 3]
            props = {"experiment": "wf", "flag": "coordinator", "variant": variant, "intent": intent}
            events.append(Event("$exposure", user, props, seen, "exposure"))
            rate = resolve[variant]
            p = rate[intent] if isinstance(rate, dict) else rate
            if rng.random() < p:
                events.append(Event("session.resolved", user, {"success": True}, seen + timedelta(minutes=5)))
            value = rng.gauss(cost[variant], cost[variant] / 4)
            events.append(Event("$record", user, {"cost_usd": value}, seen + timedelta(seconds=20)))
    sink = SQLiteSink(path / "events.db")

    async def write() -> None:
        await sink.write(events)
        await sink.close()

    asyncio.run(write())
    return str(path / "events.db")


def metrics_file(path: Path, figures: dict[str, tuple[int, float, float, float]]) -> str:
    """A metrics.jsonl line per process: variant -> (requests, success rate, mean ms, sd ms)."""
    lines = []
    for process in ("host:1", "host:2"):
        variants = {
            v: {"total_requests": n // 2, "success_rate": rate, "latency_ms": {"mean": mean, "sd": sd}}
            for v, (n, rate, mean, sd) in figures.items()
        }
        line = {"timestamp": "2026-03-05T00:00:00Z", "process": process}
        line["experiments"] = {"wf": {"flag": "coordinator", "variants": variants}}
        lines.append(json.dumps(line))
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return str(path / "metrics.jsonl")


def variant(r: Report, name: str = "workflow") -> Any:
    return next(v for v in r.variants if v.variant == name)


def test_a_clear_winner_ships(tmp_path: Path) -> None:
    events = simulate(
        tmp_path,
        users={"legacy": 1500, "workflow": 1500},
        resolve={"legacy": 0.40, "workflow": 0.50},
        cost={"legacy": 0.010, "workflow": 0.010},
    )
    metrics = metrics_file(tmp_path, {"legacy": (4000, 0.98, 800, 200), "workflow": (4000, 0.985, 790, 200)})
    r = report("wf", config=config(), events=events, metrics_path=metrics)
    wf = variant(r)
    assert wf.verdict.decision == "ship", wf.verdict.reason
    assert "resolved" in wf.verdict.reason
    resolved = wf.metric("resolved")
    assert resolved.role == "primary" and resolved.improved
    assert resolved.relative.effect == pytest.approx(0.25, abs=0.08)
    assert r.users == {"legacy": 1500, "workflow": 1500}
    assert r.srm_p_value == pytest.approx(1.0)
    latency = wf.metric("engine.latency_ms")
    assert latency.unit == "requests" and latency.control.n == 4000 and latency.direction == "decrease"
    assert wf.metric("engine.success").treatment.n == 4000
    # Holm across all metrics: no adjusted p-value is below its raw one
    assert all(m.p_adjusted >= m.absolute.p_value for m in wf.metrics)


def test_a_worse_guardrail_stops_even_when_the_primary_wins(tmp_path: Path) -> None:
    events = simulate(
        tmp_path,
        users={"legacy": 1500, "workflow": 1500},
        resolve={"legacy": 0.40, "workflow": 0.50},
        cost={"legacy": 0.010, "workflow": 0.013},
    )
    r = report("wf", config=config(), events=events, metrics_path=str(tmp_path / "none.jsonl"))
    wf = variant(r)
    assert wf.verdict.decision == "stop"
    assert "guardrail cost_usd" in wf.verdict.reason
    assert wf.metric("cost_usd").worse and wf.metric("cost_usd").chance_to_win < 0.01
    assert any("engine metrics" in note for note in r.notes)


def test_sample_ratio_mismatch_stops(tmp_path: Path) -> None:
    events = simulate(
        tmp_path,
        users={"legacy": 1500, "workflow": 1200},
        resolve={"legacy": 0.40, "workflow": 0.40},
        cost={"legacy": 0.010, "workflow": 0.010},
    )
    r = report("wf", config=config(), events=events, metrics_path=str(tmp_path / "none.jsonl"))
    assert r.srm_p_value is not None and r.srm_p_value < 0.001
    assert variant(r).verdict.decision == "stop"
    assert "sample ratio mismatch" in variant(r).verdict.reason


def test_no_difference_keeps_running_and_says_how_many_more_users(tmp_path: Path) -> None:
    events = simulate(
        tmp_path,
        users={"legacy": 400, "workflow": 400},
        resolve={"legacy": 0.40, "workflow": 0.41},
        cost={"legacy": 0.010, "workflow": 0.010},
    )
    r = report("wf", config=config(), events=events, metrics_path=str(tmp_path / "none.jsonl"))
    wf = variant(r)
    assert wf.verdict.decision == "keep running"
    assert wf.units_needed is not None and wf.units_needed > 5000
    assert wf.verdict.more_units_needed == wf.units_needed - 400
    assert "more users per variant" in wf.verdict.reason


def test_too_few_users_keep_running_whatever_the_numbers(tmp_path: Path) -> None:
    events = simulate(
        tmp_path,
        users={"legacy": 40, "workflow": 40},
        resolve={"legacy": 0.1, "workflow": 0.9},
        cost={"legacy": 0.010, "workflow": 0.010},
    )
    r = report("wf", config=config(), events=events, metrics_path=str(tmp_path / "none.jsonl"))
    assert variant(r).verdict.decision == "keep running"
    assert "at least 100" in variant(r).verdict.reason


def test_a_custom_rule_and_the_improvement_threshold(tmp_path: Path) -> None:
    events = simulate(
        tmp_path,
        users={"legacy": 1500, "workflow": 1500},
        resolve={"legacy": 0.40, "workflow": 0.50},
        cost={"legacy": 0.010, "workflow": 0.010},
    )
    strict = report("wf", config=config(min_improvement=0.5), events=events, metrics_path="none")
    assert variant(strict).verdict.decision == "keep running"
    assert "less than the 50% improvement" in variant(strict).verdict.reason

    def never(v: Any, r: Report) -> Verdict:
        decided = default_rule(v, r)
        return Verdict("keep running", f"review by hand ({decided.decision})")

    custom = report("wf", config=config(), events=events, metrics_path="none", rule=never)
    assert variant(custom).verdict.reason == "review by hand (ship)"


def test_per_intent_winners_become_suggested_rules(tmp_path: Path) -> None:
    events = simulate(
        tmp_path,
        users={"legacy": 3000, "workflow": 3000},
        resolve={
            "legacy": {"refund": 0.30, "order_status": 0.60, "chitchat": 0.5},
            "workflow": {"refund": 0.55, "order_status": 0.45, "chitchat": 0.5},
        },
        cost={"legacy": 0.010, "workflow": 0.010},
    )
    r = report("wf", config=config(), events=events, metrics_path="none", by="intent")
    segments = {(s.segment, s.result.metric) for s in r.segments}
    assert ("refund", "resolved") in segments and ("chitchat", "cost_usd") in segments
    by_segment = {s.segment: s for s in r.suggestions}
    assert set(by_segment) == {"refund", "order_status"}
    assert by_segment["refund"].variant == "workflow"
    assert by_segment["order_status"].variant == "legacy"
    rule = by_segment["refund"].toml
    assert 'when = { intent = "refund" }' in rule and 'serve = "workflow"' in rule
    assert rule.splitlines()[1] == "[[flags.coordinator.rules]]"
    parsed = validate_config(
        {
            "flags": {
                "coordinator": {
                    "variants": ["legacy", "workflow"],
                    "default": "legacy",
                    "rules": [_toml_rule(rule)],
                }
            }
        }
    )
    assert parsed.flags["coordinator"].rules[0].serve == "workflow"
    text = render_text(r)
    assert "suggested routing rules" in text and "for intent 'refund', workflow does" in text


def _toml_rule(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)["flags"]["coordinator"]["rules"][0]  # type: ignore[no-any-return]


def test_text_json_and_html_renderings(tmp_path: Path) -> None:
    events = simulate(
        tmp_path,
        users={"legacy": 600, "workflow": 600},
        resolve={"legacy": 0.40, "workflow": 0.45},
        cost={"legacy": 0.010, "workflow": 0.011},
    )
    metrics = metrics_file(tmp_path, {"legacy": (4000, 0.98, 800, 200), "workflow": (4000, 0.97, 900, 250)})
    r = report("wf", config=config(), events=events, metrics_path=metrics, by="intent")
    text = render_text(r)
    assert text.startswith("experiment wf (flag coordinator): workflow against control legacy")
    assert "engine.latency_ms (per request)" in text
    data = json.loads(json.dumps(r.to_dict(), allow_nan=False))
    assert data["variants"][0]["verdict"]["decision"] in ("ship", "stop", "keep running")
    assert data["variants"][0]["metrics"][0]["control"]["type"] == "proportion"
    page = render_html(r)
    assert page.startswith("<!doctype html>") and page.count("<svg") >= 3
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_running_experiments_and_an_experiment_without_data(tmp_path: Path) -> None:
    assert running_experiments(config()) == ["wf"]
    r = report("wf", config=config(), events=str(tmp_path / "missing.db"), metrics_path="none")
    assert [(v.variant, v.users, v.metrics) for v in r.variants] == [("workflow", 0, ())]
    assert variant(r).verdict.decision == "keep running"
    assert any("events not read" in note for note in r.notes)
    assert "no metric has data" in render_text(r)


def test_without_experiment_settings_engine_success_decides(tmp_path: Path) -> None:
    bare = validate_config(
        {
            "flags": {
                "coordinator": {
                    "variants": ["legacy", "workflow"],
                    "default": "legacy",
                    "rules": [
                        {"name": "canary", "experiment": "wf", "split": {"legacy": 50, "workflow": 50}}
                    ],
                }
            }
        }
    )
    events = simulate(
        tmp_path,
        users={"legacy": 500, "workflow": 500},
        resolve={"legacy": 0.4, "workflow": 0.4},
        cost={"legacy": 0.01, "workflow": 0.01},
    )
    metrics = metrics_file(tmp_path, {"legacy": (20000, 0.95, 800, 200), "workflow": (20000, 0.80, 700, 200)})
    r = report("wf", config=bare, events=events, metrics_path=metrics)
    wf = variant(r)
    assert [(m.metric, m.role) for m in wf.metrics] == [
        ("engine.success", "primary"),
        ("engine.latency_ms", "guardrail"),
    ]
    assert wf.verdict.decision == "stop" and "primary engine.success" in wf.verdict.reason


def test_an_older_sqlite_file_gets_the_exposure_index(tmp_path: Path) -> None:
    import sqlite3

    events = simulate(
        tmp_path,
        users={"legacy": 20, "workflow": 20},
        resolve={"legacy": 0.4, "workflow": 0.4},
        cost={"legacy": 1.0, "workflow": 1.0},
    )
    with sqlite3.connect(events) as db:
        db.execute("DROP INDEX idx_analytics_events_exposure")
    report("wf", config=config(), events=events, metrics_path="none")
    with sqlite3.connect(events) as db:
        names = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "idx_analytics_events_exposure" in names


def test_no_rule_is_suggested_for_a_segment_with_too_few_users(tmp_path: Path) -> None:
    events = simulate(
        tmp_path,
        users={"legacy": 3000, "workflow": 3000},
        resolve={
            "legacy": {"refund": 0.30, "order_status": 0.60, "chitchat": 0.5},
            "workflow": {"refund": 0.55, "order_status": 0.45, "chitchat": 0.5},
        },
        cost={"legacy": 0.010, "workflow": 0.010},
    )
    r = report("wf", config=config(min_users=1001), events=events, metrics_path="none", by="intent")
    assert any(s.result.significant for s in r.segments)
    assert r.suggestions == ()


def test_text_fits_a_terminal_when_given_its_width(tmp_path: Path) -> None:
    events = simulate(
        tmp_path,
        users={"legacy": 900, "workflow": 900},
        resolve={"legacy": {"refund": 0.3, "order_status": 0.6, "chitchat": 0.5}, "workflow": 0.5},
        cost={"legacy": 0.010, "workflow": 0.012},
    )
    metrics = metrics_file(tmp_path, {"legacy": (4000, 0.98, 800, 200), "workflow": (4000, 0.97, 900, 250)})
    r = report("wf", config=config(), events=events, metrics_path=metrics, by="intent")
    narrow = render_text(r, width=80)
    assert max(len(line) for line in narrow.splitlines()) <= 80
    assert "  resolved (primary)" in narrow and "change " in narrow and "P(better)" in narrow
    wide = render_text(r)
    assert max(len(line) for line in wide.splitlines()) > 80  # one row per metric
    assert render_text(r, width=400) == wide
