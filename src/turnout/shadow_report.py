"""`turnout shadow report FLAG`: how a shadow engine agreed with the served one, per intent.

Read from metrics.jsonl. Without `since`, the newest line of each process is used (its figures
are cumulative) and the processes are added up; with `since`, the per-interval `window` figures
of the lines in that range are. Counts, sums and sums of squares add up exactly, so the match
rate's interval (Wilson) and the latency difference's (`turnout.analysis.compare` of the two
engines' means: Welch's t) are exact for the merged data. Mismatch samples are gathered from
every line read and the worst (lowest score) are shown.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from statistics import NormalDist
from typing import Any

from turnout.analysis import Comparison, Means, Proportions, compare
from turnout.config import parse_duration

_COUNTS = ("offered", "skipped", "compared", "matches", "timeouts")
_Z = NormalDist().inv_cdf(0.975)


@dataclass
class IntentResult:
    """One (served engine, shadow engine, intent) row of the report."""

    served: str
    shadow: str
    intent: str
    offered: int = 0
    skipped: int = 0
    compared: int = 0
    matches: int = 0
    timeouts: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    score_sum: float = 0.0
    served_sum: float = 0.0
    served_squares: float = 0.0
    shadow_sum: float = 0.0
    shadow_squares: float = 0.0

    @property
    def failed(self) -> int:
        """Shadow calls that raised or timed out."""
        return self.timeouts + sum(self.errors.values())

    @property
    def match_rate(self) -> float | None:
        """Share of compared requests where the shadow agreed."""
        return self.matches / self.compared if self.compared else None

    @property
    def match_ci(self) -> tuple[float, float] | None:
        """95% Wilson interval of the match rate."""
        return wilson(Proportions(self.compared, self.matches))

    @property
    def score_mean(self) -> float | None:
        """The comparator's mean score on the compared requests."""
        return self.score_sum / self.compared if self.compared else None

    @property
    def served_ms(self) -> float | None:
        """Mean latency of the served engine on the compared requests."""
        return self.served_sum / self.compared if self.compared else None

    @property
    def shadow_ms(self) -> float | None:
        """Mean latency of the shadow engine on the compared requests."""
        return self.shadow_sum / self.compared if self.compared else None

    @property
    def latency(self) -> Comparison | None:
        """Shadow against served latency (ms): `turnout.analysis.compare` of the two means."""
        n = self.compared
        if n < 2:
            return None
        served = Means(n, self.served_sum, self.served_squares)
        return compare(served, Means(n, self.shadow_sum, self.shadow_squares))

    @property
    def latency_diff_ms(self) -> float | None:
        """Mean shadow latency minus mean served latency."""
        if not self.compared:
            return None
        return (self.shadow_sum - self.served_sum) / self.compared

    @property
    def latency_diff_ci(self) -> tuple[float, float] | None:
        """95% interval of the latency difference (None below two requests or with no variance)."""
        latency = self.latency
        return latency.ci if latency is not None and latency.warning is None else None

    def add(self, figures: Mapping[str, Any]) -> None:
        """Add one snapshot's figures (cumulative or a window) of this series."""
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + int(figures.get(name) or 0))
        for name, n in (figures.get("errors") or {}).items():
            self.errors[name] = self.errors.get(name, 0) + int(n)
        self.score_sum += float((figures.get("score") or {}).get("sum") or 0.0)
        served = figures.get("served_latency_ms") or {}
        shadow = figures.get("shadow_latency_ms") or {}
        self.served_sum += float(served.get("sum") or 0.0)
        self.served_squares += float(served.get("sum_squares") or 0.0)
        self.shadow_sum += float(shadow.get("sum") or 0.0)
        self.shadow_squares += float(shadow.get("sum_squares") or 0.0)

    def to_dict(self) -> dict[str, Any]:
        """The row with its derived figures, for `--format json`."""
        out = asdict(self)
        out.update(
            match_rate=self.match_rate,
            match_ci=self.match_ci,
            score_mean=self.score_mean,
            served_ms=self.served_ms,
            shadow_ms=self.shadow_ms,
            latency_diff_ms=self.latency_diff_ms,
            latency_diff_ci=self.latency_diff_ci,
            error_rate=self.failed / (self.compared + self.failed) if self.compared + self.failed else None,
        )
        return out


@dataclass
class ShadowReport:
    """A flag's shadow results, per (served, shadow) pair and intent, with the worst mismatches."""

    flag: str
    path: str
    since: str | None
    processes: list[str]
    rows: list[IntentResult]
    mismatches: list[dict[str, Any]]
    lines: int
    malformed: int

    def totals(self) -> list[IntentResult]:
        """One row per (served, shadow) pair over all its intents."""
        pairs: dict[tuple[str, str], IntentResult] = {}
        for row in self.rows:
            total = pairs.setdefault((row.served, row.shadow), IntentResult(row.served, row.shadow, "all"))
            for name in _COUNTS:
                setattr(total, name, getattr(total, name) + getattr(row, name))
            for name, n in row.errors.items():
                total.errors[name] = total.errors.get(name, 0) + n
            for name in ("score_sum", "served_sum", "served_squares", "shadow_sum", "shadow_squares"):
                setattr(total, name, getattr(total, name) + getattr(row, name))
        return list(pairs.values())

    def to_dict(self) -> dict[str, Any]:
        """Everything, for `--format json`."""
        return {
            "flag": self.flag,
            "path": self.path,
            "since": self.since,
            "processes": self.processes,
            "lines": self.lines,
            "malformed": self.malformed,
            "intents": [row.to_dict() for row in self.rows],
            "totals": [row.to_dict() for row in self.totals()],
            "worst_mismatches": self.mismatches,
        }


def wilson(proportion: Proportions, z: float = _Z) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (None with no trials)."""
    n = proportion.n
    if n <= 0:
        return None
    p = proportion.mean
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def shadow_report(
    path: str | Path,
    flag: str,
    *,
    since: str | None = None,
    worst: int = 5,
    now: datetime | None = None,
) -> ShadowReport:
    """Read `path` (metrics.jsonl) and gather `flag`'s shadow figures; see the module docstring."""
    cutoff = None
    if since is not None:
        cutoff = (now or datetime.now(UTC)) - timedelta(seconds=parse_duration(since))
    newest: dict[str, tuple[str, Mapping[str, Any]]] = {}
    windows: list[Mapping[str, Any]] = []
    mismatches: list[dict[str, Any]] = []
    lines = malformed = 0
    for line in _lines(Path(path)):
        lines += 1
        try:
            data = json.loads(line)
            stamp = str(data["timestamp"])
            process = str(data.get("process", "?"))
            shadows = (data.get("shadows") or {}).get(flag) or {}
            too_old = cutoff is not None and _parse_time(stamp) < cutoff
        except (ValueError, KeyError, TypeError, AttributeError):
            malformed += 1
            continue
        if too_old:
            continue
        if stamp >= newest.get(process, ("", {}))[0]:
            newest[process] = (stamp, shadows)
        windows.append(shadows)
        mismatches.extend(_mismatches(shadows))
    chosen = windows if cutoff is not None else [shadows for _, shadows in newest.values()]
    mismatches.sort(key=lambda sample: float(sample.get("score", 1.0)))
    return ShadowReport(
        flag=flag,
        path=str(path),
        since=since,
        processes=sorted(newest),
        rows=_rows(chosen, windows=cutoff is not None),
        mismatches=mismatches[:worst],
        lines=lines,
        malformed=malformed,
    )


def live_report(
    flag: str, shadows: Mapping[str, Any], *, source: str = "this process", worst: int = 5
) -> ShadowReport:
    """A report from live figures: `turnout.telemetry.live()["shadows"].get(flag, {})`."""
    samples = [
        {"served_engine": pair.get("served"), "shadow_engine": pair.get("shadow"), "intent": intent, **sample}
        for pair in shadows.values()
        for intent, figures in (pair.get("intents") or {}).items()
        for sample in figures.get("mismatches") or ()
    ]
    samples.sort(key=lambda sample: float(sample.get("score", 1.0)))
    return ShadowReport(flag, source, None, [source], _rows([shadows], windows=False), samples[:worst], 0, 0)


def _rows(chosen: Iterable[Mapping[str, Any]], *, windows: bool) -> list[IntentResult]:
    rows: dict[tuple[str, str, str], IntentResult] = {}
    for shadows in chosen:
        for pair in shadows.values():
            for intent, figures in (pair.get("intents") or {}).items():
                key = (str(pair.get("served")), str(pair.get("shadow")), str(intent))
                row = rows.setdefault(key, IntentResult(*key))
                row.add((figures.get("window") or {}) if windows else figures)
    return [rows[key] for key in sorted(rows)]


def render_text(report: ShadowReport) -> str:
    """The report as a plain-text table per served/shadow pair, then the worst mismatches."""
    if not report.rows:
        where = f" from the last {report.since}" if report.since else ""
        return (
            f"No shadow figures for flag {report.flag!r} in {report.path}{where} "
            f"({report.lines:,} lines read). Is a `shadow` configured for it, and has traffic been sampled?"
        )
    count = len(report.processes)
    span = f", last {report.since}" if report.since else ""
    out = [f"shadow report: {report.flag} ({report.path}, {count} process{'es' if count != 1 else ''}{span})"]
    totals = {(t.served, t.shadow): t for t in report.totals()}
    header = HEADER
    for (served, shadow), total in totals.items():
        out.append("")
        out.append(f"served {served}, shadow {shadow}")
        rows = [row for row in report.rows if (row.served, row.shadow) == (served, shadow)]
        table = [header, *(row_cells(row) for row in [*rows, total])]
        widths = [max(len(line[c]) for line in table) for c in range(len(header))]
        for index, line in enumerate(table):
            cells = [line[0].ljust(widths[0])]
            cells += [cell.rjust(width) for cell, width in zip(line[1:], widths[1:], strict=True)]
            out.append("  " + "  ".join(cells))
            if index == len(table) - 2:
                out.append("  " + "  ".join("-" * width for width in widths))
    if report.mismatches:
        out.append("")
        out.append(f"worst mismatches ({len(report.mismatches)}):")
        for sample in report.mismatches:
            out.append(
                f"  score {float(sample.get('score', 0)):.2f}  intent {sample.get('intent', '?')}  "
                f"variant {sample.get('variant', '?')}  at {sample.get('time', '?')}"
            )
            for part in ("input", "served", "shadow"):
                if part in sample:
                    out.append(f"    {part + ':':<8}{sample[part]}")
    if report.malformed:
        out.append(f"\n{report.malformed:,} malformed line{'s' if report.malformed != 1 else ''} skipped")
    return "\n".join(out)


HEADER = (
    "intent",
    "compared",
    "match (95% CI)",
    "score",
    "served ms",
    "shadow ms",
    "shadow-served ms (95% CI)",
    "failed",
    "skipped",
)
"""The columns of a report table."""


def row_cells(row: IntentResult) -> tuple[str, ...]:
    """One report row as the texts of `HEADER`'s columns."""
    rate, ci = row.match_rate, row.match_ci
    match = "-" if rate is None or ci is None else f"{rate:.0%} ({ci[0] * 100:.0f}-{ci[1]:.0%})"
    diff, diff_ci = row.latency_diff_ms, row.latency_diff_ci
    if diff is None:
        latency = "-"
    elif diff_ci is None:
        latency = _ms(diff, sign=True)
    else:
        latency = f"{_ms(diff, sign=True)} ({_ms(diff_ci[0], sign=True)} to {_ms(diff_ci[1], sign=True)})"
    attempted = row.compared + row.failed
    failed = f"{row.failed} ({row.failed / attempted:.0%})" if attempted else "0"
    return (
        row.intent,
        f"{row.compared:,}",
        match,
        "-" if row.score_mean is None else f"{row.score_mean:.2f}",
        "-" if row.served_ms is None else _ms(row.served_ms),
        "-" if row.shadow_ms is None else _ms(row.shadow_ms),
        latency,
        failed,
        f"{row.skipped:,}",
    )


def _ms(value: float, *, sign: bool = False) -> str:
    text = f"{value:+.1f}" if abs(value) < 10 else f"{value:+,.0f}"
    return text if sign else text.lstrip("+")


def _mismatches(shadows: Mapping[str, Any]) -> Iterable[dict[str, Any]]:
    for pair in shadows.values():
        for intent, figures in (pair.get("intents") or {}).items():
            for sample in (figures.get("window") or {}).get("mismatches") or ():
                yield {
                    "served_engine": pair.get("served"),
                    "shadow_engine": pair.get("shadow"),
                    "intent": intent,
                    **sample,
                }


def _lines(path: Path) -> Iterable[str]:
    with path.open(encoding="utf-8", errors="replace") as file:
        for line in file:
            if line.strip():
                yield line


def _parse_time(stamp: str) -> datetime:
    parsed = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)
