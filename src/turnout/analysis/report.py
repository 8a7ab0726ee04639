"""`report()`: an experiment's results per variant against control, with a verdict in words.

    from turnout.analysis import report
    r = report("workflow-canary", config=turnout.config)
    r.variants[0].verdict.decision        # "ship" | "stop" | "keep running"

Users come from exposures, business and custom metrics from events (`data`), engine success
and latency from the metrics snapshots (`requests`). Every metric of every variant is
compared with control (absolute and relative effect with CI, Bayesian chance to win); the
p-values are adjusted together for testing many at once (Holm, or Benjamini–Hochberg);
the split is checked for sample ratio mismatch; and the verdict follows `default_rule`
unless another rule is passed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from turnout.analysis.adjust import adjust
from turnout.analysis.bayesian import bayesian
from turnout.analysis.comparison import Comparison, compare
from turnout.analysis.data import ExperimentData, Metric
from turnout.analysis.power import sample_size
from turnout.analysis.requests import LATENCY, SUCCESS, RequestFigures, read_requests
from turnout.analysis.srm import srm
from turnout.analysis.summaries import Means, Proportions, Summary
from turnout.config import ExperimentConfig, FlagConfig, RuleConfig, TurnoutConfig
from turnout.events.stats_sql import EventsUnavailable

Role = Literal["primary", "guardrail", "secondary"]
Outcome = Literal["ship", "stop", "keep running"]


@dataclass(frozen=True, slots=True)
class MetricResult:
    """One metric of one variant against control."""

    metric: str
    role: Role
    unit: Literal["users", "requests"]
    direction: Literal["increase", "decrease"]
    control: Summary
    treatment: Summary
    absolute: Comparison
    relative: Comparison
    p_adjusted: float
    significant: bool
    chance_to_win: float
    """P(the treatment is better), "better" following the metric's direction."""

    @property
    def improved(self) -> bool:
        """Significantly better than control."""
        return self.significant and (self.absolute.effect > 0) == (self.direction == "increase")

    @property
    def worse(self) -> bool:
        """Significantly worse than control."""
        return self.significant and self.absolute.effect != 0 and not self.improved

    @property
    def gain(self) -> float:
        """The relative effect signed so that positive is good."""
        return self.relative.effect if self.direction == "increase" else -self.relative.effect


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a variant, and why, in words."""

    decision: Outcome
    reason: str
    more_units_needed: int | None = None
    """For "keep running": units (users, or requests for engine metrics) still needed per variant."""


@dataclass(frozen=True, slots=True)
class VariantResult:
    """A treatment variant: its users, its metrics against control and its verdict."""

    variant: str
    users: int
    metrics: tuple[MetricResult, ...]
    verdict: Verdict
    units_needed: int | None = None
    """Units per variant needed to find the configured MDE on the primary metric."""

    def metric(self, name: str) -> MetricResult | None:
        """The result of metric `name`, if it could be computed."""
        return next((m for m in self.metrics if m.metric == name), None)


@dataclass(frozen=True, slots=True)
class SegmentResult:
    """One metric of one variant against control within one segment (e.g. intent = refund)."""

    segment: str
    variant: str
    result: MetricResult


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A segment where one variant wins significantly, and the routing rule that would serve it."""

    segment: str
    variant: str
    metric: str
    text: str
    toml: str


@dataclass(frozen=True, slots=True)
class Report:
    """An experiment's results: per treatment variant against `control`, and optionally per segment."""

    experiment: str
    flag: str | None
    control: str
    settings: ExperimentConfig
    users: dict[str, int]
    split: dict[str, float] | None
    srm_p_value: float | None
    variants: tuple[VariantResult, ...]
    exposures_by_day: tuple[tuple[str, str, int], ...] = ()
    by: str | None = None
    segments: tuple[SegmentResult, ...] = ()
    suggestions: tuple[Suggestion, ...] = ()
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what `turnout report --format json` prints)."""
        data = asdict(self)
        for variant, result in zip(data["variants"], self.variants, strict=True):
            for metric, original in zip(variant["metrics"], result.metrics, strict=True):
                metric["control"] = _summary_dict(original.control)
                metric["treatment"] = _summary_dict(original.treatment)
                metric["improved"], metric["worse"] = original.improved, original.worse
        for segment, original_segment in zip(data["segments"], self.segments, strict=True):
            segment["result"]["control"] = _summary_dict(original_segment.result.control)
            segment["result"]["treatment"] = _summary_dict(original_segment.result.treatment)
        data["settings"] = self.settings.model_dump()
        return _finite(data)  # type: ignore[no-any-return]


VerdictRule = Callable[[VariantResult, Report], Verdict]
"""Decides a variant's verdict from its results and the report (settings, SRM)."""


def default_rule(variant: VariantResult, report: Report) -> Verdict:
    """Stop on SRM or a guardrail (or the primary) significantly worse; ship when the primary is
    significantly better by at least `min_improvement`; otherwise keep running.
    """
    settings = report.settings
    if report.srm_p_value is not None and report.srm_p_value < settings.srm_alpha:
        shares = _shares(report.users)
        return Verdict(
            "stop",
            f"sample ratio mismatch: users split {shares} where {_shares(report.split or {})} was configured "
            f"(p = {report.srm_p_value:.2g}); the assignment or the logging is broken, "
            "no result can be trusted",
        )
    worse = [m for m in variant.metrics if m.worse and m.role in ("guardrail", "primary")]
    if worse:
        said = "; ".join(f"{m.role} {m.metric} {_change(m)}" for m in worse)
        return Verdict("stop", f"significantly worse: {said}")
    control_users = report.users.get(report.control, 0)
    if min(variant.users, control_users) < settings.min_users:
        return Verdict(
            "keep running",
            f"{min(variant.users, control_users):,} users in the smaller group; "
            f"at least {settings.min_users:,} per variant are needed before deciding",
            max(0, settings.min_users - min(variant.users, control_users)),
        )
    primary = next((m for m in variant.metrics if m.role == "primary"), None)
    if primary is None:
        return Verdict("keep running", f"no data yet for the primary metric {settings.primary}")
    if primary.improved and primary.gain >= settings.min_improvement:
        return Verdict("ship", f"primary {primary.metric} {_change(primary)}; no guardrail is worse")
    more = None
    if variant.units_needed is not None:
        more = max(0, variant.units_needed - min(primary.control.n, primary.treatment.n))
    if primary.improved:
        reason = (
            f"primary {primary.metric} {_change(primary)}, less than the "
            f"{settings.min_improvement:.0%} improvement needed to ship"
        )
    else:
        reason = f"primary {primary.metric} {_change(primary)}: not significant yet"
    if more:
        unit = "requests" if primary.unit == "requests" else "users"
        reason += f"; about {more:,} more {unit} per variant to detect a {settings.mde:.0%} change"
    return Verdict("keep running", reason, more)


def report(
    experiment: str,
    *,
    config: TurnoutConfig | None = None,
    events: object | None = None,
    metrics_path: str | None = None,
    by: str | None = None,
    correction: Literal["holm", "bh"] | None = None,
    sequential: bool | None = None,
    rule: VerdictRule = default_rule,
) -> Report:
    """The report of `experiment` (the `experiment` name of a split rule).

    `config` supplies the metrics, the experiment's settings and the split; `events` (URL,
    path or sink) defaults to its events sink and `metrics_path` to its metrics.jsonl.
    `by` breaks the results down by an exposure property or routing attribute (`intent`,
    `plan`) and suggests routing rules for segments with a clear winner.
    """
    config = config or TurnoutConfig()
    settings = config.experiments.get(experiment, ExperimentConfig())
    overrides: dict[str, Any] = {}
    if correction is not None:
        overrides["correction"] = correction
    if sequential is not None:
        overrides["sequential"] = sequential
    if overrides:
        settings = settings.model_copy(update=overrides)
    flag_name, flag, split_rule = _find_rule(config, experiment)
    notes: list[str] = []
    metrics = _metrics(config, settings)
    source = events if events is not None else config.events.sink
    users, summaries, by_day, segment_summaries = _read(source, experiment, metrics, by, notes)
    requests: RequestFigures = read_requests(metrics_path or config.telemetry.jsonl_path, experiment)
    if requests.problem:
        notes.append(f"engine metrics: {requests.problem}")
    summaries[SUCCESS] = dict(requests.success)
    summaries[LATENCY] = dict(requests.latency)

    control = settings.control or (flag.default if flag is not None else None)
    variants_seen = sorted(set(users) | {v for per in summaries.values() for v in per})
    if control is None:
        control = max(variants_seen, key=lambda v: users.get(v, 0)) if variants_seen else "control"
        notes.append(
            f"no rule names {experiment!r} in the config: {control!r} (most users) is taken as control"
        )
    split = dict(split_rule.split) if split_rule is not None and split_rule.split else None
    treatments = [v for v in (list(split) if split else variants_seen) if v != control]
    treatments += [v for v in variants_seen if v != control and v not in treatments]
    srm_p = _srm(users, split, split_rule, notes)

    results: dict[str, list[MetricResult]] = {}
    for variant in treatments:
        results[variant] = [
            r
            for name, metric, role in metrics
            if (r := _result(name, metric, role, summaries.get(name, {}), control, variant, settings))
            is not None
        ]
    flat = [r for variant in treatments for r in results[variant]]
    adjusted = adjust([r.absolute.p_value for r in flat], settings.correction) if flat else []
    fixed = iter(
        replace(r, p_adjusted=p, significant=p < settings.alpha) for r, p in zip(flat, adjusted, strict=True)
    )
    results = {variant: [next(fixed) for _ in results[variant]] for variant in treatments}

    pending = Verdict("keep running", "")
    variant_results = [
        VariantResult(
            variant,
            users.get(variant, 0),
            tuple(results[variant]),
            pending,
            _units_needed(results[variant], settings),
        )
        for variant in treatments
    ]
    draft = Report(
        experiment=experiment,
        flag=flag_name,
        control=control,
        settings=settings,
        users={v: users.get(v, 0) for v in [control, *treatments]},
        split=split,
        srm_p_value=srm_p,
        variants=tuple(variant_results),
        exposures_by_day=tuple(by_day),
        by=by,
        notes=tuple(notes),
    )
    decided = tuple(replace(v, verdict=rule(v, draft)) for v in variant_results)
    draft = replace(draft, variants=decided)
    if by is None:
        return draft
    from turnout.analysis.segments import segment_results

    segments, suggestions, segment_notes = segment_results(
        draft, flag_name, metrics, segment_summaries, split_rule
    )
    return replace(draft, segments=segments, suggestions=suggestions, notes=(*notes, *segment_notes))


def running_experiments(config: TurnoutConfig) -> list[str]:
    """Every experiment named by an enabled rule of an enabled flag, in config order."""
    names: list[str] = []
    for flag in config.flags.values():
        for rule in flag.rules:
            if flag.enabled and rule.enabled and rule.experiment and rule.experiment not in names:
                names.append(rule.experiment)
    return names


# -- helpers ---------------------------------------------------------------------------------

SegmentSummaries = dict[str, dict[tuple[str, str | None], Summary]]


def _read(
    source: object, experiment: str, metrics: list[MetricSpec], by: str | None, notes: list[str]
) -> tuple[dict[str, int], dict[str, dict[str, Summary]], list[tuple[str, str, int]], SegmentSummaries]:
    """Users, per-variant summaries, exposures per day and per-segment summaries from the events."""
    users: dict[str, int] = {}
    summaries: dict[str, dict[str, Summary]] = {}
    by_day: list[tuple[str, str, int]] = []
    segments: SegmentSummaries = {}
    event_metrics = [metric for _, metric, _ in metrics if metric is not None]
    try:
        with ExperimentData(source, experiment, metrics=event_metrics, by=by) as data:
            users = {variant: n for (variant, _), n in data.users().items()}
            by_day = data.exposures_by_day()
            for metric in event_metrics:
                summaries[metric.name] = {v: s for (v, _), s in data.summaries(metric.name).items()}
                if by is not None:
                    segments[metric.name] = data.summaries(metric.name, segmented=True)
    except (EventsUnavailable, OSError) as exc:
        notes.append(f"events not read: {exc}")
    return users, summaries, by_day, segments


MetricSpec = tuple[str, Metric | None, Role]
"""(name, the event metric or None for an engine metric, role)."""


def _metrics(config: TurnoutConfig, settings: ExperimentConfig) -> list[MetricSpec]:
    chosen: list[MetricSpec] = []
    named = [(settings.primary, "primary")] + [(m, "guardrail") for m in settings.guardrails]
    named += [(m, "secondary") for m in settings.secondary]
    named += [(m, "secondary") for m in config.metrics]
    named += [(SUCCESS, "secondary"), (LATENCY, "secondary")]
    seen: set[str] = set()
    for name, role in named:
        if name in seen:
            continue
        seen.add(name)
        metric = config.metrics.get(name)
        if metric is not None:
            chosen.append((name, Metric.from_config(name, metric), role))  # type: ignore[arg-type]
        elif name in (SUCCESS, LATENCY):
            chosen.append((name, None, role))  # type: ignore[arg-type]
    return chosen


def _direction(name: str, metric: Metric | None) -> Literal["increase", "decrease"]:
    if metric is not None:
        return metric.direction
    return "decrease" if name == LATENCY else "increase"


def _result(
    name: str,
    metric: Metric | None,
    role: Role,
    per_variant: dict[str, Summary],
    control: str,
    variant: str,
    settings: ExperimentConfig,
) -> MetricResult | None:
    a, b = per_variant.get(control), per_variant.get(variant)
    if a is None or b is None or a.n < 2 or b.n < 2:
        return None
    return _compare(name, metric, role, a, b, settings)


def _compare(
    name: str, metric: Metric | None, role: Role, a: Summary, b: Summary, settings: ExperimentConfig
) -> MetricResult:
    options = {"alpha": settings.alpha, "sequential": settings.sequential}
    absolute = compare(a, b, **options)  # type: ignore[arg-type]
    relative = compare(a, b, relative=True, **options)  # type: ignore[arg-type]
    direction = _direction(name, metric)
    posterior = bayesian(a, b, relative=relative.warning is None, alpha=settings.alpha)
    chance = posterior.chance_to_win if direction == "increase" else 1.0 - posterior.chance_to_win
    return MetricResult(
        metric=name,
        role=role,
        unit="users" if metric is not None else "requests",
        direction=direction,
        control=a,
        treatment=b,
        absolute=absolute,
        relative=relative,
        p_adjusted=absolute.p_value,
        significant=absolute.significant,
        chance_to_win=chance,
    )


def _units_needed(results: Sequence[MetricResult], settings: ExperimentConfig) -> int | None:
    primary = next((m for m in results if m.role == "primary"), None)
    if primary is None:
        return None
    base = primary.control
    try:
        if isinstance(base, Proportions):
            if not 0 < base.mean < 1 or not 0 < base.mean * (1 + settings.mde) < 1:
                return None
            return sample_size(
                baseline=base.mean,
                mde=settings.mde,
                relative=True,
                alpha=settings.alpha,
                power=settings.power,
            )
        if base.variance <= 0 or base.mean == 0:
            return None
        return sample_size(
            variance=base.variance,
            mde=settings.mde,
            relative=True,
            mean=base.mean,
            alpha=settings.alpha,
            power=settings.power,
        )
    except ValueError:
        return None


def _srm(
    users: dict[str, int], split: dict[str, float] | None, rule: RuleConfig | None, notes: list[str]
) -> float | None:
    if not split or not users:
        return None
    if rule is not None and rule.rollout is not None:
        notes.append("the split changes during the rollout: sample ratio not checked against it")
        return None
    variants = list(split)
    return srm([users.get(v, 0) for v in variants], [split[v] for v in variants])


def _find_rule(
    config: TurnoutConfig, experiment: str
) -> tuple[str | None, FlagConfig | None, RuleConfig | None]:
    for name, flag in config.flags.items():
        for rule in flag.rules:
            if rule.experiment == experiment:
                return name, flag, rule
    return None, None, None


def _change(m: MetricResult) -> str:
    rel, low, high = m.relative.effect, m.relative.ci[0], m.relative.ci[1]
    if m.relative.warning is not None:
        return f"{m.absolute.effect:+.4g} (p = {m.p_adjusted:.2g})"
    return f"{rel:+.1%} [{low:+.1%}, {high:+.1%}] (p = {m.p_adjusted:.2g})"


def _shares(counts: dict[str, Any]) -> str:
    total = sum(counts.values()) or 1
    return " / ".join(f"{k} {v / total:.1%}" for k, v in counts.items())


def _summary_dict(summary: Summary) -> dict[str, Any]:
    if isinstance(summary, Means):
        return {"type": "mean", "n": summary.n, "mean": summary.mean, "sd": math.sqrt(summary.variance)}
    return {"type": "proportion", "n": summary.n, "successes": summary.successes, "rate": summary.mean}


def _finite(value: Any) -> Any:
    """`value` with NaN and infinities as None, tuples as lists: strict JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value
