"""Checks on windows: absolute bounds on built-in and custom metrics, inconclusive below min_samples."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.config import GuardrailsConfig, validate_config
from turnout.errors import ConfigError
from turnout.rollouts.checks import CheckResult, Outcome, higher_is_better, interval_outcome, run_checks
from turnout.rollouts.windows import VariantWindow


def window(
    requests: int, failures: int = 0, latency_ms: float = 100.0, **values: list[float]
) -> VariantWindow:
    w = VariantWindow(
        requests=requests,
        failures=failures,
        total_ms=requests * latency_ms,
        squares_ms=requests * latency_ms**2,
        values=dict(values),
    )
    for _ in range(requests):
        w.sketch.add(latency_ms)
    return w


def check(
    guardrails: dict[str, object], treatment: VariantWindow, control: VariantWindow | None = None
) -> list[CheckResult]:
    windows = {"workflow": treatment, "legacy": control or window(0)}
    return run_checks(
        GuardrailsConfig.model_validate(guardrails), windows, control="legacy", treatments=["workflow"]
    )


def test_shorthand_keys_become_checks_with_reasons_in_numbers() -> None:
    results = check(
        {"min_success_rate": 0.95, "p99_ms": 3000, "max_error_rate": 0.1, "min_samples": 100},
        window(1204, failures=458, latency_ms=3500.0),
    )
    assert [(r.check, r.outcome) for r in results] == [
        ("success rate ≥ 0.95", Outcome.FAIL),
        ("error rate ≤ 0.10", Outcome.FAIL),
        ("P99 latency ≤ 3,000 ms", Outcome.FAIL),
    ]
    assert results[0].reason == "workflow success rate 0.62 < 0.95 over 1,204 requests"
    assert results[0].samples == 1204
    assert results[2].reason.startswith("workflow P99 latency 3,")
    assert results[2].value == pytest.approx(3500.0, rel=0.01)
    assert interval_outcome(results) is Outcome.FAIL


def test_max_p99_ms_is_the_same_as_p99_ms() -> None:
    (result,) = check({"max_p99_ms": 200}, window(200, latency_ms=150.0))
    assert (result.check, result.outcome) == ("P99 latency ≤ 200 ms", Outcome.PASS)
    assert result.reason.startswith("workflow P99 latency 15")  # 150 ms within the sketch's 0.5 %
    assert result.reason.endswith(" ms ≤ 200 ms over 200 requests")


def test_fewer_samples_than_min_samples_is_inconclusive_never_a_pass() -> None:
    results = check({"min_success_rate": 0.95, "min_samples": 100}, window(99))
    assert [r.outcome for r in results] == [Outcome.INCONCLUSIVE]
    assert results[0].reason == (
        "workflow success rate 1.00 over 99 requests: inconclusive, fewer than 100 observations"
    )
    assert interval_outcome(results) is Outcome.INCONCLUSIVE
    no_traffic = check({"min_success_rate": 0.95}, window(0))
    assert no_traffic[0].reason.startswith("workflow success rate no data over 0 requests: inconclusive")


def test_one_failure_beats_inconclusive_and_a_pass_needs_every_check() -> None:
    (passed,) = check({"min_success_rate": 0.5, "min_samples": 10}, window(20))
    (unsure,) = check({"min_success_rate": 0.5, "min_samples": 100}, window(20))
    (failed,) = check({"min_success_rate": 0.99, "min_samples": 10}, window(20, failures=5))
    (close,) = check({"min_success_rate": 0.95, "min_samples": 10}, window(1000, failures=51))
    assert close.reason == "workflow success rate 0.949 < 0.95 over 1,000 requests"
    assert interval_outcome([passed, unsure]) is Outcome.INCONCLUSIVE
    assert interval_outcome([unsure, failed]) is Outcome.FAIL
    assert interval_outcome([passed, passed]) is Outcome.PASS


def test_a_custom_metric_is_checked_on_its_per_request_values() -> None:
    cost = [200.0, 6.0, 0.2]  # 200 values summing to $6: $0.03 a request
    (result,) = check({"checks": [{"metric": "cost_usd", "max": 0.02}]}, window(300, cost_usd=cost))
    assert (result.check, result.outcome, result.samples) == ("cost_usd ≤ 0.02", Outcome.FAIL, 200)
    assert result.reason == "workflow cost_usd 0.03 > 0.02 over 200 values"
    (missing,) = check({"checks": [{"metric": "quality", "min": 0.8}]}, window(300))
    assert missing.outcome is Outcome.INCONCLUSIVE
    assert (
        missing.reason == "workflow quality no data over 0 values: inconclusive, fewer than 100 observations"
    )


def test_every_treatment_variant_is_checked() -> None:
    windows = {"a": window(200), "b": window(200, failures=100), "control": window(200)}
    results = run_checks(
        GuardrailsConfig(min_success_rate=0.9), windows, control="control", treatments=["a", "b"]
    )
    assert [(r.variant, r.outcome) for r in results] == [("a", Outcome.PASS), ("b", Outcome.FAIL)]


def canary(guardrails: dict[str, object], **rule: object) -> dict[str, Any]:
    base = {
        "name": "canary",
        "experiment": "x",
        "split": {"legacy": 90, "workflow": 10},
        "guardrails": guardrails,
    }
    return {
        "flags": {"f": {"variants": ["legacy", "workflow"], "default": "legacy", "rules": [{**base, **rule}]}}
    }


@pytest.mark.parametrize(
    ("guardrails", "rule", "path", "message"),
    [
        ({"checks": [{"metric": "cost_usd"}]}, {}, "flags.f.rules[0].guardrails.checks[0]", "exactly one of"),
        (
            {"checks": [{"metric": "x", "max": 1, "min": 0}]},
            {},
            "flags.f.rules[0].guardrails.checks[0]",
            "exactly one",
        ),
        (
            {"checks": [{"metric": "p99_ms", "no_worse_than_control_by": 0.1}]},
            {},
            "flags.f.rules[0].guardrails.checks[0].metric",
            "a percentile has no confidence interval",
        ),
        (
            {"checks": [{"metric": "success_rate", "min": 95}]},
            {},
            "flags.f.rules[0].guardrails.checks[0].min",
            "between 0 and 1",
        ),
        ({"min_samples": 10}, {}, "flags.f.rules[0].guardrails", "at least one check"),
        (
            {"p99_ms": 100},
            {"experiment": None},
            "flags.f.rules[0].experiment",
            "give the rule an `experiment`",
        ),
        ({"interval": "soon", "p99_ms": 100}, {}, "flags.f.rules[0].guardrails.interval", "duration"),
        ({"action": "panic", "p99_ms": 100}, {}, "flags.f.rules[0].guardrails.action", "rollback"),
    ],
)
def test_bad_guardrails_name_their_path_and_value(
    guardrails: dict[str, object], rule: dict[str, object], path: str, message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        validate_config(canary(guardrails, **rule))
    (issue,) = raised.value.issues
    assert issue.path == path
    assert message in issue.message


def test_two_guarded_rules_cannot_share_an_experiment() -> None:
    config = canary({"p99_ms": 100})
    rules = config["flags"]["f"]["rules"]
    rules.append({**rules[0], "name": "second"})
    with pytest.raises(ConfigError) as raised:
        validate_config(config)
    (issue,) = raised.value.issues
    assert (issue.path, issue.value) == ("flags.f.rules[1].experiment", "x")
    assert issue.message == "flags.f.rules[0] has guardrails on this experiment too"


def test_the_documented_guardrails_validate() -> None:
    config = validate_config(
        canary(
            {
                "interval": "30s",
                "failure_threshold": 3,
                "min_samples": 100,
                "action": "rollback",
                "min_success_rate": 0.95,
                "p99_ms": 3000,
                "checks": [
                    {"metric": "cost_usd", "max": 0.02},
                    {"metric": "success_rate", "no_worse_than_control_by": 0.02},
                ],
            }
        )
    )
    guardrails = config.flags["f"].rules[0].guardrails
    assert guardrails is not None
    assert [c.metric for c in guardrails.all_checks()] == [
        "success_rate",
        "p99_ms",
        "cost_usd",
        "success_rate",
    ]
    assert guardrails.interval == 30.0


def rates(requests: int, success_rate: float) -> VariantWindow:
    return window(requests, failures=round(requests * (1 - success_rate)))


def margin(metric: str, by: float) -> dict[str, object]:
    return {"checks": [{"metric": metric, "no_worse_than_control_by": by}], "min_samples": 100}


def test_a_margin_against_control_is_judged_on_the_interval_not_the_point_estimate() -> None:
    # One point worse, well within a 2-point margin, but 1,000 requests a side leave an
    # interval reaching past -2 points: not shown to be within the margin, so it fails.
    (noisy,) = check(margin("success_rate", 0.02), rates(1000, 0.94), rates(1000, 0.95))
    assert noisy.outcome is Outcome.FAIL
    assert noisy.value is not None and noisy.value > 0.02
    assert noisy.reason.startswith("workflow success rate 0.94 vs legacy 0.95: up to +0.0")
    assert noisy.reason.endswith("worse at 95% confidence > 0.02 allowed (1,000 and 1,000 observations)")
    # The same difference on 100,000 requests a side is shown to be within the margin.
    (sure,) = check(margin("success_rate", 0.02), rates(100_000, 0.94), rates(100_000, 0.95))
    assert sure.outcome is Outcome.PASS
    assert sure.value is not None and 0.01 < sure.value < 0.02


def test_a_margin_on_a_mean_is_a_fraction_of_control() -> None:
    slower = window(2000, latency_ms=130.0)
    slower.squares_ms += 2000 * 40.0**2  # a standard deviation of 40 ms, so the interval has a width
    (failed,) = check(margin("mean_ms", 0.1), slower, window(2000, latency_ms=100.0))
    assert failed.outcome is Outcome.FAIL
    assert "worse at 95% confidence > 10.0% allowed" in failed.reason
    steady = window(2000, latency_ms=101.0)
    steady.squares_ms += 2000 * 10.0**2
    (passed,) = check(margin("mean_ms", 0.1), steady, window(2000, latency_ms=100.0))
    assert passed.outcome is Outcome.PASS


def test_error_rate_and_custom_metrics_count_up_as_worse() -> None:
    (errors,) = check(margin("error_rate", 0.01), rates(5000, 0.90), rates(5000, 0.99))
    assert errors.outcome is Outcome.FAIL
    cheap = window(500, cost_usd=[500.0, 5.0, 0.06])  # mean 0.010, sd ~0.0045
    dear = window(500, cost_usd=[500.0, 10.0, 0.25])  # mean 0.020
    (costs,) = check(margin("cost_usd", 0.1), dear, cheap)
    assert costs.outcome is Outcome.FAIL
    (fine,) = check(margin("cost_usd", 0.1), cheap, dear)
    assert fine.outcome is Outcome.PASS


def test_at_100_percent_there_is_no_control_to_compare_with() -> None:
    guardrails = GuardrailsConfig.model_validate(
        {"min_success_rate": 0.9, "checks": [{"metric": "success_rate", "no_worse_than_control_by": 0.02}]}
    )
    windows = {"workflow": window(500)}
    results = run_checks(guardrails, windows, control="legacy", treatments=["workflow"], with_control=False)
    assert [(r.check, r.outcome) for r in results] == [("success rate ≥ 0.90", Outcome.PASS)]


def test_a_custom_metric_where_up_is_good_follows_its_metrics_definition() -> None:
    config = validate_config({"metrics": {"quality": {"type": "mean", "direction": "increase"}}})
    worse = window(500, quality=[500.0, 300.0, 200.0])  # mean 0.6
    better = window(500, quality=[500.0, 400.0, 340.0])  # mean 0.8
    guardrails = GuardrailsConfig.model_validate(margin("quality", 0.05))
    windows = {"workflow": worse, "legacy": better}
    (as_quality,) = run_checks(
        guardrails,
        windows,
        control="legacy",
        treatments=["workflow"],
        higher_is_better=higher_is_better(config),
    )
    assert as_quality.outcome is Outcome.FAIL  # lower quality is worse
    (as_cost,) = run_checks(guardrails, windows, control="legacy", treatments=["workflow"])
    assert as_cost.outcome is Outcome.PASS  # read as a cost, lower is better


def test_a_relative_margin_on_a_control_mean_of_zero_is_inconclusive() -> None:
    free = window(500, cost_usd=[500.0, 0.0, 0.0])
    paid = window(500, cost_usd=[500.0, 5.0, 0.06])
    (result,) = check(margin("cost_usd", 0.1), paid, free)
    assert result.outcome is Outcome.INCONCLUSIVE
    assert result.reason == (
        "workflow cost_usd vs legacy: inconclusive, a relative lift needs a control mean other than 0"
    )


def test_a_proportion_metric_cannot_be_a_guardrail_check() -> None:
    config = canary({"checks": [{"metric": "resolved", "min": 0.5}]})
    config["metrics"] = {"resolved": {"type": "proportion", "event": "session.resolved"}}
    with pytest.raises(ConfigError) as raised:
        validate_config(config)
    (issue,) = raised.value.issues
    assert (issue.path, issue.value) == ("flags.f.rules[0].guardrails.checks[0].metric", "resolved")
    assert "a proportion metric is computed per user from events" in issue.message


def test_a_margin_with_too_little_control_traffic_is_inconclusive() -> None:
    (result,) = check(margin("success_rate", 0.02), rates(5000, 0.99), rates(40, 0.99))
    assert result.outcome is Outcome.INCONCLUSIVE
    assert result.reason == (
        "workflow success rate vs legacy: inconclusive, 5,000 and 40 observations (fewer than 100 in an arm)"
    )
