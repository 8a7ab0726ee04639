"""`turnout dashboard`: per-component and per-variant health from metrics.jsonl, drawn with rich."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from turnout.config import TelemetryConfig
from turnout.errors import MissingExtraError
from turnout.telemetry.figures import Dashboard, Experiment, Figures
from turnout.telemetry.reading import MetricsReader

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
    from rich.table import Table
    from rich.text import Text

__all__ = ["dashboard_main", "render"]

_STATUS = {
    "healthy": ("✅ Healthy", "green"),
    "warning": ("⚠️ Warning", "yellow"),
    "critical": ("🔴 Critical", "bold red"),
    "idle": ("💤 No requests", "dim"),
}
_LATENCY = (("Mean", "mean"), ("P50", "p50"), ("P95", "p95"), ("P99", "p99"))
_VARIANT_VS_ENGINE = "A variant counts its requests, fallback time included; an engine, its calls."
_TABLE_MIN_WIDTH = 110  # below this the components are listed one under another


def dashboard_main(
    path: str,
    since: str | None,
    watch: bool,
    interval_s: float = 2.0,
    console: Console | None = None,
    *,
    telemetry: TelemetryConfig | None = None,
    now: Callable[[], datetime] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    max_refreshes: int | None = None,
    rollouts: Callable[[], list[str]] | None = None,
) -> int:
    """Show the dashboard once (exit 1 if there is nothing to show) or, with `watch`, until Ctrl-C.

    `telemetry` supplies health thresholds (defaults otherwise); `now`, `sleep` and
    `max_refreshes` exist so tests can drive the clock and the watch loop. `rollouts` gives the
    guarded rollouts' status, shown under the experiments.
    """
    _require_rich()
    from rich.console import Console
    from rich.live import Live
    from rich.rule import Rule
    from rich.text import Text

    console = console or Console()
    if interval_s <= 0:
        console.print(
            Text(f"turnout dashboard: invalid interval {interval_s}: must be positive", style="red")
        )
        return 2
    try:
        reader = MetricsReader(path, since=since, now=now, telemetry=telemetry)
    except ValueError as exc:
        console.print(Text(f"turnout dashboard: invalid --since {since!r}: {exc}", style="red"))
        return 2

    def statuses() -> list[str]:
        return rollouts() if rollouts is not None else []

    if not watch:
        dashboard = reader.read(final=True)
        console.print(render(dashboard, rollouts=statuses()))
        return 0 if dashboard.ok else 1
    refreshes = 1
    try:
        if not console.is_terminal:
            # Piped or redirected: no cursor to move back, so each refresh is printed after the last.
            console.print(render(reader.read(final=False), watching=interval_s, rollouts=statuses()))
            while max_refreshes is None or refreshes < max_refreshes:
                sleep(interval_s)
                console.print(Rule(style="dim"))
                console.print(render(reader.read(final=False), watching=interval_s, rollouts=statuses()))
                console.file.flush()
                refreshes += 1
            return 0
        first = render(reader.read(final=False), watching=interval_s, rollouts=statuses())
        with Live(first, console=console) as live:
            while max_refreshes is None or refreshes < max_refreshes:
                sleep(interval_s)
                view = render(reader.read(final=False), watching=interval_s, rollouts=statuses())
                live.update(view, refresh=True)
                refreshes += 1
    except KeyboardInterrupt:
        pass
    return 0


def render(
    dashboard: Dashboard, *, watching: float | None = None, rollouts: Sequence[str] = ()
) -> RenderableType:
    """The whole dashboard as one rich renderable: header, tables, footnotes."""
    _require_rich()
    from rich.console import Group
    from rich.text import Text

    scope = f"last {dashboard.since}" if dashboard.since else "since process start"
    parts: list[RenderableType] = [Text(f"📊 TURNOUT METRICS DASHBOARD ({scope})", style="bold")]
    if dashboard.problem:
        parts.append(Text(dashboard.problem, style="yellow"))
    else:
        parts.append(Text(_describe_sources(dashboard), style="dim"))
        if dashboard.components:
            parts.append(_Components(dashboard))
        parts += [_experiment_table(name, exp) for name, exp in dashboard.experiments.items()]
        if dashboard.experiments and dashboard.components:
            parts.append(Text(_VARIANT_VS_ENGINE, style="dim"))
    if rollouts:
        parts.append(Text("🚦 ROLLOUTS", style="bold"))
        parts += [Text(status) for status in rollouts]
    parts += [Text(note, style="dim") for note in _footnotes(dashboard)]
    if watching is not None:
        parts.append(Text(f"Refreshing every {watching:g}s; Ctrl-C to quit.", style="dim"))
    return Group(*parts)


def _describe_sources(dashboard: Dashboard) -> str:
    count, newest = len(dashboard.processes), max(dashboard.processes.values())
    processes = f"{count} process{'es' if count != 1 else ''}"
    what = (
        f"{dashboard.snapshots:,} snapshot{_s(dashboard.snapshots)}"
        if dashboard.since
        else "newest snapshot of each process"
    )
    # Two lines, so a long path never wraps the sentence in the middle.
    return f"{dashboard.path}\n{what}, {processes}, as of {_time(newest)}"


class _Components:
    """A table of components on a wide terminal, a list on a narrow one."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.components = dashboard.components

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if options.max_width >= _TABLE_MIN_WIDTH:
            yield self._table()
            return
        from rich.text import Text

        for name, figures in self.components.items():
            yield Text.assemble("📈 ", (name, "bold cyan"))
            yield Text(f"   Total Requests: {_int(figures.total_requests)}")
            yield Text(f"   Success Rate:   {_rate(figures.success_rate)}")
            yield Text("   Latency:")
            for label, key in _LATENCY:
                yield Text(f"     {label + ':':<5} {_ms(getattr(figures.latency, key))}")
            yield Text.assemble("   Status: ", _status(figures))
            if figures.errors:
                yield Text.assemble("   Errors: ", _errors(figures))

    def _table(self) -> Table:
        from rich.table import Table
        from rich.text import Text

        table = Table(
            title="Components: requests, success, latency", title_justify="left", title_style="bold"
        )
        table.add_column("Component", style="bold cyan", no_wrap=True)
        for heading in ("Requests", "Success", *(label for label, _ in _LATENCY)):
            table.add_column(heading, justify="right", no_wrap=True)
        table.add_column("Status", min_width=14)
        show_errors = any(figures.errors for figures in self.components.values())
        if show_errors:
            table.add_column("Errors", max_width=30)
        for name, figures in self.components.items():
            cells: list[str | Text] = [Text(name), _int(figures.total_requests), _rate(figures.success_rate)]
            cells += [_ms(getattr(figures.latency, key)) for _, key in _LATENCY]
            cells += [_status(figures), _errors(figures)] if show_errors else [_status(figures)]
            table.add_row(*cells)
        return table


def _experiment_table(name: str, experiment: Experiment) -> RenderableType:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    flag = f" (flag {experiment.flag})" if experiment.flag else ""
    # A line of its own, not the table's title: a title wraps to the width of a narrow table.
    title = Text(f"🧪 {name}{flag}: each variant", style="bold")
    table = Table()
    table.add_column("", style="bold")
    variants = experiment.variants
    for variant in variants:
        table.add_column(Text(variant), justify="right", header_style="bold cyan", max_width=32)
    rows: list[tuple[str, Callable[[Figures], str | Text]]] = [
        ("Exposures", lambda f: "—" if f.exposures is None else _int(f.exposures)),
        ("Requests", lambda f: _int(f.total_requests)),
        ("Success", lambda f: _rate(f.success_rate)),
        *((label, lambda f, key=key: _ms(getattr(f.latency, key))) for label, key in _LATENCY),
        ("Status", _status),
        ("Errors", _errors),
    ]
    for label, cell in rows:
        table.add_row(label, *(cell(figures) for figures in variants.values()))
    return Group(title, table)


def _footnotes(dashboard: Dashboard) -> list[str]:
    notes = []
    if dashboard.ok and dashboard.estimated_percentiles:
        merged = "windows" if dashboard.since else "processes"
        notes.append(
            f"P50/P95/P99 merged from several {merged} are estimates: each one's distribution is"
            " interpolated through its percentiles and mixed by request count (mean, success and"
            " counts are exact)."
        )
    if dashboard.malformed:
        lines = ", ".join(str(n) for n in dashboard.malformed_lines)
        more = ", …" if dashboard.malformed > len(dashboard.malformed_lines) else ""
        notes.append(
            f"{dashboard.malformed:,} malformed line{_s(dashboard.malformed)} skipped"
            f" (line{_s(dashboard.malformed)} {lines}{more})."
        )
    return notes


def _status(figures: Figures) -> Text:
    from rich.text import Text

    label, style = _STATUS.get(figures.status or "", (f"❔ {figures.status}", "magenta"))
    # "Healthy (within thresholds)" says nothing more than "Healthy"; a breach says which one.
    reason = f" ({figures.status_reason})" if figures.status_reason and figures.status != "healthy" else ""
    return Text(label + reason, style=style)


def _errors(figures: Figures) -> Text:
    from rich.text import Text

    ranked = sorted(figures.errors.items(), key=lambda item: (-item[1], item[0]))
    shown = ", ".join(f"{kind} {count:,}" for kind, count in ranked[:2])
    return Text(shown + (", …" if len(ranked) > 2 else ""))


def _int(value: int) -> str:
    return f"{value:,}"


def _rate(value: float | None) -> str:
    if value is None:
        return "—"
    # 99.96 % must not read as a perfect 100.0 %.
    return "99.9%" if 0.999 <= value < 1 else f"{value:.1%}"


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    # Decisions and classifications take microseconds: keep two significant digits there.
    return f"{value:,.1f}ms" if value >= 10 or value == 0 else f"{value:.2g}ms"


def _time(stamp: datetime) -> str:
    return stamp.strftime("%Y-%m-%d %H:%M:%S %Z").strip()


def _s(count: int) -> str:
    return "" if count == 1 else "s"


def _require_rich() -> None:
    try:
        import rich  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("cli", "rich", "turnout dashboard") from exc
