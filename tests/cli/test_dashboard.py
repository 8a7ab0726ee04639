import io
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from turnout.cli.dashboard import dashboard_main, render
from turnout.config import TelemetryConfig, ThresholdsConfig
from turnout.errors import MissingExtraError
from turnout.telemetry.reading import MetricsReader

NOW = datetime(2026, 1, 29, 12, 0, 0, tzinfo=UTC)


def series(
    n: int,
    rate: float = 1.0,
    mean: float = 45.2,
    p50: float = 40.1,
    p95: float = 78.5,
    p99: float = 112.3,
    top: float = 300.0,
    **extra: Any,
) -> dict[str, Any]:
    latency = {"mean": mean, "p50": p50, "p95": p95, "p99": p99, "max": top}
    return {"total_requests": n, "success_rate": rate, "latency_ms": latency, **extra}


def line(stamp: str, process: str = "web:1", components: Any = None, experiments: Any = None) -> str:
    data = {"timestamp": stamp, "interval_s": 10, "process": process}
    data["components"] = components if components is not None else {}
    if experiments is not None:
        data["experiments"] = experiments
    return json.dumps(data) + "\n"


def canary(legacy: dict[str, Any], workflow: dict[str, Any]) -> dict[str, Any]:
    return {"workflow-canary": {"flag": "coordinator", "variants": {"legacy": legacy, "workflow": workflow}}}


def write(path: Path, *lines: str | bytes) -> str:
    path.write_bytes(b"".join(part if isinstance(part, bytes) else part.encode() for part in lines))
    return str(path)


def run(path: str, since: str | None = None, width: int = 140, **kwargs: Any) -> tuple[int, str]:
    out = io.StringIO()
    code = dashboard_main(
        path, since, False, console=Console(file=out, width=width), now=lambda: NOW, **kwargs
    )
    return code, out.getvalue()


def flat(text: str) -> str:
    return " ".join(text.split())


def row(text: str, label: str) -> str:
    """The table row whose first cell is `label`, with cells wrapped onto later lines joined back."""
    lines = text.splitlines()
    start = next(i for i, part in enumerate(lines) if part.startswith("│") and f"│ {label} " in part)
    cells = [cell.strip() for cell in lines[start].split("│")]
    for more in lines[start + 1 :]:
        extra = [cell.strip() for cell in more.split("│")]
        if len(extra) != len(cells) or extra[1]:
            break
        cells = [f"{cell} {add}".strip() for cell, add in zip(cells, extra, strict=True)]
    return " │ ".join(cells)


def test_reproduces_the_hand_written_dashboard(tmp_path: Path) -> None:
    components = {
        "intent.classify": series(1234, 0.985, 45.2, 40.1, 78.5, 112.3),
        "npc.generate": series(1234, 0.972, 1234.5, 900.0, 2456.7, 3102.1, 4000.0),
    }
    path = write(tmp_path / "metrics.jsonl", line("2026-01-29T12:00:00", components=components))
    code, text = run(path)
    assert code == 0
    assert "📊 TURNOUT METRICS DASHBOARD (since process start)" in flat(text)
    intent, npc = row(text, "intent.classify"), row(text, "npc.generate")
    for cell in ("1,234", "98.5%", "45.2ms", "40.1ms", "78.5ms", "112.3ms", "✅ Healthy"):
        assert cell in intent
    for cell in (
        "1,234",
        "97.2%",
        "1,234.5ms",
        "2,456.7ms",
        "3,102.1ms",
        "⚠️ Warning (P99 3,102 ms > 2,000 ms)",
    ):
        assert cell in npc
    assert text.index("intent.classify") < text.index("npc.generate")
    assert "malformed" not in flat(text) and "estimates" not in flat(text)

    code, narrow = run(path, width=80)
    assert code == 0
    assert "📈 npc.generate" in narrow
    assert "   Total Requests: 1,234\n   Success Rate:   97.2%\n   Latency:\n     Mean: 1,234.5ms\n" in narrow
    assert (
        "     P95:  2,456.7ms\n     P99:  3,102.1ms\n   Status: ⚠️ Warning (P99 3,102 ms > 2,000 ms)" in narrow
    )


def test_newest_line_of_a_process_wins_and_processes_add_up(tmp_path: Path) -> None:
    path = write(
        tmp_path / "metrics.jsonl",
        line("2026-01-29T11:59:50Z", "web:1", {"engine.legacy": series(100, 0.5, mean=10.0)}),
        line("2026-01-29T11:59:55Z", "web:2", {"engine.legacy": series(3000, 0.99, mean=20.0)}),
        line("2026-01-29T12:00:00Z", "web:1", {"engine.legacy": series(1000, 0.95, mean=60.0)}),
    )
    code, text = run(path)
    assert code == 0
    legacy = row(text, "engine.legacy")
    assert "4,000" in legacy  # 1,000 (newest of web:1) + 3,000
    assert "98.0%" in legacy  # (950 + 2,970) / 4,000
    assert "30.0ms" in legacy  # (1,000·60 + 3,000·20) / 4,000
    assert "newest snapshot of each process, 2 processes, as of 2026-01-29 12:00:00 UTC" in flat(text)
    assert "P50/P95/P99 merged from several processes are estimates" in flat(text)


def test_since_adds_up_windows_in_range_only(tmp_path: Path) -> None:
    def snap(stamp: str, process: str, n: int, rate: float, p99: float) -> str:
        component = series(10_000, window=series(n, rate, mean=50.0, p99=p99, top=p99 * 2))
        return line(stamp, process, {"engine.workflow": component})

    path = write(
        tmp_path / "metrics.jsonl",
        snap("2026-01-28T11:00:00Z", "web:1", 5000, 0.1, 9000.0),  # more than 24 h old
        snap("2026-01-28T12:30:00Z", "web:1", 100, 1.0, 100.0),
        snap("2026-01-29T06:00:00Z", "web:2", 300, 0.9, 200.0),
        snap("2026-01-29T11:59:50Z", "web:1", 600, 1.0, 150.0),
    )
    code, text = run(path, "24h")
    assert code == 0
    assert "📊 TURNOUT METRICS DASHBOARD (last 24h)" in flat(text)
    assert "3 snapshots, 2 processes" in flat(text)
    workflow = row(text, "engine.workflow")
    assert "1,000" in workflow and "10,000" not in workflow
    assert "97.0%" in workflow  # (100 + 270 + 600) / 1,000
    assert "50.0ms" in workflow and "✅ Healthy" in workflow
    assert "merged from several windows are estimates" in flat(text)

    code, text = run(path, "30m")
    assert code == 0 and "1 snapshot," in flat(text) and "600" in row(text, "engine.workflow")


def test_since_with_nothing_in_range_says_so(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.jsonl", line("2026-01-29T09:00:00Z", components={"a": series(1, window=series(1))})
    )
    code, text = run(path, "90s")
    assert code == 1 and "the newest is from 2026-01-29 09:00:00 UTC." in flat(text)
    write(tmp_path / "m.jsonl", line("2026-01-29T09:00:00Z", components={"a": series(1)}), "{broken\n")
    code, text = run(path, "90s")
    assert code == 1 and "1 malformed line skipped" in flat(text)
    assert "from the last 90s; the newest is from 2026-01-29 09:00:00 UTC." in flat(text)


def test_since_with_lines_without_windows_explains(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", line("2026-01-29T11:00:00", components={"npc.generate": series(5)}))
    code, text = run(path, "7d")
    assert code == 1 and "hold no per-interval `window` figures" in flat(text)


def test_malformed_lines_are_skipped_counted_and_listed(tmp_path: Path) -> None:
    good = line("2026-01-29T11:59:00Z", components={"decide": series(42)})
    bad = [
        "not json at all\n",
        "[1, 2, 3]\n",
        '{"timestamp": "yesterday", "components": {}}\n',
        '{"timestamp": "2026-01-29T11:00:00Z", "components": ["decide"]}\n',
        line("2026-01-29T11:00:00Z", components={"decide": {"total_requests": "many"}}),
        line("2026-01-29T11:00:00Z", components={"decide": series(1, rate=1.5)}),
        b'{"timestamp": "2026-01-29T11:00:00Z", "process": "\xff\xfe"}\n',
        "[" * 100_000 + "\n",
        line("2026-01-29T11:00:00Z", components={"decide": series(1, p99=10**400)}),
    ]
    truncated = line("2026-01-29T11:59:59Z", components={"decide": series(99)})[:70]
    path = write(tmp_path / "m.jsonl", good, "\n", *bad, truncated)
    code, text = run(path)
    assert code == 0
    assert "42" in row(text, "decide") and "99" not in row(text, "decide")
    assert "10 malformed lines skipped (lines 3, 4, 5, 6, 7, …)." in flat(text)
    assert "Traceback" not in flat(text)


def test_a_file_of_only_malformed_lines_shows_nothing(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", '{"timestamp": "2026-01-29T11:00:00Z", "components": {"x": ')
    code, text = run(path)
    assert code == 1
    assert "has no readable snapshot (1 malformed line skipped)" in flat(text)
    assert "1 malformed line skipped (line 1)." in flat(text)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path: Path, content: str) -> None:
    code, text = run(write(tmp_path / "m.jsonl", content))
    assert code == 1 and "is empty: no metrics snapshot has been written yet" in flat(text)


def test_missing_file_and_unreadable_path(tmp_path: Path) -> None:
    code, text = run(str(tmp_path / "logs" / "metrics.jsonl"))
    assert code == 1 and "No metrics file at" in flat(text) and "Traceback" not in flat(text)
    code, text = run(str(tmp_path))
    assert code == 1 and "Cannot read" in flat(text)


@pytest.mark.parametrize(("since", "interval"), [("5x", 2.0), ("-3h", 2.0), (None, 0.0)])
def test_invalid_arguments_exit_2(tmp_path: Path, since: str | None, interval: float) -> None:
    out = io.StringIO()
    code = dashboard_main(str(tmp_path / "m.jsonl"), since, True, interval, console=Console(file=out))
    assert code == 2 and "turnout dashboard: invalid" in out.getvalue()


def test_status_is_recomputed_when_missing_and_kept_when_written(tmp_path: Path) -> None:
    components = {
        "engine.slow": series(10, 0.99, p99=6000.0, top=7000.0),
        "engine.flaky": series(200, 0.93),
        "engine.broken": series(200, 0.5, p99=2500.0, top=2600.0),
        "engine.idle": series(0, rate=None),
        "engine.own": series(10, status="warning", status_reason="guardrail paused"),
        "engine.odd": series(10, status="degraded"),
        "engine.strict": series(10, p99=150.0),
    }
    path = write(tmp_path / "m.jsonl", line("2026-01-29T12:00:00Z", components=components))
    strict = TelemetryConfig(components={"engine.strict": ThresholdsConfig(p99_ms_warning=100.0)})
    code, text = run(path, telemetry=strict)
    assert code == 0
    assert "🔴 Critical (P99 6,000 ms > 5,000 ms)" in row(text, "engine.slow")
    assert "⚠️ Warning (success rate 93.0% < 95.0%)" in row(text, "engine.flaky")
    assert "🔴 Critical (success rate 50.0% < 90.0%; P99 2,500 ms > 2,000 ms)" in row(text, "engine.broken")
    assert "💤 No requests" in row(text, "engine.idle") and "—" in row(text, "engine.idle")
    assert "⚠️ Warning (guardrail paused)" in row(text, "engine.own")
    assert "❔ degraded" in row(text, "engine.odd")
    assert "⚠️ Warning (P99 150 ms > 100 ms)" in row(text, "engine.strict")


def test_experiment_variants_side_by_side(tmp_path: Path) -> None:
    legacy = series(900, 0.99, p99=120.0, exposures=900, errors={"TimeoutError": 3, "ValueError": 1})
    workflow = series(100, 0.93, p99=2500.0, top=2600.0, exposures=100)
    path = write(tmp_path / "m.jsonl", line("2026-01-29T12:00:00Z", experiments=canary(legacy, workflow)))
    code, text = run(path)
    assert code == 0
    assert "🧪 workflow-canary (flag coordinator): each variant" in flat(text)
    header = next(part for part in text.splitlines() if "legacy" in part)
    assert header.index("legacy") < header.index("workflow")
    exposures = row(text, "Exposures")
    assert exposures.index("900") < exposures.rindex("100")
    assert "99.0%" in row(text, "Success") and "93.0%" in row(text, "Success")
    assert "120.0ms" in row(text, "P99") and "2,500.0ms" in row(text, "P99")
    assert "✅ Healthy" in row(text, "Status") and "⚠️ Warning" in row(text, "Status")
    assert "TimeoutError 3, ValueError 1" in row(text, "Errors")
    assert "Components" not in flat(text)


def test_experiments_add_up_across_processes(tmp_path: Path) -> None:
    def snap(process: str, legacy: int, workflow: int) -> str:
        exp = canary(series(legacy, exposures=legacy), series(workflow, 0.9, exposures=workflow))
        return line("2026-01-29T12:00:00Z", process, experiments=exp)

    path = write(tmp_path / "m.jsonl", snap("a:1", 900, 100), snap("b:2", 1800, 300))
    code, text = run(path)
    assert code == 0
    assert "2,700" in row(text, "Exposures") and "400" in row(text, "Exposures")


def test_naive_timestamps_missing_process_and_null_latency(tmp_path: Path) -> None:
    empty = {"total_requests": 5, "success_rate": 1.0, "latency_ms": {"mean": None, "p99": float("nan")}}
    path = write(tmp_path / "m.jsonl", line("2026-01-29T11:59:00", components={"intent.classify": empty}))
    path_text = Path(path).read_text().replace('"process": "web:1", ', "")
    Path(path).write_text(path_text)
    code, text = run(path, "5m")
    assert code == 1  # no window in the line
    code, text = run(path)
    assert code == 0 and "— " in row(text, "intent.classify") and "✅ Healthy" in flat(text)
    assert "1 process, as of 2026-01-29 11:59:00 UTC" in flat(text)


def test_names_are_shown_as_written_not_as_markup(tmp_path: Path) -> None:
    experiments = {"[red]exp:smile:": {"variants": {"[bold]v1": series(1, status="odd [x]")}}}
    components = {"engine.[b]x[/b]": series(1, errors={"Bad[Error]": 2})}
    path = write(
        tmp_path / "m.jsonl", line("2026-01-29T12:00:00Z", components=components, experiments=experiments)
    )
    code, text = run(path)
    assert code == 0
    assert "engine.[b]x[/b]" in text and "Bad[Error] 2" in text
    assert "🧪 [red]exp:smile:" in text and "[bold]v1" in text and "❔ odd [x]" in text


def test_success_rates_never_round_up_to_perfect(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", line("2026-01-29T12:00:00Z", components={"x": series(10_000, 0.9996)}))
    assert "99.9%" in row(run(path)[1], "x")


def test_watch_redraws_until_interrupted(tmp_path: Path) -> None:
    path = write(tmp_path / "m.jsonl", line("2026-01-29T11:59:50Z", components={"decide": series(10)}))
    appended = line("2026-01-29T12:00:00Z", components={"decide": series(7_777)})
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 1:
            with open(path, "a", encoding="utf-8") as file:
                file.write(appended)
        else:
            raise KeyboardInterrupt

    out = io.StringIO()
    code = dashboard_main(path, None, True, 0.5, console=Console(file=out, width=140), sleep=sleep)
    assert code == 0 and sleeps == [0.5, 0.5]
    assert "7,777" in out.getvalue() and "Refreshing every 0.5s; Ctrl-C to quit." in out.getvalue()

    out = io.StringIO()
    code = dashboard_main(
        str(tmp_path / "later.jsonl"), None, True, console=Console(file=out), max_refreshes=1
    )
    assert code == 0 and "No metrics file at" in out.getvalue()


def test_watch_waits_for_a_line_being_written_and_follows_rotation(tmp_path: Path) -> None:
    file = tmp_path / "m.jsonl"
    first = line("2026-01-29T11:59:00Z", components={"decide": series(1)})
    second = line("2026-01-29T11:59:10Z", components={"decide": series(2)})
    write(file, first, second[:40])
    reader = MetricsReader(str(file), now=lambda: NOW)
    assert reader.read(final=False).components["decide"].total_requests == 1
    with open(file, "a", encoding="utf-8") as handle:
        handle.write(second[40:])
    dashboard = reader.read(final=False)
    assert dashboard.components["decide"].total_requests == 2 and dashboard.malformed == 0

    os.replace(
        write(tmp_path / "new.jsonl", line("2026-01-29T11:59:20Z", components={"decide": series(3)})), file
    )
    assert reader.read(final=False).components["decide"].total_requests == 3


def test_watch_with_since_drops_windows_as_time_passes(tmp_path: Path) -> None:
    def snap(stamp: str, n: int) -> str:
        return line(stamp, components={"decide": series(10_000, window=series(n))})

    path = write(tmp_path / "m.jsonl", snap("2026-01-29T11:59:00Z", 10), snap("2026-01-29T11:59:30Z", 20))
    clock = [NOW]
    reader = MetricsReader(path, since="90s", now=lambda: clock[0])
    assert reader.read(final=False).components["decide"].total_requests == 30
    assert reader.read(final=False).components["decide"].total_requests == 30
    clock[0] = datetime(2026, 1, 29, 12, 0, 45, tzinfo=UTC)
    assert reader.read(final=False).components["decide"].total_requests == 20
    with open(path, "a", encoding="utf-8") as file:
        file.write(snap("2026-01-29T12:00:40Z", 5))
    dashboard = reader.read(final=False)
    assert dashboard.components["decide"].total_requests == 25 and dashboard.snapshots == 2

    os.remove(path)  # rotated away, the new file not yet written: keep showing what was read
    assert reader.read(final=False).ok
    clock[0] = datetime(2026, 1, 29, 13, 0, 0, tzinfo=UTC)
    assert "No metrics file at" in str(reader.read(final=False).problem)


def test_needs_rich(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "rich", None)
    with pytest.raises(MissingExtraError, match=r'turnout dashboard needs .*pip install "turnout\[cli\]"'):
        dashboard_main(str(tmp_path / "m.jsonl"), None, False)
    dashboard = MetricsReader(str(tmp_path / "m.jsonl")).read()
    with pytest.raises(MissingExtraError):
        render(dashboard)


def test_watch_piped_prints_each_refresh_and_fits_120_columns(tmp_path: Path) -> None:
    errors = {"errors": {"WorkflowStepError": 3, "LLMError": 2}}
    components = {
        "decide": series(678, mean=0.15, p50=0.12, p95=0.23, p99=0.42),
        "engine.langgraph": series(120, 0.983, 249.2, 146.2, 717.0, 776.7, **errors),
        "engine.workflow": series(54, 0.981, 80.3, 53.8, 197.4, 385.7, **errors),
        "intent.classify": series(600, mean=0.12, p50=0.08, p95=0.16, p99=0.34),
    }
    experiments = canary(series(504, exposures=504, **errors), series(54, exposures=54))
    path = write(
        tmp_path / "m.jsonl", line("2026-01-29T12:00:00Z", components=components, experiments=experiments)
    )
    out = io.StringIO()
    console = Console(file=out, width=120)  # a file: not a terminal, as when piped
    code = dashboard_main(
        path, None, True, 1.0, console=console, sleep=lambda s: None, now=lambda: NOW, max_refreshes=2
    )
    text = out.getvalue()
    assert code == 0
    assert text.count("TURNOUT METRICS DASHBOARD") == 2  # both refreshes, one after the other
    assert max(len(row) for row in text.splitlines()) <= 120
    assert "(within" not in text and "thresholds)" not in text  # no status cut over two lines
    assert "A variant counts its requests, fallback time included; an engine, its calls." in text
