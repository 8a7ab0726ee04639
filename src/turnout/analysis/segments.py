"""Per-segment results (`--by intent`, any exposure property or routing attribute) and the
routing rules they suggest.

Every event metric is compared per segment and variant; all these comparisons are adjusted
together (the experiment's `correction`), because with many segments some would look
significant by chance. Where one engine wins the primary metric significantly in a segment,
a `when = { ATTR = VALUE }` rule that serves it is suggested, ready to paste into the config
before the experiment's rule — provided both groups of the segment have `min_users` users.
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import TYPE_CHECKING

from turnout.analysis.adjust import adjust
from turnout.analysis.summaries import Summary
from turnout.config import RuleConfig

if TYPE_CHECKING:
    from turnout.analysis.report import MetricResult, MetricSpec, Report, SegmentResult, Suggestion

NONE = "(none)"
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_RULE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def segment_results(
    draft: Report,
    flag: str | None,
    metrics: list[MetricSpec],
    summaries: dict[str, dict[tuple[str, str | None], Summary]],
    rule: RuleConfig | None,
) -> tuple[tuple[SegmentResult, ...], tuple[Suggestion, ...], list[str]]:
    """(segment results, suggested rules, notes) for the report's `by` attribute."""
    from turnout.analysis.report import SegmentResult, _compare

    settings, by = draft.settings, draft.by or ""
    results: list[SegmentResult] = []
    for name, metric, role in metrics:
        per_key = summaries.get(name)
        if metric is None or per_key is None:
            continue
        segments = sorted({segment for _, segment in per_key}, key=lambda s: (s is None, s or ""))
        for segment in segments:
            control = per_key.get((draft.control, segment))
            for variant in (v.variant for v in draft.variants):
                treatment = per_key.get((variant, segment))
                if control is None or treatment is None or control.n < 2 or treatment.n < 2:
                    continue
                compared = _compare(name, metric, role, control, treatment, settings)
                results.append(SegmentResult(NONE if segment is None else segment, variant, compared))
    notes: list[str] = []
    if not results:
        notes.append(f"no segment of {by!r} has at least 2 users in control and a variant")
        return (), (), notes
    adjusted = adjust([r.result.absolute.p_value for r in results], settings.correction)
    results = [
        replace(r, result=replace(r.result, p_adjusted=p, significant=p < settings.alpha))
        for r, p in zip(results, adjusted, strict=True)
    ]
    primary = settings.primary
    if not any(r.result.metric == primary for r in results):
        notes.append(
            f"the primary metric {primary} is not an event metric: segments show event metrics only, "
            "and no routing rule is suggested"
        )
        return tuple(results), (), notes
    suggestions = _suggestions(draft, flag, by, [r for r in results if r.result.metric == primary], rule)
    return tuple(results), suggestions, notes


def _suggestions(
    draft: Report, flag: str | None, by: str, results: list[SegmentResult], rule: RuleConfig | None
) -> tuple[Suggestion, ...]:
    from turnout.analysis.report import Suggestion

    best: dict[str, tuple[str, str, MetricResult]] = {}
    minimum = draft.settings.min_users
    for r in results:
        if r.segment == NONE or not (r.result.improved or r.result.worse):
            continue
        if min(r.result.control.n, r.result.treatment.n) < minimum:
            continue  # too few users in the segment to route on, however small the p-value
        winner, loser = (r.variant, draft.control) if r.result.improved else (draft.control, r.variant)
        current = best.get(r.segment)
        if current is None or abs(r.result.gain) > abs(current[2].gain):
            best[r.segment] = (winner, loser, r.result)
    suggestions = []
    for segment, (winner, loser, result) in sorted(best.items()):
        half = (result.relative.ci[1] - result.relative.ci[0]) / 2
        text = (
            f"for {by} {segment!r}, {winner} does {abs(result.gain):.0%} ± {half:.0%} better on "
            f"{result.metric} than {loser} (adjusted p = {result.p_adjusted:.2g})"
        )
        name = _RULE_NAME.sub("-", f"{by}-{segment}").strip("-") or "segment"
        key = by if _BARE_KEY.match(by) else json.dumps(by)
        lines = [
            f"[[flags.{flag or 'FLAG'}.rules]]",
            f"name = {json.dumps(name)}",
            f"when = {{ {key} = {json.dumps(segment, ensure_ascii=False)} }}",
            f"serve = {json.dumps(winner)}",
        ]
        if rule is not None and rule.name:
            lines.insert(0, f"# before the rule {rule.name!r}, so it takes precedence")
        suggestions.append(Suggestion(segment, winner, result.metric, text, "\n".join(lines)))
    return tuple(suggestions)
