"""A report as plain text, for the terminal and for logs (`turnout report`).

Without a width the metrics are tables, one row each; with a width (a terminal's) prose is
wrapped to it, and a table that would not fit becomes a few short lines per metric.
"""

from __future__ import annotations

import textwrap

from turnout.analysis.report import MetricResult, Report, VariantResult
from turnout.analysis.summaries import Means, Summary

_HEADER = ("metric", "role", "control", "treatment", "change [CI]", "relative [CI]", "p adj.", "P(better)")


def render_text(report: Report, width: int | None = None) -> str:
    """The report as lines of text: users and split, then per variant its verdict and metrics."""
    lines = [*_wrap(_title(report), width), *_wrap(_users(report), width, "  ")]
    for variant in report.variants:
        lines += ["", *_variant(report, variant, width)]
    if report.by is not None:
        lines += ["", *_segments(report, width)]
    if report.notes:
        lines += ["", "notes:"]
        for note in report.notes:
            lines += _wrap(f"  - {note}", width, "    ")
    return "\n".join(lines) + "\n"


def verdict_line(variant: VariantResult) -> str:
    """`workflow: SHIP — primary resolved +8.1% [...]`."""
    return f"{variant.variant}: {variant.verdict.decision.upper()} — {variant.verdict.reason}"


def _title(report: Report) -> str:
    flag = f" (flag {report.flag})" if report.flag else ""
    treatments = ", ".join(v.variant for v in report.variants) or "no other variant yet"
    test = "sequential (always valid)" if report.settings.sequential else "fixed-horizon"
    return (
        f"experiment {report.experiment}{flag}: {treatments} against control {report.control}"
        f" — {test} tests, alpha {report.settings.alpha:g}, {report.settings.correction} adjustment"
    )


def _users(report: Report) -> str:
    counts = " · ".join(f"{v} {n:,}" for v, n in report.users.items())
    text = f"users: {counts}"
    if report.split:
        split = " / ".join(f"{v} {w:g}%" for v, w in report.split.items())
        text += f"  (configured split {split}"
        if report.srm_p_value is not None:
            ok = report.srm_p_value >= report.settings.srm_alpha
            text += f"; sample ratio {'ok' if ok else 'MISMATCH'}, p = {report.srm_p_value:.3g}"
        text += ")"
    return text


def _variant(report: Report, variant: VariantResult, width: int | None) -> list[str]:
    lines = _wrap(verdict_line(variant), width, "  ")
    if variant.units_needed is not None:
        primary = variant.metric(report.settings.primary)
        have = min(primary.control.n, primary.treatment.n) if primary is not None else 0
        unit = "requests" if primary is not None and primary.unit == "requests" else "users"
        settings = report.settings
        needed = (
            f"  sample size: {have:,} of {variant.units_needed:,} {unit} per variant needed to detect "
            f"a {settings.mde:.0%} change of {settings.primary} (power {settings.power:.0%})"
        )
        lines += _wrap(needed, width, "    ")
    if not variant.metrics:
        lines.append("  no metric has data for both this variant and control yet")
        return lines
    table = _table([_HEADER, *(_row(m) for m in variant.metrics)])
    if width is None or max(len(line) for line in table) <= width:
        return lines + table
    for m in variant.metrics:
        unit = ", per request" if m.unit == "requests" else ""
        significant = " (significant)" if m.significant else ""
        lines.append(f"  {m.metric} ({m.role}{unit})")
        for text in (
            f"{report.control} {value_text(m.control)} · {variant.variant} {value_text(m.treatment)}",
            f"change {absolute_text(m)} · relative {relative_text(m)}",
            f"p adj. {m.p_adjusted:.3g}{significant} · P(better) {m.chance_to_win:.0%}",
        ):
            lines += _wrap(f"    {text}", width, "      ")
    return lines


def _row(m: MetricResult) -> tuple[str, ...]:
    return (
        m.metric + (" (per request)" if m.unit == "requests" else ""),
        m.role,
        value_text(m.control),
        value_text(m.treatment),
        absolute_text(m),
        relative_text(m),
        f"{m.p_adjusted:.3g}" + (" *" if m.significant else ""),
        f"{m.chance_to_win:.0%}",
    )


def _segments(report: Report, width: int | None) -> list[str]:
    lines = [f"by {report.by} (p adjusted across all segments):"]
    if not report.segments:
        return [*lines, "  no segment to compare"]
    header = ("segment", "variant", "metric", "control", "treatment", "relative [CI]", "p adj.")
    rows: list[tuple[str, ...]] = [header]
    for s in report.segments:
        m = s.result
        rows.append(
            (
                s.segment,
                s.variant,
                m.metric,
                value_text(m.control),
                value_text(m.treatment),
                relative_text(m),
                f"{m.p_adjusted:.3g}" + (" *" if m.significant else ""),
            )
        )
    table = _table(rows)
    if width is None or max(len(line) for line in table) <= width:
        lines += table
    else:
        for segment, variant, metric, control, treatment, relative, p in rows[1:]:
            text = f"  {segment} · {variant} · {metric}: {control} → {treatment}, {relative}, p adj. {p}"
            lines += _wrap(text, width, "      ")
    if report.suggestions:
        lines += ["", "suggested routing rules (paste into the config):"]
        for suggestion in report.suggestions:
            lines += ["", *_wrap(f"  {suggestion.text}; suggested rule:", width, "    ")]
            lines += [f"    {line}" for line in suggestion.toml.splitlines()]
    else:
        lines.append("  no segment has a significant winner on the primary metric")
    return lines


def value_text(summary: Summary) -> str:
    """A group's value: a mean with its n, or a rate of n."""
    if isinstance(summary, Means):
        return f"{summary.mean:.4g} (n={summary.n:,})"
    return f"{summary.mean:.1%} of {summary.n:,}"


def absolute_text(m: MetricResult) -> str:
    """The absolute change with its CI (percentage points for a rate)."""
    c = m.absolute
    if isinstance(m.control, Means):
        return f"{c.effect:+.4g} [{c.ci[0]:+.4g}, {c.ci[1]:+.4g}]"
    return f"{c.effect * 100:+.2f} pts [{c.ci[0] * 100:+.2f}, {c.ci[1] * 100:+.2f}]"


def relative_text(m: MetricResult) -> str:
    """The relative change with its CI, or n/a."""
    r = m.relative
    if r.warning is not None:
        return "n/a"
    return f"{r.effect:+.1%} [{r.ci[0]:+.1%}, {r.ci[1]:+.1%}]"


def _table(rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows
    ]


def _wrap(text: str, width: int | None, indent: str = "") -> list[str]:
    """`text` as one line, or wrapped to `width` with later lines indented."""
    if width is None or len(text) <= width:
        return [text]
    lead = text[: len(text) - len(text.lstrip())]
    return textwrap.wrap(
        text,
        width=width,
        initial_indent="",
        subsequent_indent=indent or lead,
        break_on_hyphens=False,
        drop_whitespace=True,
    ) or [text]
