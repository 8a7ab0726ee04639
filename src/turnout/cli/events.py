"""`turnout events summary [URL] [--since 30d]`: what the events table holds, drawn with rich.

Totals and distinct users per event name, events per UTC day with the busiest names as
columns, and — when support-bot events are there — the support-bot rates.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import datetime
from typing import TYPE_CHECKING

from turnout.config import parse_duration
from turnout.errors import MissingExtraError, TurnoutError, redact
from turnout.events.stats import Count, EventStats, EventsUnavailable, Numbers, Rate
from turnout.events.support import support_figures

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

__all__ = ["summary_main"]

DEFAULT_SINCE = "30d"
_TOP = 10
_DAY_COLUMNS = 5


def summary_main(url: str, since: str | None, console: Console | None = None) -> int:
    """Print the summary of the events at `url` since `since` (default 30d); 0 if there was something.

    Exit codes: 0 printed, 1 nothing to show (no database, no events) or unreachable, 2 bad input.
    """
    try:
        from rich.console import Console
        from rich.text import Text
    except ImportError as exc:
        raise MissingExtraError("cli", "rich", "turnout events summary") from exc

    console = console or Console()
    since = since or DEFAULT_SINCE
    where = redact(url)
    try:
        stats = EventStats.open(url)
    except EventsUnavailable as exc:
        console.print(Text(f"turnout events summary: {exc}", style="yellow"))
        return 1
    except (TurnoutError, ValueError, TypeError) as exc:
        console.print(Text(f"turnout events summary: {exc}", style="red"))
        return 2
    with stats:
        try:
            span = stats.span(since=since)
        except ValueError:
            why = "expected a duration such as 30d or 12h, or an ISO date such as 2026-01-01"
            console.print(Text(f"turnout events summary: invalid --since {since!r}: {why}", style="red"))
            return 2
        if not stats.exists():
            console.print(
                Text(
                    f"No events yet in {where}: the table {stats.table} has not been created.", style="yellow"
                )
            )
            return 1
        if span is None:
            newest = stats.span()
            later = f"; the newest is from {newest[1]:%Y-%m-%d %H:%M:%S} UTC" if newest else " (it is empty)"
            console.print(Text(f"No events in {where} {_period(since)}{later}.", style="yellow"))
            return 1
        _print(console, stats, since, where, span)
    return 0


def _print(
    console: Console, stats: EventStats, since: str, where: str, span: tuple[datetime, datetime]
) -> None:
    from rich.text import Text

    totals = stats.counts(by=None, since=since)
    users = {row.event: row.count for row in stats.counts(by=None, since=since, unit="users")}
    total = sum(row.count for row in totals)
    oldest, newest = span
    console.print(Text(f"turnout events · {where} · {_period(since)}", style="bold"))
    console.print(
        f"{total:,} events from {stats.count(unit='users', since=since):,} users · "
        f"{oldest:%Y-%m-%d %H:%M} → {newest:%Y-%m-%d %H:%M} UTC · {stats.backend}"
    )
    console.print(_top_table(totals, users, total))
    console.print(_day_table(stats, since, totals))
    rates = _rates(stats, since)
    if rates is not None:
        console.print(rates)


def _top_table(totals: list[Count], users: dict[str, int], total: int) -> Table:
    from rich.table import Table

    table = Table(title="Top events", title_justify="left")
    for header in ("event", "events", "users", "share"):
        table.add_column(header, justify="left" if header == "event" else "right")
    ranked = sorted(totals, key=lambda row: (-row.count, row.event))
    for row in ranked[:_TOP]:
        table.add_row(row.event, f"{row.count:,}", f"{users.get(row.event, 0):,}", f"{row.count / total:.1%}")
    if len(ranked) > _TOP:
        rest = sum(row.count for row in ranked[_TOP:])
        table.add_row(f"… {len(ranked) - _TOP} more", f"{rest:,}", "", f"{rest / total:.1%}", style="dim")
    return table


def _day_table(stats: EventStats, since: str, totals: list[Count]) -> Table:
    from rich.table import Table

    busiest = [row.event for row in sorted(totals, key=lambda row: (-row.count, row.event))[:_DAY_COLUMNS]]
    days: dict[str, Counter[str]] = defaultdict(Counter)
    for row in stats.counts(by="day", since=since):
        days[row.period or ""][row.event] += row.count
    table = Table(title="Per day (UTC)", title_justify="left")
    table.add_column("day")
    table.add_column("total", justify="right")
    for name in busiest:
        table.add_column(name, justify="right")
    if len(totals) > len(busiest):
        table.add_column("other", justify="right")
    for day in sorted(days):
        counts = days[day]
        cells = [f"{counts[name]:,}" for name in busiest]
        if len(totals) > len(busiest):
            cells.append(f"{sum(counts.values()) - sum(counts[name] for name in busiest):,}")
        table.add_row(day, f"{sum(counts.values()):,}", *cells)
    return table


def _rates(stats: EventStats, since: str) -> Table | None:
    """The support-bot figures, for those whose events exist."""
    from rich.table import Table

    figures = support_figures(stats, since=since)
    rows: list[tuple[str, str, str]] = []

    def rate(label: str, value: Rate, how: str) -> None:
        if value.denominator:
            rows.append((label, f"{value.value:.1%}", f"{how} ({value.numerator:,} / {value.denominator:,})"))

    def mean(label: str, numbers: Numbers | None, unit: str, how: str) -> None:
        if numbers is not None:
            digits = 0 if unit == "ms" else 1
            rows.append((label, f"{numbers.mean:,.{digits}f} {unit}", f"{how} (n={numbers.count:,})"))

    rate("AI resolution rate", figures.ai_resolution, "sessions not escalated / sessions")
    rate("Escalation rate", figures.escalation, "sessions escalated / sessions")
    mean("Avg response time", figures.response_ms, "ms", "session.message response_time_ms")
    rate("Order query success", figures.order_success, "query.order with success=true")
    rate("Tracking query success", figures.tracking_success, "query.tracking with success=true")
    if figures.sessions_handled:
        rows.append(("Sessions handled by agents", f"{figures.sessions_handled:,}", "agent.session_takeover"))
    mean("Avg first response", figures.first_response_ms, "ms", "agent.session_takeover first_response_ms")
    mean("Avg handle time", figures.handle_time_s, "s", "agent.session_release handle_duration_seconds")
    rate("Transfer rate", figures.transfer, "sessions transferred / sessions handled")
    rate("Ticket resolution rate", figures.tickets, "ticket.closed / ticket.created")
    mean("Avg ticket resolution", figures.resolution_hours, "h", "ticket.closed resolution_hours")
    rate("Ticket SLA met", figures.sla_met, "ticket.closed with sla_met=true")
    if not rows:
        return None
    table = Table(title="Support-bot metrics (rates over distinct sessions)", title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("from", style="dim")
    for row in rows:
        table.add_row(*row)
    return table


def _period(since: str) -> str:
    try:
        parse_duration(since)
    except ValueError:
        return f"since {since}"
    return f"from the last {since}"
