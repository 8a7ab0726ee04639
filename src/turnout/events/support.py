"""The support-bot figures, computed one way for `turnout events summary` and the case study.

The event names are the usual support-bot taxonomy: `session.start`, `session.message`
(`response_time_ms`), `session.escalate`, `query.order` / `query.tracking` (`success`),
`agent.session_takeover` (`first_response_ms`), `agent.session_release`
(`handle_duration_seconds`), `agent.session_transfer`, `ticket.created` and `ticket.closed`
(`resolution_hours`, `sla_met`). Session rates count distinct sessions: a session that
escalates twice is one escalated session, and a rate never exceeds 100%.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

from turnout.events.stats import EventStats, Moment, Numbers, Rate

__all__ = ["SupportFigures", "support_figures"]


class _Period(TypedDict):
    since: Moment
    until: Moment
    month: str | None


@dataclass(frozen=True, slots=True)
class SupportFigures:
    """The AI chat, agent workbench and ticket figures of one period."""

    escalation: Rate
    """Sessions that escalated to a person / sessions started."""
    response_ms: Numbers | None
    """`response_time_ms` of the AI's messages."""
    order_success: Rate
    """`query.order` events with success=true / all of them."""
    tracking_success: Rate
    """`query.tracking` events with success=true / all of them."""
    sessions_handled: int
    """Distinct sessions an agent took over."""
    first_response_ms: Numbers | None
    """An agent's first response time after a takeover."""
    handle_time_s: Numbers | None
    """`handle_duration_seconds` of the sessions agents released."""
    transfer: Rate
    """Sessions transferred to another agent / sessions handled."""
    tickets: Rate
    """Tickets closed / tickets created (the ticket resolution rate)."""
    resolution_hours: Numbers | None
    """`resolution_hours` of the tickets closed."""
    sla_met: Rate
    """Tickets closed within their SLA / tickets closed."""

    @property
    def sessions(self) -> int:
        """Sessions started."""
        return self.escalation.denominator

    @property
    def escalated(self) -> int:
        """Of those, the sessions that escalated."""
        return self.escalation.numerator

    @property
    def ai_resolution(self) -> Rate:
        """Sessions the AI resolved alone (not escalated) / sessions started."""
        return Rate(self.sessions - self.escalated, self.sessions)


def support_figures(
    stats: EventStats, *, since: Moment = None, until: Moment = None, month: str | None = None
) -> SupportFigures:
    """Every support-bot figure of the period (`since`/`until`, or `month="YYYY-MM"`)."""
    period = _Period(since=since, until=until, month=month)

    def mean(key: str, event: str) -> Numbers | None:
        found = stats.numbers(key, events=[event], **period)
        return found[0] if found else None

    def success(event: str) -> Rate:
        return stats.rate(event, event, where={"success": True}, **period)

    return SupportFigures(
        escalation=stats.rate("session.escalate", "session.start", unit="sessions", **period),
        response_ms=mean("response_time_ms", "session.message"),
        order_success=success("query.order"),
        tracking_success=success("query.tracking"),
        sessions_handled=stats.count("agent.session_takeover", unit="sessions", **period),
        first_response_ms=mean("first_response_ms", "agent.session_takeover"),
        handle_time_s=mean("handle_duration_seconds", "agent.session_release"),
        transfer=stats.rate("agent.session_transfer", "agent.session_takeover", unit="sessions", **period),
        tickets=stats.rate("ticket.closed", "ticket.created", **period),
        resolution_hours=mean("resolution_hours", "ticket.closed"),
        sla_met=stats.rate("ticket.closed", "ticket.closed", where={"sla_met": True}, **period),
    )
