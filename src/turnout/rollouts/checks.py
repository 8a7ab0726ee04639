"""Guardrail checks on a treatment's window: absolute bounds, and margins against control.

A check with fewer than `min_samples` observations is inconclusive, never a pass (as Flagger
and Argo Rollouts treat missing data). A margin against control uses the confidence interval of
the difference from `turnout.analysis.compare`: the check passes only when even the interval's
worst end is within the margin, so noise cannot pass a worse treatment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from turnout.config import RATE_METRICS, CheckConfig, GuardrailsConfig, TurnoutConfig
from turnout.rollouts.windows import VariantWindow

_QUANTILES = {"p50_ms": 0.5, "p95_ms": 0.95, "p99_ms": 0.99}
_LABELS = {
    "success_rate": "success rate",
    "error_rate": "error rate",
    "mean_ms": "mean latency",
    "p50_ms": "P50 latency",
    "p95_ms": "P95 latency",
    "p99_ms": "P99 latency",
}
HIGHER_IS_BETTER = frozenset({"success_rate"})
"""Built-in metrics where up is good; for the others (error rate, latencies) down is good. A custom
metric is taken as down-is-good (a cost) unless its `[metrics.NAME]` says `direction = "increase"`."""


def higher_is_better(config: TurnoutConfig) -> frozenset[str]:
    """`HIGHER_IS_BETTER` and the custom metrics `config` defines with `direction = "increase"`."""
    defined = {name for name, metric in config.metrics.items() if metric.direction == "increase"}
    return HIGHER_IS_BETTER | defined


class Outcome(StrEnum):
    """What a check, or a whole interval, came to."""

    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One check of one treatment variant over one window, with the numbers behind it."""

    check: str
    variant: str
    outcome: Outcome
    value: float | None
    threshold: float
    samples: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form, as stored."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CheckResult:
        """The result `to_dict` described."""
        return cls(
            str(data["check"]),
            str(data["variant"]),
            Outcome(data["outcome"]),
            None if data.get("value") is None else float(data["value"]),
            float(data["threshold"]),
            int(data["samples"]),
            str(data["reason"]),
        )


def interval_outcome(results: Sequence[CheckResult]) -> Outcome:
    """An interval fails if any check failed, passes only if every check passed, else is inconclusive."""
    outcomes = {result.outcome for result in results}
    if Outcome.FAIL in outcomes:
        return Outcome.FAIL
    if outcomes == {Outcome.PASS}:
        return Outcome.PASS
    return Outcome.INCONCLUSIVE


def run_checks(
    guardrails: GuardrailsConfig,
    windows: Mapping[str, VariantWindow],
    *,
    control: str,
    treatments: Sequence[str],
    with_control: bool = True,
    higher_is_better: frozenset[str] = HIGHER_IS_BETTER,
) -> list[CheckResult]:
    """Every check of `guardrails` on every treatment variant's window.

    `with_control=False` (the treatment serves everyone: there is no control traffic to compare
    with) leaves the margins against control out, rather than holding the rollout for ever.
    `higher_is_better` names the metrics where up is good (for margins against control).
    """
    empty = VariantWindow()
    results = []
    for variant in treatments:
        window = windows.get(variant, empty)
        for check in guardrails.all_checks():
            if check.no_worse_than_control_by is not None:
                if not with_control:
                    continue
                control_window = windows.get(control, empty)
                up = check.metric in higher_is_better
                results.append(
                    _against_control(check, guardrails, variant, window, control, control_window, up)
                )
            else:
                results.append(_absolute(check, guardrails.min_samples, variant, window))
    return results


def describe(check: CheckConfig) -> str:
    """A check in words: "success rate ≥ 0.95", "P99 latency ≤ 3,000 ms"."""
    label = _label(check.metric)
    if check.max is not None:
        return f"{label} ≤ {_number(check.metric, check.max)}"
    if check.min is not None:
        return f"{label} ≥ {_number(check.metric, check.min)}"
    return f"{label} no worse than control by {_margin(check.metric, check.no_worse_than_control_by or 0.0)}"


def metric_value(metric: str, window: VariantWindow) -> tuple[float | None, int]:
    """A metric's value in a window and how many observations it rests on."""
    n = window.requests
    if metric in ("success_rate", "error_rate", "mean_ms") or metric in _QUANTILES:
        if n == 0:
            return None, 0
        if metric == "success_rate":
            return (n - window.failures) / n, n
        if metric == "error_rate":
            return window.failures / n, n
        if metric == "mean_ms":
            return window.total_ms / n, n
        return window.sketch.quantile(_QUANTILES[metric]), n
    count, total, _ = window.values.get(metric, (0.0, 0.0, 0.0))
    return (total / count if count else None), int(count)


def _absolute(check: CheckConfig, min_samples: int, variant: str, window: VariantWindow) -> CheckResult:
    name = describe(check)
    value, samples = metric_value(check.metric, window)
    threshold = check.max if check.max is not None else check.min
    if threshold is None:  # validation gives every check exactly one bound
        raise ValueError(f"check {check!r} has no bound")
    what = f"{variant} {_label(check.metric)}"
    if value is None or samples < min_samples:
        shown = "no data" if value is None else _number(check.metric, value)
        reason = (
            f"{what} {shown} over {_count(samples, check.metric)}: inconclusive, fewer than "
            f"{min_samples:,} observations"
        )
        return CheckResult(name, variant, Outcome.INCONCLUSIVE, value, threshold, samples, reason)
    failed = value > threshold if check.max is not None else value < threshold
    sign = (">" if check.max is not None else "<") if failed else ("≤" if check.max is not None else "≥")
    shown, limit = _number(check.metric, value), _number(check.metric, threshold)
    if shown == limit and value != threshold:  # 0.949 < 0.95 must not read "0.95 < 0.95"
        shown = f"{value:.4g}"
    reason = f"{what} {shown} {sign} {limit} over {_count(samples, check.metric)}"
    return CheckResult(
        name, variant, Outcome.FAIL if failed else Outcome.PASS, value, threshold, samples, reason
    )


def _against_control(
    check: CheckConfig,
    guardrails: GuardrailsConfig,
    variant: str,
    treatment: VariantWindow,
    control_name: str,
    control: VariantWindow,
    higher_is_better: bool,
) -> CheckResult:
    from turnout.analysis import compare

    name = describe(check)
    margin = check.no_worse_than_control_by or 0.0
    metric = check.metric
    t_value, t_n = metric_value(metric, treatment)
    c_value, c_n = metric_value(metric, control)
    what = f"{variant} {_label(metric)}"
    if t_value is None or c_value is None or min(t_n, c_n) < guardrails.min_samples:
        reason = (
            f"{what} vs {control_name}: inconclusive, {t_n:,} and {c_n:,} observations "
            f"(fewer than {guardrails.min_samples:,} in an arm)"
        )
        return CheckResult(name, variant, Outcome.INCONCLUSIVE, None, margin, min(t_n, c_n), reason)
    relative = metric not in RATE_METRICS
    result = compare(
        _summary(metric, control), _summary(metric, treatment), relative=relative, alpha=guardrails.alpha
    )
    low, high = result.ci
    if (relative and c_value == 0) or not (math.isfinite(low) and math.isfinite(high)):
        reason = f"{what} vs {control_name}: inconclusive, {result.warning or 'no confidence interval'}"
        return CheckResult(name, variant, Outcome.INCONCLUSIVE, None, margin, min(t_n, c_n), reason)
    # The worst difference the interval allows, signed so that positive means "worse".
    worst = -low if higher_is_better else high
    failed = worst > margin
    level = f"{1 - guardrails.alpha:.0%}"
    shown = f"{worst:+.1%}" if relative else f"{worst:+.3f}"
    reason = (
        f"{what} {_number(metric, t_value)} vs {control_name} {_number(metric, c_value)}: "
        f"up to {shown} worse at {level} confidence {'>' if failed else '≤'} "
        f"{_margin(metric, margin)} allowed ({t_n:,} and {c_n:,} observations)"
    )
    return CheckResult(
        name, variant, Outcome.FAIL if failed else Outcome.PASS, worst, margin, min(t_n, c_n), reason
    )


def _summary(metric: str, window: VariantWindow) -> Any:
    """The window as `turnout.analysis` summary statistics: a proportion or a mean."""
    from turnout.analysis import Means, Proportions

    n = window.requests
    if metric == "success_rate":
        return Proportions(n=n, successes=n - window.failures)
    if metric == "error_rate":
        return Proportions(n=n, successes=window.failures)
    if metric == "mean_ms":
        return Means(n=n, sum=window.total_ms, sum_squares=window.squares_ms)
    count, total, squares = window.values.get(metric, (0.0, 0.0, 0.0))
    return Means(n=int(count), sum=total, sum_squares=squares)


def _label(metric: str) -> str:
    return _LABELS.get(metric, metric)


def _number(metric: str, value: float) -> str:
    if metric in RATE_METRICS:
        return f"{value:.2f}"
    if metric.endswith("_ms"):
        return f"{value:,.0f} ms" if value >= 100 else f"{value:.3g} ms"
    return f"{value:.4g}"


def _margin(metric: str, margin: float) -> str:
    return f"{margin:.3g}" if metric in RATE_METRICS else f"{margin:.1%}"


def _count(samples: int, metric: str) -> str:
    noun = "requests" if metric in _LABELS else "values"
    return f"{samples:,} {noun}"
