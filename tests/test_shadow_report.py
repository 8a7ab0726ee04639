"""`turnout shadow report`: per-intent agreement and latency difference from metrics.jsonl."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from turnout import Intent, RoutingContext, Turnout
from turnout.analysis import Means, Proportions, compare
from turnout.cli import main
from turnout.shadow_report import IntentResult, shadow_report, wilson


class Keywords:
    def predict(self, text: str) -> Intent:
        return Intent("refund" if "refund" in text else "greeting", 0.9)


async def write_metrics(path: Path) -> None:
    turnout = Turnout(
        {
            "intent": {"enabled": True},
            "telemetry": {"exporters": ["jsonl"], "jsonl_path": str(path), "snapshot_interval_s": 3600},
            "flags": {
                "coordinator": {
                    "variants": ["legacy", "graph"],
                    "default": "legacy",
                    "shadow": {"engine": "graph", "sample": 1, "comparator": "exact"},
                }
            },
            "events": {"enabled": False},
        },
        env={},
        classifier=Keywords(),
    )
    turnout.add_engine("legacy", lambda message: "same")
    turnout.add_engine("graph", lambda message: "same" if "refund" in message else f"other: {message}")
    await turnout.start()
    for index in range(40):
        text = "refund please" if index % 2 else f"hello {index}"
        await turnout.run("coordinator", text, context=RoutingContext(f"u{index}", text=text))
    await turnout.stop()


async def test_the_report_gives_per_intent_match_rates_latency_and_worst_mismatches(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    await write_metrics(path)
    report = shadow_report(path, "coordinator", worst=3)
    assert [row.intent for row in report.rows] == ["greeting", "refund"]
    greeting, refund = report.rows
    assert (greeting.compared, greeting.matches, refund.compared, refund.matches) == (20, 0, 20, 20)
    assert refund.match_ci is not None and refund.match_ci[0] > 0.8
    assert refund.latency_diff_ci is not None
    # The interval is turnout.analysis's comparison of the two engines' latency means.
    expected = compare(
        Means(20, refund.served_sum, refund.served_squares),
        Means(20, refund.shadow_sum, refund.shadow_squares),
    )
    assert refund.latency_diff_ci == expected.ci
    assert refund.latency_diff_ms == pytest.approx(expected.effect)
    (total,) = report.totals()
    assert (total.intent, total.compared, total.matches) == ("all", 40, 20)
    assert len(report.mismatches) == 3
    assert {m["intent"] for m in report.mismatches} == {"greeting"}
    assert report.mismatches[0]["shadow"].startswith("other: hello")


async def test_the_cli_prints_text_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "metrics.jsonl"
    await write_metrics(path)
    assert main(["shadow", "report", "coordinator", str(path)]) == 0
    text = capsys.readouterr().out
    assert "served legacy, shadow graph" in text
    assert "refund" in text and "100% (" in text
    assert "worst mismatches" in text
    assert main(["shadow", "report", "coordinator", str(path), "--format", "json"]) == 0
    data: dict[str, Any] = json.loads(capsys.readouterr().out)
    assert {row["intent"]: row["match_rate"] for row in data["intents"]} == {"greeting": 0.0, "refund": 1.0}
    assert data["totals"][0]["compared"] == 40


async def test_an_unknown_flag_or_missing_file_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "metrics.jsonl"
    await write_metrics(path)
    assert main(["shadow", "report", "nope", str(path)]) == 1
    assert "No shadow figures for flag 'nope'" in capsys.readouterr().out
    assert main(["shadow", "report", "coordinator", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such metrics file" in capsys.readouterr().err


def test_processes_add_up_from_their_newest_lines_and_since_uses_windows(tmp_path: Path) -> None:
    def line(process: str, stamp: str, compared: int, window: int) -> str:
        figures: dict[str, Any] = {"compared": compared, "matches": compared}
        figures["window"] = {"compared": window, "matches": window}
        pair = {"served": "a", "shadow": "b", "intents": {"x": figures}}
        return json.dumps({"timestamp": stamp, "process": process, "shadows": {"f": {"a->b": pair}}})

    path = tmp_path / "metrics.jsonl"
    lines = [
        line("p1", "2026-12-01T10:00:00Z", 5, 5),
        line("p1", "2026-12-01T11:00:00Z", 8, 3),
        line("p2", "2026-12-01T11:00:00Z", 2, 2),
        "{not json",
    ]
    path.write_text("\n".join(lines) + "\n")
    report = shadow_report(path, "f")
    assert report.rows[0].compared == 10
    assert report.malformed == 1
    recent = shadow_report(path, "f", since="90m", now=datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    assert recent.rows[0].compared == 5  # the two windows of the last 90 minutes


def test_wilson_interval() -> None:
    low, high = wilson(Proportions(10, 8)) or (0.0, 0.0)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)
    assert wilson(Proportions(0, 0)) is None
    assert IntentResult("a", "b", "x").latency_diff_ci is None
