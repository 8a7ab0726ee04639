"""Time-series line charts as inline SVG, drawn on the server (no script, no external file)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from html import escape

COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")
# Dash patterns tell the lines apart without their colour.
_DASHES = ("", "6 3", "2 3", "8 3 2 3")

Series = Sequence[tuple[datetime, float | None]]


def line_chart(
    title: str,
    lines: Mapping[str, Series],
    value_text: Callable[[float], str],
    *,
    width: int = 560,
    height: int = 180,
    floor: float | None = 0.0,
) -> str:
    """One SVG with a line per name over time; the legend names each line with its latest value."""
    points = [(t, v) for series in lines.values() for t, v in series if v is not None]
    if not points:
        return f'<p class="empty">{escape(title)}: no data in this time range yet</p>'
    first = min(t for t, _ in points)
    last = max(t for t, _ in points)
    low = min(v for _, v in points) if floor is None else min(floor, *(v for _, v in points))
    high = max(v for _, v in points)
    span_t = (last - first).total_seconds() or 1.0
    span_v = (high - low) or 1.0
    left, right, top, bottom = 64, 12, 12 + 16 * len(lines), 24

    def x(t: datetime) -> float:
        return left + (t - first).total_seconds() / span_t * (width - left - right)

    def y(v: float) -> float:
        return height - bottom - (v - low) / span_v * (height - top - bottom)

    out = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>',
        f'<line x1="{left}" y1="{y(low):.1f}" x2="{width - right}" y2="{y(low):.1f}" stroke="#999"/>',
        f'<text x="{left - 6}" y="{y(high) + 4:.1f}" text-anchor="end">{escape(value_text(high))}</text>',
        f'<text x="{left - 6}" y="{y(low) + 4:.1f}" text-anchor="end">{escape(value_text(low))}</text>',
        f'<text x="{left}" y="{height - 6}">{first:%H:%M:%S}</text>',
        f'<text x="{width - right}" y="{height - 6}" text-anchor="end">{last:%H:%M:%S}</text>',
    ]
    for index, (name, series) in enumerate(lines.items()):
        colour = COLOURS[index % len(COLOURS)]
        dash = _DASHES[index % len(_DASHES)]
        known = [(t, v) for t, v in series if v is not None]
        if not known:
            continue
        coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in known)
        dashed = f' stroke-dasharray="{dash}"' if dash else ""
        out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2"{dashed} points="{coords}"/>')
        # A marker per point, so a single window still shows.
        out.extend(f'<circle cx="{x(t):.1f}" cy="{y(v):.1f}" r="2.5" fill="{colour}"/>' for t, v in known)
        label = f"{name}: {value_text(known[-1][1])}"
        out.append(f'<text x="{left + 4}" y="{14 + index * 16}" fill="{colour}">{escape(label)}</text>')
    out.append("</svg>")
    return "".join(out)
