"""The support bot's monthly business case, computed from turnout's event aggregates."""

from __future__ import annotations

from typing import Any

from turnout.config import EventsConfig
from turnout.events.stats import EventStats, EventsUnavailable, Rate


def case_study(events: EventsConfig, month: str, *, cost_per_manual_session: float = 10.0) -> dict[str, Any]:
    """The case-study document for `month` (YYYY-MM).

    AI resolution rate = ai_resolved / total_sessions × 100, where ai_resolved = sessions that
    were not escalated; escalation rate = escalated / total_sessions × 100; average response time
    = total response time / messages; cost saved = ai_resolved × cost of a manual session;
    query success rates = successes / (successes + failures) × 100.
    """
    try:
        figures = _figures(EventStats.open(events.sink), month)
    except EventsUnavailable:  # nothing delivered yet: the sink creates its table on first delivery
        figures = _NOTHING
    sessions, escalated, response, orders, tracking, handled, first, created, closed, hours, sla = figures
    resolved = max(sessions - escalated, 0)
    mean_ms = response["session.message"].mean if "session.message" in response else None
    first_ms = first["agent.session_takeover"].mean if "agent.session_takeover" in first else None
    mean_hours = hours["ticket.closed"].mean if "ticket.closed" in hours else None
    cost_saved = resolved * cost_per_manual_session
    year, number = month.split("-")
    metrics = {
        "total_sessions": sessions,
        "ai_resolved_sessions": resolved,
        "escalated_sessions": escalated,
        "ai_resolution_rate": _percent(resolved, sessions),
        "escalation_rate": _percent(escalated, sessions),
        "avg_response_time_ms": mean_ms,
        "estimated_cost_saved": cost_saved,
        "order_query_success_rate": _rate(orders),
        "tracking_query_success_rate": _rate(tracking),
        "sessions_handled": handled,
        "avg_first_response_ms": first_ms,
        "tickets_created": created,
        "tickets_closed": closed,
        "avg_resolution_hours": mean_hours,
        "sla_met_rate": _rate(sla),
    }
    return {
        "period": f"{year}年{int(number)}月",
        "month": month,
        "ai_chatbot": {
            "total_customers_served": sessions,
            "ai_resolution_rate": _shown(metrics["ai_resolution_rate"], "%"),
            "escalation_rate": _shown(metrics["escalation_rate"], "%"),
            "avg_response_time": "—" if mean_ms is None else f"{mean_ms / 1000:.1f}秒",
            "cost_saved": f"¥{cost_saved:,.0f}",
            "order_query_success_rate": _shown(metrics["order_query_success_rate"], "%"),
            "tracking_query_success_rate": _shown(metrics["tracking_query_success_rate"], "%"),
        },
        "agent_workbench": {
            "sessions_handled": handled,
            "avg_first_response": "—" if first_ms is None else f"{first_ms / 1000:.0f}秒",
            "tickets_resolved": closed,
            "avg_resolution_time": "—" if mean_hours is None else f"{mean_hours:.1f}小时",
            "sla_met_rate": _shown(metrics["sla_met_rate"], "%"),
        },
        "metrics": metrics,
        "story": (
            f"本月 AI 客服共服务 {sessions:,} 位客户，AI 独立解决 {resolved:,} 次"
            f"（{_shown(metrics['ai_resolution_rate'], '%')}），估算节省人工成本 ¥{cost_saved:,.0f}。"
        ),
    }


_NOTHING: tuple[Any, ...] = (0, 0, {}, Rate(0, 0), Rate(0, 0), 0, {}, 0, 0, {}, Rate(0, 0))


def _figures(stats: EventStats, month: str) -> tuple[Any, ...]:
    """Every count, rate and numeric summary the case study needs, for one month."""
    with stats:
        return (
            stats.count("session.start", month=month),
            stats.count("session.escalate", unit="sessions", month=month),
            {n.event: n for n in stats.numbers("response_time_ms", events=["session.message"], month=month)},
            stats.rate("query.order", "query.order", where={"success": True}, month=month),
            stats.rate("query.tracking", "query.tracking", where={"success": True}, month=month),
            stats.count("agent.session_takeover", month=month),
            {
                n.event: n
                for n in stats.numbers("first_response_ms", events=["agent.session_takeover"], month=month)
            },
            stats.count("ticket.created", month=month),
            stats.count("ticket.closed", month=month),
            {n.event: n for n in stats.numbers("resolution_hours", events=["ticket.closed"], month=month)},
            stats.rate("ticket.closed", "ticket.closed", where={"sla_met": True}, month=month),
        )


def _percent(part: int, whole: int) -> float | None:
    return round(part / whole * 100, 1) if whole else None


def _rate(rate: Rate) -> float | None:
    return None if rate.value is None else round(rate.value * 100, 1)


def _shown(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{value:.1f}{unit}"
