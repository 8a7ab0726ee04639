"""A report as one self-contained HTML page: tables, a forest plot of relative effects per metric
and the users exposed over time per variant, drawn as inline SVG (no script, no external file).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from turnout.analysis.render import absolute_text, relative_text, value_text
from turnout.analysis.report import MetricResult, Report

_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
_VERDICT = {"ship": "#2e7d32", "stop": "#c62828", "keep running": "#ef6c00"}
_STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: .5em 0 1.5em; }
th, td { padding: .25em .7em; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.verdict { color: #fff; padding: .15em .5em; border-radius: .3em; font-weight: 600; }
.sig { font-weight: 600; }
pre { background: #f6f6f6; padding: .8em; }
svg text { font: 12px system-ui, sans-serif; }
"""


def render_html(reports: Report | Sequence[Report]) -> str:
    """One page for one report or several (`--all`)."""
    chosen = [reports] if isinstance(reports, Report) else list(reports)
    title = "Experiment " + ", ".join(r.experiment for r in chosen) if chosen else "No experiment"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    for report in chosen:
        parts += _report(report)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def report_section(report: Report) -> str:
    """One report as an HTML fragment (no page around it): what the web dashboard shows."""
    return "\n".join(_report(report))


def _report(report: Report) -> list[str]:
    parts = [f"<h1>Experiment {escape(report.experiment)}</h1>", f"<p>{escape(_summary(report))}</p>"]
    for variant in report.variants:
        colour = _VERDICT[variant.verdict.decision]
        parts.append(
            f'<h2>{escape(variant.variant)} vs {escape(report.control)} <span class="verdict" '
            f'style="background:{colour}">{escape(variant.verdict.decision.upper())}</span></h2>'
        )
        parts.append(f"<p>{escape(variant.verdict.reason)}</p>")
        parts.append(_metric_table(variant.metrics))
    parts.append("<h2>Relative effect per metric (CI)</h2>")
    for name in dict.fromkeys(m.metric for v in report.variants for m in v.metrics):
        rows = [(v.variant, m) for v in report.variants for m in v.metrics if m.metric == name]
        parts.append(f"<h3>{escape(name)}</h3>{forest_plot(rows)}")
    parts.append("<h2>Users exposed over time</h2>")
    parts.append(exposure_chart(report))
    if report.by is not None:
        parts.append(_segments(report))
    if report.notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{escape(n)}</li>" for n in report.notes) + "</ul>")
    return parts


def forest_plot(rows: list[tuple[str, MetricResult]], width: int = 640) -> str:
    """An SVG with one line per (label, result): the relative effect and its CI around a zero line."""
    usable = [(label, m) for label, m in rows if m.relative.warning is None]
    if not usable:
        return "<p>no relative effect to plot (control mean 0 or too few users)</p>"
    low = min(0.0, *(m.relative.ci[0] for _, m in usable))
    high = max(0.0, *(m.relative.ci[1] for _, m in usable))
    span = (high - low) or 1.0
    left = min(width // 2, 16 + 7 * max(len(label) for label, _ in usable))
    right, row_h = 60, 26
    height = row_h * len(usable) + 30

    def x(value: float) -> float:
        return left + (value - low) / span * (width - left - right)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    zero = x(0.0)
    out.append(
        f'<line x1="{zero:.1f}" y1="0" x2="{zero:.1f}" y2="{height - 20}" stroke="#999"'
        ' stroke-dasharray="3"/>'
    )
    for i, (label, m) in enumerate(usable):
        y = 15 + i * row_h
        colour = "#2e7d32" if m.improved else "#c62828" if m.worse else "#555"
        lo, hi, mid = x(m.relative.ci[0]), x(m.relative.ci[1]), x(m.relative.effect)
        out.append(f'<text x="4" y="{y + 4}">{escape(label)}</text>')
        out.append(
            f'<line x1="{lo:.1f}" y1="{y}" x2="{hi:.1f}" y2="{y}" stroke="{colour}" stroke-width="2"/>'
        )
        out.append(f'<circle cx="{mid:.1f}" cy="{y}" r="4" fill="{colour}"/>')
        out.append(f'<text x="{width - right + 6}" y="{y + 4}">{m.relative.effect:+.1%}</text>')
    for value in (low, 0.0, high):
        out.append(f'<text x="{x(value):.1f}" y="{height - 4}" text-anchor="middle">{value:+.0%}</text>')
    out.append("</svg>")
    return "".join(out)


def exposure_chart(report: Report, width: int = 640, height: int = 220) -> str:
    """An SVG line per variant: users exposed so far, by day."""
    days = sorted({day for day, _, _ in report.exposures_by_day})
    if not days:
        return "<p>no exposures recorded</p>"
    variants = list(dict.fromkeys(v for _, v, _ in report.exposures_by_day))
    totals: dict[str, list[int]] = {}
    for variant in variants:
        running, series = 0, []
        per_day = {d: n for d, v, n in report.exposures_by_day if v == variant}
        for day in days:
            running += per_day.get(day, 0)
            series.append(running)
        totals[variant] = series
    top = max(max(series) for series in totals.values()) or 1
    left, bottom, step = 50, 30, (width - 70) / max(1, len(days) - 1)

    def point(i: int, value: int) -> str:
        return f"{left + i * step:.1f},{height - bottom - value / top * (height - bottom - 10):.1f}"

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">']
    out.append(f'<text x="4" y="14">{top:,}</text><text x="4" y="{height - bottom}">0</text>')
    for index, (variant, series) in enumerate(totals.items()):
        colour = _COLOURS[index % len(_COLOURS)]
        points = [point(i, value) for i, value in enumerate(series)]
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{" ".join(points)}"/>')
        # A marker per day, so a single day still shows.
        for spot in points:
            x, y = spot.split(",")
            out.append(f'<circle cx="{x}" cy="{y}" r="3" fill="{colour}"/>')
        label = f"{variant} ({series[-1]:,})"
        out.append(f'<text x="{left + 10}" y="{16 + index * 16}" fill="{colour}">{escape(label)}</text>')
    out.append(f'<text x="{left}" y="{height - bottom + 16}">{escape(days[0])}</text>')
    if len(days) > 1:
        out.append(
            f'<text x="{width - 20}" y="{height - bottom + 16}" text-anchor="end">{escape(days[-1])}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _summary(report: Report) -> str:
    users = ", ".join(f"{v} {n:,}" for v, n in report.users.items())
    text = f"Users: {users}."
    if report.srm_p_value is not None:
        text += f" Sample ratio check against the configured split: p = {report.srm_p_value:.3g}."
    return text


def _metric_table(metrics: tuple[MetricResult, ...]) -> str:
    if not metrics:
        return "<p>no metric has data for both this variant and control yet</p>"
    head = "".join(
        f"<th>{h}</th>"
        for h in (
            "metric",
            "role",
            "control",
            "treatment",
            "change [CI]",
            "relative [CI]",
            "p adj.",
            "P(better)",
        )
    )
    rows = []
    for m in metrics:
        cls = ' class="sig"' if m.significant else ""
        cells = (
            m.metric,
            m.role,
            value_text(m.control),
            value_text(m.treatment),
            absolute_text(m),
            relative_text(m),
            f"{m.p_adjusted:.3g}",
            f"{m.chance_to_win:.0%}",
        )
        rows.append(f"<tr{cls}>" + "".join(f"<td>{escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _segments(report: Report) -> str:
    parts = [f"<h2>By {escape(report.by or '')}</h2>"]
    rows = [(f"{s.segment} · {s.variant} · {s.result.metric}", s.result) for s in report.segments]
    parts.append(forest_plot(rows, width=760))
    for suggestion in report.suggestions:
        parts.append(f"<p>{escape(suggestion.text)}; suggested rule:</p><pre>{escape(suggestion.toml)}</pre>")
    return "".join(parts)
