"""The support bot's monthly business case, computed from turnout's event aggregates."""

from __future__ import annotations

from typing import Any

from turnout.config import EventsConfig
from turnout.events.stats import EventStats, EventsUnavailable, Numbers, Rate
from turnout.events.support import SupportFigures, support_figures

_NOTHING = SupportFigures(
    escalation=Rate(0, 0),
    response_ms=None,
    order_success=Rate(0, 0),
    tracking_success=Rate(0, 0),
    sessions_handled=0,
    first_response_ms=None,
    handle_time_s=None,
    transfer=Rate(0, 0),
    tickets=Rate(0, 0),
    resolution_hours=None,
    sla_met=Rate(0, 0),
)


def case_study(events: EventsConfig, month: str, *, cost_per_manual_session: float = 10.0) -> dict[str, Any]:
    """The case-study document for `month` (YYYY-MM).

    The figures are those of `turnout events summary` (`turnout.events.support`): AI resolution
    rate = sessions not escalated / sessions × 100 and escalation rate = escalated sessions /
    sessions × 100, both over distinct sessions; average response time = total response time /
    messages; cost saved = AI-resolved sessions × cost of a manual session; query success rates
    = successes / queries × 100; average handle time, transfer rate = transferred / handled
    sessions × 100, ticket resolution rate = closed / created × 100, SLA-met rate.
    """
    try:
        with EventStats.open(events.sink) as stats:
            figures = support_figures(stats, month=month)
    except EventsUnavailable:  # nothing delivered yet: the sink creates its table on first delivery
        figures = _NOTHING
    sessions, resolved = figures.sessions, figures.ai_resolution.numerator
    mean_ms = _mean(figures.response_ms)
    first_ms = _mean(figures.first_response_ms)
    handle_s = _mean(figures.handle_time_s)
    mean_hours = _mean(figures.resolution_hours)
    cost_saved = resolved * cost_per_manual_session
    year, number = month.split("-")
    metrics = {
        "total_sessions": sessions,
        "ai_resolved_sessions": resolved,
        "escalated_sessions": figures.escalated,
        "ai_resolution_rate": _percent(figures.ai_resolution),
        "escalation_rate": _percent(figures.escalation),
        "avg_response_time_ms": mean_ms,
        "estimated_cost_saved": cost_saved,
        "order_query_success_rate": _percent(figures.order_success),
        "tracking_query_success_rate": _percent(figures.tracking_success),
        "sessions_handled": figures.sessions_handled,
        "avg_first_response_ms": first_ms,
        "avg_handle_time_s": handle_s,
        "transfer_rate": _percent(figures.transfer),
        "tickets_created": figures.tickets.denominator,
        "tickets_closed": figures.tickets.numerator,
        "ticket_resolution_rate": _percent(figures.tickets),
        "avg_resolution_hours": mean_hours,
        "sla_met_rate": _percent(figures.sla_met),
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
            "sessions_handled": figures.sessions_handled,
            "avg_first_response": "—" if first_ms is None else f"{first_ms / 1000:.0f}秒",
            "avg_handle_time": "—" if handle_s is None else f"{handle_s / 60:.0f}分钟",
            "transfer_rate": _shown(metrics["transfer_rate"], "%"),
            "tickets_resolved": figures.tickets.numerator,
            "ticket_resolution_rate": _shown(metrics["ticket_resolution_rate"], "%"),
            "avg_resolution_time": "—" if mean_hours is None else f"{mean_hours:.1f}小时",
            "sla_met_rate": _shown(metrics["sla_met_rate"], "%"),
        },
        "metrics": metrics,
        "story": (
            f"本月 AI 客服共服务 {sessions:,} 位客户，AI 独立解决 {resolved:,} 次"
            f"（{_shown(metrics['ai_resolution_rate'], '%')}），估算节省人工成本 ¥{cost_saved:,.0f}。"
        ),
    }


def _mean(numbers: Numbers | None) -> float | None:
    return None if numbers is None else numbers.mean


def _percent(rate: Rate) -> float | None:
    return None if rate.value is None else round(rate.value * 100, 1)


def _shown(value: float | None, unit: str) -> str:
    return "—" if value is None else f"{value:.1f}{unit}"
