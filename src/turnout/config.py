"""The configuration model: one pydantic tree, validated once at load.

Shape and types are checked by pydantic; references between parts (a `serve` naming a
declared variant, a fallback naming a declared engine, conditions that compile) are
checked afterwards by `validate_config`, so every error names its exact path.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import json
import math
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    model_validator,
)

from turnout.errors import NOTHING, ConditionError, ConfigError, ConfigIssue
from turnout.limits import depth_message, too_deep

HashName = Literal["murmur3", "growthbook-v1", "growthbook-v2"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def parse_duration(value: Any) -> float:
    """Seconds from a number or a string such as "500ms", "10s", "5m", "2h", "1d"."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as '10s' or '1d'")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and (match := _DURATION.match(value)):
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    else:
        raise ValueError("expected a duration such as '500ms', '10s', '5m', '2h' or '1d'")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError("a duration must be positive and finite")
    return seconds


def _as_utc(value: datetime) -> datetime:
    # A start without a zone means UTC, not the server's local time: every process of a
    # deployment must agree on when each rollout step begins.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


Duration = Annotated[float, BeforeValidator(parse_duration)]
Percent = Annotated[float, Field(ge=0, le=100)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class _Model(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, str_strip_whitespace=True, use_attribute_docstrings=True
    )


class CircuitBreakerConfig(_Model):
    """Skip an engine for `reset_s` after `failures` consecutive failures."""

    enabled: bool = True
    """Whether the engine has a circuit breaker at all."""
    failures: int = Field(default=5, ge=1)
    """Consecutive failures that open the breaker."""
    reset_s: Duration = 30.0
    """How long an open breaker skips the engine before letting one trial call through."""


class EngineConfig(_Model):
    """Where an engine comes from and how it is run."""

    target: str | None = Field(default=None, pattern=_TARGET.pattern)
    """`"package.module:attribute"`, a sync or async callable; omit it for an engine registered in code."""
    plugin: str | None = None
    """An engine from the `turnout.engines` entry-point group (e.g. `"langgraph"`), built with `options`."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the plugin's factory."""
    version: str | None = None
    """Shown in spans, metrics and `turnout validate` (default: the callable's `version`, else "0")."""
    timeout_ms: float | None = Field(default=None, gt=0)
    """A call running longer fails with `EngineTimeoutError` and falls back; none means no limit."""
    fallback: str | None = None
    """The engine serving when this one raises, times out or its breaker is open (may be from code)."""
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()
    """The engine's circuit breaker."""
    shadow_safe: bool = True
    """False when the engine has side effects (writes, payments, emails): it may never run as a shadow."""


class RolloutConfig(_Model):
    """Time-based steps: the share (percent) the treatment variants get at each step."""

    steps: list[Percent] = Field(min_length=1)
    """Increasing shares (percent) the treatment variants get, one per step, e.g. `[10, 25, 50, 100]`."""
    every: Duration
    """How long each step lasts, e.g. `"1d"`."""
    start: Annotated[datetime, AfterValidator(_as_utc)] | None = None
    """When the first step begins (required; without a time zone it means UTC)."""


class CheckConfig(_Model):
    """One guardrail check on the treatment: a bound (`max` or `min`) or a margin against control."""

    metric: str = Field(min_length=1)
    """`success_rate`, `error_rate`, `mean_ms`, `p50_ms`, `p95_ms`, `p99_ms` or a custom per-request value."""
    max: float | None = None
    """The check fails when the treatment's value is above this."""
    min: float | None = None
    """The check fails when the treatment's value is below this."""
    no_worse_than_control_by: float | None = Field(default=None, ge=0)
    """The check fails when the confidence interval allows the treatment to be worse by more than this."""


class GuardrailsConfig(_Model):
    """Checks the treatment must pass every `interval`; enough failures in a row trigger `action`."""

    interval: Duration = 30.0
    """How often the checks run (and the sliding window they read)."""
    failure_threshold: int = Field(default=3, ge=1)
    """Consecutive failed intervals before the action is taken; one passing interval resets the count."""
    min_samples: int = Field(default=100, ge=1)
    """Fewer observations than this in the window make a check inconclusive, never a pass."""
    action: Literal["rollback", "pause", "alert"] = "rollback"
    """alert: notify only; pause: freeze the rollout at its step; rollback: serve the default to the rule."""
    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Significance level of the confidence intervals used by checks against control."""
    p99_ms: float | None = Field(default=None, gt=0)
    """Shorthand for a check `{metric = "p99_ms", max = ...}`."""
    max_p99_ms: float | None = Field(default=None, gt=0)
    """The same as `p99_ms`."""
    min_success_rate: Fraction | None = None
    """Shorthand for a check `{metric = "success_rate", min = ...}`."""
    max_error_rate: Fraction | None = None
    """Shorthand for a check `{metric = "error_rate", max = ...}`."""
    checks: list[CheckConfig] = Field(default_factory=list)
    """More checks: absolute bounds on any metric, or margins against control."""

    def all_checks(self) -> list[CheckConfig]:
        """The shorthand keys as checks, followed by `checks`."""
        shorthand = [
            CheckConfig(metric="success_rate", min=self.min_success_rate)
            if self.min_success_rate is not None
            else None,
            CheckConfig(metric="error_rate", max=self.max_error_rate)
            if self.max_error_rate is not None
            else None,
            CheckConfig(metric="p99_ms", max=self.p99_ms) if self.p99_ms is not None else None,
            CheckConfig(metric="p99_ms", max=self.max_p99_ms) if self.max_p99_ms is not None else None,
        ]
        return [check for check in shorthand if check is not None] + list(self.checks)


class ShadowConfig(_Model):
    """Run a candidate engine beside the served one on a sampled share of traffic; it is never served."""

    engine: str
    """The candidate engine: called with the served call's arguments, its result only compared."""
    sample: Fraction = 0.05
    """Share of targeting keys shadowed; sticky, so the same users are shadowed every time."""
    seed: str | None = None
    """Salt of the sampling hash (default `shadow:<flag>:<engine>`), independent of any split."""
    max_concurrency: int = Field(default=4, ge=1)
    """Most calls of this shadow running at once in a process."""
    queue_size: int = Field(default=100, ge=0)
    """Calls waiting for a free slot; a sample arriving when the queue is full is skipped and counted."""
    timeout_ms: float = Field(default=5000.0, gt=0)
    """A shadow call running longer is abandoned and counted as a timeout."""
    comparator: str = "normalised"
    """How results are compared: exact, normalised, json, a `turnout.comparators` plugin or "module:attr"."""
    match_score: Fraction = 1.0
    """A comparator that gives only a score counts a match from this score on."""
    mismatch_samples: int = Field(default=20, ge=0)
    """Worst mismatches kept per (flag, served engine, shadow engine, intent) for inspection; 0 keeps none."""
    sample_inputs: bool = True
    """Keep the call's arguments in mismatch samples (false keeps the two results only)."""
    sample_chars: int = Field(default=300, ge=0, le=100_000)
    """Longest argument or result text kept in a mismatch sample (credentials masked, longer text cut)."""


class RuleConfig(_Model):
    """One targeting rule: a condition, then a fixed variant or a split."""

    name: str | None = None
    """Shown in decisions, spans and metrics (default `rule-N`)."""
    when: dict[str, Any] | None = None
    """A condition in GrowthBook's operator language; omitted means always."""
    serve: str | None = None
    """A fixed variant to serve (reason `TARGETING_MATCH`); give `serve` or `split`."""
    split: dict[str, Percent] | None = None
    """Weights per variant summing to 100, sticky per user (reason `SPLIT`)."""
    rollout: RolloutConfig | None = None
    """Steps that move the split's treatment share up over time."""
    experiment: str | None = None
    """The experiment this rule belongs to: exposures and per-variant metrics are recorded under it."""
    seed: str | None = None
    """Hashing seed (default: the experiment name, else `flag:rule`); keep it when ramping."""
    coverage: Fraction = 1.0
    """The share of users the split takes in (GrowthBook's coverage); the others skip the rule."""
    hash: HashName | None = None
    """This rule's bucketing hash (default: the flag's `hash`)."""
    guardrails: GuardrailsConfig | None = None
    """Checks the treatment must pass: steps advance only while they do; failures pause or roll back."""
    enabled: bool = True
    """`false` keeps the rule in the file but out of evaluation."""
    shadow: ShadowConfig | None = None
    """A candidate engine to run beside the one this rule serves (overrides the flag's `shadow`)."""


class FlagConfig(_Model):
    """A flag: its variants, default, kill switch, overrides and ordered rules."""

    @model_validator(mode="before")
    @classmethod
    def _variants_from_values(cls, data: Any) -> Any:
        # `values = { on = true, off = false }` names the variants already.
        if isinstance(data, dict) and "variants" not in data and isinstance(data.get("values"), dict):
            return {**data, "variants": list(data["values"])}
        return data

    variants: list[str] = Field(min_length=1)
    """The values the flag can serve; for engine flags, engine names."""
    default: str
    """Served when no rule matches, when the flag is disabled, and on errors."""
    kind: Literal["engine", "value"] = "engine"
    """`engine`: the variant names the engine to run; `value`: a plain flag with no engine."""
    values: dict[str, JsonValue] = Field(default_factory=dict)
    """Value flags: the value each variant stands for (one JSON type); none means the variant's name."""
    hash_by: str | None = None
    """The attribute to bucket on (default: the targeting key, also used when the attribute is missing)."""
    hash: HashName = "murmur3"
    """Bucketing hash; `growthbook-v1`/`growthbook-v2` reproduce GrowthBook's assignments."""
    enabled: bool = True
    """Kill switch: `false` serves the default with reason `DISABLED`."""
    allow_overrides: bool = False
    """Honour request overrides (`X-Turnout-Override: flag=variant`, `?turnout_override=`)."""
    overrides: dict[str, str] = Field(default_factory=dict)
    """Forced variants by targeting key (reason `OVERRIDE`), e.g. for QA accounts."""
    rules: list[RuleConfig] = Field(default_factory=list)
    """Ordered rules; the first that matches decides."""
    shadow: ShadowConfig | None = None
    """A candidate engine to run beside whichever engine serves this flag."""


class IntentConfig(_Model):
    """The message-intent signal (fastText by default)."""

    enabled: bool = False
    """Evaluate rules that read `intent`/`intent_confidence` (`ENABLE_ML_INTENT`)."""
    classifier: str = "fasttext"
    """`fasttext`, or a plugin from the `turnout.classifiers` entry-point group."""
    model: str | None = None
    """The model file; none means the built-in model trained from the data shipped with turnout."""
    options: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments for the classifier."""
    min_confidence: Fraction = 0.6
    """Below this confidence the intent is `unknown_label`."""
    unknown_label: str = "unknown"
    """The label of an unclassified or low-confidence message."""
    max_chars: int = Field(default=2000, ge=1)
    """Only the first `max_chars` characters of a message are classified."""


class ThresholdsConfig(_Model):
    """Health thresholds for components and variants."""

    p99_ms_warning: float = Field(default=2000.0, gt=0)
    """A p99 latency (ms) above this is `warning`."""
    p99_ms_critical: float = Field(default=5000.0, gt=0)
    """A p99 latency (ms) above this is `critical`."""
    min_success_rate: Fraction = 0.95
    """A success rate below this is `warning`."""
    critical_success_rate: Fraction = 0.9
    """A success rate below this is `critical`."""
    min_samples: int = Field(default=20, ge=1)
    """Requests needed before a status other than `healthy` is given."""


class TelemetryConfig(_Model):
    """Tracing, metrics snapshots and where they are exported."""

    snapshot_interval_s: Duration = 10.0
    """How often a metrics snapshot goes to the exporters."""
    exporters: list[str] = Field(default_factory=lambda: ["jsonl"])
    """`jsonl`, `logging`, `prometheus`, `otel`, or plugins from `turnout.exporters`."""
    jsonl_path: str = "logs/metrics.jsonl"
    """The file the `jsonl` exporter appends one line per snapshot to."""
    jsonl_max_bytes: int = Field(default=50_000_000, ge=1024)
    """The size at which the jsonl file is rotated."""
    jsonl_backups: int = Field(default=5, ge=0)
    """How many rotated jsonl files are kept."""
    exporter_timeout_s: Duration = 5.0
    """How long one exporter may take with a snapshot before it is skipped."""
    exporter_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Keyword arguments per exporter name, e.g. `{posthog = {host = "..."}}`."""
    log_format: Literal["console", "json"] = "console"
    """How turnout's own log lines are rendered."""
    thresholds: ThresholdsConfig = ThresholdsConfig()
    """Health thresholds for every component and variant."""
    components: dict[str, ThresholdsConfig] = Field(default_factory=dict)
    """Thresholds for one component by name (e.g. `"intent.classify"`), replacing the defaults."""


class EventsConfig(_Model):
    """Exposure and business event delivery."""

    enabled: bool = True
    """Record exposures and `track()` events at all."""
    sink: str = "sqlite:///turnout_events.db"
    """Where events go: `sqlite:///path`, `postgresql://...`, `jsonl:///path`, or a plugin."""
    sinks: list[str] = Field(default_factory=list)
    """More sinks, each delivered on its own lane."""
    batch_size: int = Field(default=500, ge=1)
    """The most events written in one batch."""
    flush_interval_s: Duration = 1.0
    """How often queued events are delivered."""
    queue_size: int = Field(default=100_000, ge=1)
    """Events held in memory before `overflow` applies."""
    overflow: Literal["drop_newest", "drop_oldest"] = "drop_newest"
    """Which events are dropped (and counted) when the queue is full."""
    shutdown_timeout_s: Duration = 10.0
    """How long stopping waits for queued events to be delivered."""
    sink_timeout_s: Duration = 30.0
    """How long one batch write to a sink may take before it counts as failed and is retried."""
    base_properties: dict[str, Any] = Field(default_factory=dict)
    """Properties added to every event (the event's own win)."""


class HttpConfig(_Model):
    """How the middleware reads the routing context from a request."""

    user_header: str | None = "X-User-Id"
    """The header holding the targeting key (user id)."""
    user_cookie: str | None = None
    """A cookie holding the targeting key, when the header is absent."""
    user_query: str | None = None
    """A query parameter holding the targeting key, when header and cookie are absent."""
    session_header: str | None = "X-Session-Id"
    """The header holding the session id."""
    attribute_headers: dict[str, str] = Field(default_factory=dict)
    """Headers that become attributes, e.g. `{"X-Plan" = "plan"}`."""
    anonymous_cookie: str = "turnout_id"
    """Users without a key get a random id in this cookie, so they stay sticky."""
    anonymous_cookie_max_age: Duration = 365 * 86400.0
    """How long the anonymous cookie lasts."""
    variant_header: str | None = None
    """A response header listing `flag=variant` decisions (e.g. `"X-Turnout-Variant"`); none means off."""
    override_header: str = "X-Turnout-Override"
    """The request header forcing variants, for flags with `allow_overrides`."""
    override_query: str = "turnout_override"
    """The query parameter forcing variants, for flags with `allow_overrides`."""
    max_key_length: int = Field(default=256, ge=8, le=4096)
    """Longer ids are replaced by their SHA-256, so they stay sticky with a bounded size."""
    max_attribute_length: int = Field(default=256, ge=1, le=65536)
    """Longest attribute value read from a header; a longer one is cut to this length (counted)."""
    trusted_headers: bool = True
    """Read `user_header` and `attribute_headers`; false when no proxy sets or strips them."""
    overrides_from_headers: bool = False
    """Let a flag's per-user `overrides` match ids the request supplied (header, query, cookie)."""
    override_secret: str | None = None
    """Key that signs request overrides: `flag=variant;sig=<hex HMAC-SHA256 of "flag=variant">`."""
    override_ids: list[str] = Field(default_factory=list)
    """Targeting keys whose request overrides are accepted without a signature."""
    cookie_secure: bool = False
    """Always mark the anonymous-id cookie `Secure` (behind a proxy that terminates TLS)."""
    cookie_samesite: Literal["lax", "strict", "none"] = "lax"
    """The anonymous-id cookie's `SameSite`; "none" also marks it `Secure`, as browsers require."""


class RoutingConfig(_Model):
    """Switch whole kinds of rules on or off (the ENABLE_* environment switches)."""

    attribute_rules: bool = True
    """Evaluate rules that read request attributes (`ENABLE_CONTEXT_AWARE`)."""
    split_rules: bool = True
    """Evaluate percentage splits (`AB_TESTING_ENABLED=false` switches them off)."""
    attributes: list[str] = Field(default_factory=list)
    """Attributes your code sets on the routing context; rules naming others get a warning."""
    default_engine: str | None = None
    """Engine that serves a flag the configuration no longer declares and this process never saw."""


class PrivacyConfig(_Model):
    """What turnout stores about users and errors in spans, logs and events."""

    targeting_key: Literal["raw", "hash", "drop"] = "raw"
    """The targeting key in spans and events' distinct_id/session_id: as is, keyed hash, or left out."""
    salt: str | None = None
    """HMAC-SHA256 key for `targeting_key = "hash"` (required then); keep it stable so joins work."""
    exception_text: Literal["full", "type"] = "full"
    """What engine exceptions leave in spans and logs: type and message, or the type alone."""
    exception_text_length: int = Field(default=500, ge=0, le=100_000)
    """Longest exception message kept in spans and logs (longer ones are cut)."""


class PluginsConfig(_Model):
    """Plugin discovery: switch it off, or hide plugins by name (or `group:name`)."""

    autoload: bool = True
    """Discover plugins through entry points (`TURNOUT_DISABLE_PLUGIN_AUTOLOAD=1` switches it off)."""
    block: list[str] = Field(default_factory=list)
    """Plugins to hide, by name or `group:name`."""


class StateConfig(_Model):
    """Where state that outlives a process and is shared by replicas is kept (rollouts, audit log)."""

    url: str | None = None
    """`sqlite:///path` or `postgresql://...` (default: `turnout_state.db` next to the SQLite events file)."""


AdminRole = Literal["read", "write", "admin"]


class AdminConfig(_Model):
    """The admin HTTP API: who may read and change flags, and how replicas pick changes up."""

    tokens: dict[str, AdminRole] = Field(default_factory=dict)
    """Bearer tokens by the SHA-256 hex digest of the token: `{ "<sha256 hex>" = "write" }`."""
    insecure_local_only: bool = False
    """With no token configured, serve the admin API anyway, to loopback clients only (role admin)."""
    poll_interval_s: Duration = 5.0
    """Seconds between reads of the state store for changes made through another replica."""


class RolloutsConfig(_Model):
    """How guardrail actions are announced."""

    notifiers: list[str] = Field(default_factory=lambda: ["log"])
    """`log`, `webhook`, or `turnout.notifiers` plugins by name."""
    notifier_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Options per notifier, e.g. `webhook = { url = "https://..." }`."""


class MetricConfig(_Model):
    """A metric computed from events for every exposed user: a share of users, or a value per user."""

    type: Literal["proportion", "mean"]
    """proportion: the share of exposed users with at least one matching event; mean: a numeric property."""
    event: str | None = Field(default=None, min_length=1, max_length=200)
    """The event that counts, tracked after the user's first exposure (a mean defaults to `$record`)."""
    where: dict[str, str | int | float | bool] = Field(default_factory=dict)
    """Only events whose properties equal these values, e.g. `{ success = true }`."""
    value: str | None = Field(default=None, min_length=1, max_length=200)
    """mean: the numeric property to add up (default: the metric's name, as `turnout.record` writes it)."""
    per_user: Literal["sum", "mean"] = "sum"
    """mean: each user's total (users without events count 0) or average (users without events left out)."""
    capping: float | None = Field(default=None, gt=0, lt=1)
    """mean: winsorise per-user values at this percentile of all users' values (0.99 caps at the 99th)."""
    direction: Literal["increase", "decrease"] = "increase"
    """Whether a higher value is better (increase) or worse (decrease)."""
    window: Duration | None = None
    """Only events within this long after the user's first exposure, e.g. "7d" (default: any time after)."""


class ExperimentConfig(_Model):
    """How `turnout report` judges an experiment (the `experiment` name of a split rule)."""

    primary: str = "engine.success"
    """The metric that decides shipping: a `[metrics]` name, `engine.success` or `engine.latency_ms`."""
    guardrails: list[str] = Field(default_factory=lambda: ["engine.latency_ms"])
    """Metrics that must not get significantly worse; one that does stops the experiment."""
    secondary: list[str] = Field(default_factory=list)
    """Metrics shown for information; every other `[metrics]` entry is shown as secondary too."""
    control: str | None = None
    """The variant the others are compared with (default: the flag's default variant)."""
    mde: float = Field(default=0.05, gt=0)
    """The smallest relative change of the primary metric worth finding; sets the users needed."""
    min_improvement: float = Field(default=0.05, ge=0)
    """Ship only when the primary metric improves by at least this fraction (0.05 = 5%)."""
    alpha: float = Field(default=0.05, gt=0, lt=1)
    """Significance level for every metric, after adjusting for testing several at once."""
    power: float = Field(default=0.8, gt=0, lt=1)
    """The chance of finding a change of `mde` that the users needed are computed for."""
    correction: Literal["holm", "bh"] = "holm"
    """Multiple-testing adjustment across metrics: holm (family-wise) or bh (false discovery rate)."""
    sequential: bool = False
    """Always-valid intervals and p-values, so looking at the report every day keeps its error rate."""
    srm_alpha: float = Field(default=0.001, gt=0, lt=1)
    """A sample-ratio-mismatch p-value below this stops the experiment (assignment or logging is broken)."""
    min_users: int = Field(default=100, ge=2)
    """Fewer exposed users than this in a variant: keep running, whatever the numbers say."""


class OfrepConfig(_Model):
    """The OpenFeature Remote Evaluation Protocol endpoint (`turnout.ofrep_app()`)."""

    tokens: dict[str, str] = Field(default_factory=dict)
    """Bearer tokens by their SHA-256 (hex) to the caller's name; none means no token is asked for."""
    poll_interval_ms: int = Field(default=30_000, ge=1000)
    """The shortest bulk polling interval announced to clients in `/ofrep/v1/configuration`."""


class TurnoutConfig(_Model):
    """The whole configuration."""

    engines: dict[str, EngineConfig] = Field(default_factory=dict)
    """Engines by name."""
    flags: dict[str, FlagConfig] = Field(default_factory=dict)
    """Flags by key."""
    routing: RoutingConfig = RoutingConfig()
    """Which kinds of rules are evaluated."""
    intent: IntentConfig = IntentConfig()
    """The message-intent classifier."""
    telemetry: TelemetryConfig = TelemetryConfig()
    """Metrics snapshots, exporters and health thresholds."""
    events: EventsConfig = EventsConfig()
    """Exposure and business event delivery."""
    http: HttpConfig = HttpConfig()
    """How the middleware reads a request."""
    privacy: PrivacyConfig = PrivacyConfig()
    """What is stored about users and errors in spans, logs and events."""
    plugins: PluginsConfig = PluginsConfig()
    """Plugin discovery."""
    state: StateConfig = StateConfig()
    """Where rollout and guardrail state, the audit log and metric windows are kept."""
    rollouts: RolloutsConfig = RolloutsConfig()
    """How guarded rollouts are evaluated and who is notified."""
    metrics: dict[str, MetricConfig] = Field(default_factory=dict)
    """Business and custom metrics for experiment reports, by name."""
    admin: AdminConfig = AdminConfig()
    """The admin HTTP API: tokens and roles, and how often replicas read changes."""
    experiments: dict[str, ExperimentConfig] = Field(default_factory=dict)
    """How each experiment is judged (primary and guardrail metrics, MDE, verdict rule), by name."""
    ofrep: OfrepConfig = OfrepConfig()
    """The OpenFeature remote evaluation endpoint: who may call it."""


def validate_config(data: Mapping[str, Any], *, source: str | None = None) -> TurnoutConfig:
    """Validate raw data into a `TurnoutConfig`, or raise one `ConfigError` listing every issue."""
    deep = too_deep(data, "")
    if deep is not None:
        raise ConfigError([ConfigIssue(deep, "...", depth_message())], source=source)
    try:
        config = TurnoutConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        issues = [_issue(error) for error in errors]
        # Report the reference errors of everything else too, inside the flags and engines
        # that have a schema error included, so one run lists every problem.
        salvaged = _salvage(data, errors)
        if salvaged is not None:
            reported = [issue.path for issue in issues]
            issues.extend(
                issue for issue in check_references(salvaged) if not _overlaps(issue.path, reported)
            )
        raise ConfigError(sorted(issues, key=_order), source=source) from None
    issues = list(check_references(config))
    if issues:
        raise ConfigError(issues, source=source)
    return config


def load_file(path: str | Path) -> dict[str, Any]:
    """Read a TOML or JSON config file into raw data (no validation)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([ConfigIssue(str(path), NOTHING, f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), NOTHING, f"not valid UTF-8 text: {exc}")]) from None
    if not text.strip():
        # Most often a file caught mid-write (`cp`, a shell `>`): applying it would drop every flag.
        raise ConfigError([ConfigIssue(str(path), text, "the file is empty")])
    try:
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(path), NOTHING, f"not valid: {exc}")]) from None
    except (RecursionError, MemoryError):
        raise ConfigError([ConfigIssue(str(path), NOTHING, depth_message())]) from None
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(str(path), type(data).__name__, "must hold a table")])
    return data


ConditionChecker = Callable[[Any, str], object]
"""Checks a rule's `when` document (at the given path); raises ConditionError if it is not valid."""

_condition_checkers: list[ConditionChecker] = []


def register_condition_checker(check: ConditionChecker) -> None:
    """Have validation run `check` on every rule's `when`.

    The condition language belongs to the flags layer (`turnout.conditions` registers its
    compiler when it is imported, which `import turnout` does); this module, the floor of the
    package, imports nothing above it.
    """
    if check not in _condition_checkers:
        _condition_checkers.append(check)


def check_references(config: TurnoutConfig) -> Iterator[ConfigIssue]:
    """Yield every cross-reference problem: variants, engine names, fallback cycles, conditions.

    A fallback naming an engine the file does not declare is not one of them: the engine may
    be registered in code, so `turnout.references` checks it once the engines are known.
    """
    for name, engine in config.engines.items():
        path = f"engines.{name}"
        if not _NAME.match(name):
            yield ConfigIssue(path, name, "engine names are letters, digits, '_', '-', '.'")
        if engine.target and engine.plugin:
            yield ConfigIssue(f"{path}.plugin", engine.plugin, "give `target` or `plugin`, not both")
    yield from _fallback_cycles(config)
    yield from _check_shadows(config)
    yield from _check_analysis(config)
    if config.privacy.targeting_key == "hash" and not config.privacy.salt:
        yield ConfigIssue("privacy.salt", config.privacy.salt, 'targeting_key = "hash" needs a salt')
    yield from _shared_guarded_experiments(config)
    yield from _token_keys(config)
    for key, flag in config.flags.items():
        path = f"flags.{key}"
        declared = set(flag.variants)
        if len(declared) != len(flag.variants):
            yield ConfigIssue(f"{path}.variants", flag.variants, "variants must be unique")
        if "" in declared:
            yield ConfigIssue(f"{path}.variants", flag.variants, "a variant needs a name")
        if flag.default not in declared:
            yield ConfigIssue(f"{path}.default", flag.default, _unknown("variant", flag.variants))
        for user, variant in flag.overrides.items():
            if variant not in declared:
                yield ConfigIssue(f"{path}.overrides.{user}", variant, _unknown("variant", flag.variants))
        yield from _check_values(path, flag)
        names: set[str] = set()
        for index, rule in enumerate(flag.rules):
            rpath = f"{path}.rules[{index}]"
            name = rule.name or f"rule-{index}"
            if name in names:
                yield ConfigIssue(f"{rpath}.name", name, "rule names must be unique in a flag")
            names.add(name)
            if (rule.serve is None) == (rule.split is None):
                yield ConfigIssue(
                    rpath,
                    {"serve": rule.serve, "split": rule.split},
                    "a rule needs exactly one of `serve` or `split`",
                )
            if rule.serve is not None and rule.serve not in declared:
                yield ConfigIssue(f"{rpath}.serve", rule.serve, _unknown("variant", flag.variants))
            if rule.split is not None:
                yield from _check_split(rpath, rule, flag)
            elif rule.rollout is not None:
                yield ConfigIssue(f"{rpath}.rollout", rule.rollout.model_dump(), "a rollout needs a `split`")
            if rule.coverage < 1 and rule.split is None:
                yield ConfigIssue(f"{rpath}.coverage", rule.coverage, "coverage applies to a `split`")
            if rule.guardrails is not None:
                yield from _check_guardrails(rpath, rule, config.metrics)
            if rule.when is not None:
                for check in _condition_checkers:
                    try:
                        check(rule.when, f"{rpath}.when")
                    except ConditionError as exc:
                        yield ConfigIssue(exc.path, exc.value, exc.message)


VALUE_TYPES = ("boolean", "string", "integer", "float", "object")


def _token_keys(config: TurnoutConfig) -> Iterator[ConfigIssue]:
    """Token tables are keyed by each token's SHA-256: a key that is not one may be a pasted token."""
    for digest in config.admin.tokens:
        if not _SHA256.match(digest):
            # Never echo the key whole: a plain token put there by mistake must not reach a log.
            message = "a key is the SHA-256 hex digest of a token (64 hex digits)"
            yield ConfigIssue("admin.tokens", f"{digest[:4]}...", message)
    for digest in config.ofrep.tokens:
        if not _SHA256.match(digest.lower()):
            # The key is not in the path: it may be a token pasted where its hash belongs.
            yield ConfigIssue(
                "ofrep.tokens",
                digest,
                "keys are the tokens' SHA-256 as 64 hex digits, never the tokens themselves",
            )


def value_type(value: Any) -> str:
    """The OpenFeature type of a flag value: boolean, string, integer, float or object."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "object"


def _check_values(path: str, flag: FlagConfig) -> Iterator[ConfigIssue]:
    if not flag.values:
        return
    if flag.kind != "value":
        yield ConfigIssue(f"{path}.values", flag.values, 'only a flag with kind = "value" has values')
        return
    for variant, value in flag.values.items():
        if variant not in flag.variants:
            yield ConfigIssue(f"{path}.values.{variant}", value, _unknown("variant", flag.variants))
        elif value is None:
            yield ConfigIssue(f"{path}.values.{variant}", value, "a value cannot be null")
    missing = [variant for variant in flag.variants if variant not in flag.values]
    if missing:
        yield ConfigIssue(f"{path}.values", flag.values, f"every variant needs a value; missing: {missing}")
    types = {value_type(value) for value in flag.values.values() if value is not None}
    # An integer is a float too: `{ low = 0.5, high = 1 }` is a float flag.
    if types == {"integer", "float"}:
        return
    if len(types) > 1:
        first = value_type(flag.values.get(flag.default, next(iter(flag.values.values()))))
        for variant, value in flag.values.items():
            if value is not None and value_type(value) != first:
                yield ConfigIssue(
                    f"{path}.values.{variant}",
                    value,
                    f"all values of a flag have one type; the default's is {first}, this is "
                    f"{value_type(value)}",
                )


ENGINE_METRICS = ("engine.success", "engine.latency_ms")


def _check_analysis(config: TurnoutConfig) -> Iterator[ConfigIssue]:
    """Metric definitions that make sense, and experiments that name metrics and variants that exist."""
    for name, metric in config.metrics.items():
        path = f"metrics.{name}"
        if name in ENGINE_METRICS or not _NAME.match(name):
            yield ConfigIssue(path, name, "metric names are letters, digits, '_', '-', '.' (not engine.*)")
        if metric.type == "proportion":
            if metric.event is None:
                yield ConfigIssue(f"{path}.event", None, "a proportion metric needs the `event` it counts")
            for key in ("value", "capping"):
                if getattr(metric, key) is not None:
                    yield ConfigIssue(f"{path}.{key}", getattr(metric, key), "only a mean metric has this")
    known = set(config.metrics) | set(ENGINE_METRICS)
    experiments = {
        rule.experiment: flag for flag in config.flags.values() for rule in flag.rules if rule.experiment
    }
    for name, experiment in config.experiments.items():
        path = f"experiments.{name}"
        if name not in experiments:
            yield ConfigIssue(path, name, _unknown("experiment (no rule names it)", experiments))
        if experiment.primary not in known:
            yield ConfigIssue(f"{path}.primary", experiment.primary, _unknown("metric", known))
        for key in ("guardrails", "secondary"):
            for index, metric_name in enumerate(getattr(experiment, key)):
                if metric_name not in known:
                    yield ConfigIssue(f"{path}.{key}[{index}]", metric_name, _unknown("metric", known))
        flag = experiments.get(name)
        if experiment.control is not None and flag is not None and experiment.control not in flag.variants:
            yield ConfigIssue(f"{path}.control", experiment.control, _unknown("variant", flag.variants))


def _check_split(rpath: str, rule: RuleConfig, flag: FlagConfig) -> Iterator[ConfigIssue]:
    split = rule.split or {}
    for variant in split:
        if variant not in flag.variants:
            yield ConfigIssue(f"{rpath}.split.{variant}", variant, _unknown("variant", flag.variants))
    total = sum(split.values())
    if abs(total - 100.0) > 1e-6:
        yield ConfigIssue(f"{rpath}.split", split, f"weights must sum to 100, they sum to {total:g}")
    if rule.rollout is not None:
        steps = rule.rollout.steps
        if any(b <= a for a, b in itertools.pairwise(steps)):
            yield ConfigIssue(f"{rpath}.rollout.steps", steps, "steps must increase")
        if flag.default not in split or len(split) < 2:
            yield ConfigIssue(
                f"{rpath}.split",
                split,
                f"a rollout ramps from the flag default {flag.default!r}: the split must include it "
                "and at least one other variant",
            )
        elif all(weight == 0 for variant, weight in split.items() if variant != flag.default):
            yield ConfigIssue(
                f"{rpath}.split", split, "a rollout needs a non-default variant with a positive weight"
            )
        if rule.rollout.start is None:
            # A start taken from "when this process loaded the rule" would differ between
            # replicas and reset on every restart, moving treated users back.
            yield ConfigIssue(
                f"{rpath}.rollout.start",
                NOTHING,
                "a rollout needs a fixed `start` (e.g. 2026-12-01T09:00:00Z) so every process and restart "
                "agree on its step",
            )


def shadow_settings(config: TurnoutConfig) -> Iterator[tuple[str, str, str | None, ShadowConfig]]:
    """(path, flag, rule name or None for the flag's own, settings) of every configured shadow."""
    for key, flag in config.flags.items():
        if flag.shadow is not None:
            yield f"flags.{key}.shadow", key, None, flag.shadow
        for index, rule in enumerate(flag.rules):
            if rule.shadow is not None:
                yield f"flags.{key}.rules[{index}].shadow", key, rule.name or f"rule-{index}", rule.shadow


def _check_shadows(config: TurnoutConfig) -> Iterator[ConfigIssue]:
    # Engines registered in code are checked when they are (`add_engine(..., shadow_safe=False)`).
    for path, _, _, shadow in shadow_settings(config):
        engine = config.engines.get(shadow.engine)
        if engine is not None and not engine.shadow_safe:
            yield ConfigIssue(
                f"{path}.engine",
                shadow.engine,
                f"engines.{shadow.engine}.shadow_safe is false: this engine may not run as a shadow",
            )


RATE_METRICS = frozenset({"success_rate", "error_rate"})
QUANTILE_METRICS = frozenset({"p50_ms", "p95_ms", "p99_ms"})


def _shared_guarded_experiments(config: TurnoutConfig) -> Iterator[ConfigIssue]:
    # Guardrails read an experiment's per-variant metrics: two guarded rules feeding one
    # experiment would each be judged on the other's traffic too.
    seen: dict[str, str] = {}
    for key, flag in config.flags.items():
        for index, rule in enumerate(flag.rules):
            if rule.guardrails is None or rule.experiment is None:
                continue
            path = f"flags.{key}.rules[{index}].experiment"
            if rule.experiment in seen:
                yield ConfigIssue(
                    path, rule.experiment, f"{seen[rule.experiment]} has guardrails on this experiment too"
                )
            else:
                seen[rule.experiment] = path.removesuffix(".experiment")


def _check_guardrails(
    rpath: str, rule: RuleConfig, metrics: Mapping[str, MetricConfig]
) -> Iterator[ConfigIssue]:
    guardrails = rule.guardrails
    if guardrails is None:
        return
    gpath = f"{rpath}.guardrails"
    if rule.split is None:
        yield ConfigIssue(gpath, guardrails.model_dump(exclude_defaults=True), "guardrails need a `split`")
    if rule.experiment is None:
        yield ConfigIssue(
            f"{rpath}.experiment",
            None,
            "guardrails read the metrics of the rule's experiment: give the rule an `experiment` name",
        )
    if not guardrails.all_checks():
        yield ConfigIssue(
            gpath, guardrails.model_dump(exclude_defaults=True), "guardrails need at least one check"
        )
    for index, check in enumerate(guardrails.checks):
        cpath = f"{gpath}.checks[{index}]"
        given = [key for key in ("max", "min", "no_worse_than_control_by") if getattr(check, key) is not None]
        if len(given) != 1:
            yield ConfigIssue(
                cpath,
                check.model_dump(exclude_none=True),
                "a check needs exactly one of `max`, `min` or `no_worse_than_control_by`",
            )
        elif given == ["no_worse_than_control_by"] and check.metric in QUANTILE_METRICS:
            yield ConfigIssue(
                f"{cpath}.metric",
                check.metric,
                "a margin against control needs a rate or a mean (success_rate, error_rate, mean_ms, "
                "or a custom metric): a percentile has no confidence interval here",
            )
        defined = metrics.get(check.metric)
        if defined is not None and defined.type == "proportion":
            yield ConfigIssue(
                f"{cpath}.metric",
                check.metric,
                "a proportion metric is computed per user from events, for reports; guardrails check "
                "per-request values (a mean metric recorded with turnout.record)",
            )
        if check.metric in RATE_METRICS and given in (["max"], ["min"]):
            bound = check.max if check.max is not None else check.min
            if bound is not None and not 0 <= bound <= 1:
                yield ConfigIssue(f"{cpath}.{given[0]}", bound, "a rate is between 0 and 1")


def _fallback_cycles(config: TurnoutConfig) -> Iterator[ConfigIssue]:
    reported: set[str] = set()
    for start in config.engines:
        seen = [start]
        current = config.engines[start].fallback
        while current is not None and current in config.engines:
            if current in seen:
                cycle = [*seen[seen.index(current) :], current]
                if current not in reported:
                    reported.update(cycle)
                    # Named at an engine in the cycle: `start` may only lead into it.
                    yield ConfigIssue(
                        f"engines.{current}.fallback",
                        config.engines[current].fallback,
                        "fallback cycle: " + " -> ".join(cycle),
                    )
                break
            seen.append(current)
            current = config.engines[current].fallback


# Stand-ins for required keys that are missing, so the rest of their flag can be checked.
_STAND_INS: dict[str, Any] = {"every": "1d", "steps": [100.0]}


def _salvage(data: Mapping[str, Any], errors: list[Any]) -> TurnoutConfig | None:
    """`data` with every value that failed removed (and missing keys stood in for), validated.

    Unknown keys are dropped, bad values fall back to their defaults, a missing `default` or
    `variants` is taken from what the flag names elsewhere; None if it still does not validate.
    """
    patched: Any = copy.deepcopy(dict(data))
    for _ in range(4):
        for error in errors:
            _patch(patched, tuple(error["loc"]), error["type"] == "missing")
        try:
            return TurnoutConfig.model_validate(patched)
        except ValidationError as exc:
            errors = exc.errors()
    return None


def _patch(data: Any, loc: tuple[Any, ...], missing: bool) -> None:
    parent = data
    for part in loc[:-1]:
        try:
            parent = parent[part]
        except (KeyError, IndexError, TypeError):
            return
    key = loc[-1] if loc else None
    if isinstance(parent, dict) and missing:
        parent[key] = _stand_in(parent, key)
        if parent[key] is None:
            del parent[key]
            _patch(data, loc[:-1], missing=False)
    elif isinstance(parent, dict) and key in parent:
        del parent[key]
    elif isinstance(parent, list) and isinstance(key, int) and key < len(parent):
        parent[key] = {} if isinstance(parent[key], dict) else str(parent[key])
    elif len(loc) > 1:
        _patch(data, loc[:-1], missing=False)


def _stand_in(table: dict[str, Any], key: Any) -> Any:
    variants = table.get("variants")
    if key == "default" and isinstance(variants, list) and variants:
        return variants[0]
    if key == "variants":
        named = [table.get("default")]
        for rule in table.get("rules") or []:
            if isinstance(rule, dict):
                named.append(rule.get("serve"))
                named.extend(rule.get("split") or {})
        names = sorted({str(name) for name in named if name is not None})
        return names or None
    return _STAND_INS.get(str(key))


def _order(issue: ConfigIssue) -> tuple[Any, ...]:
    # Numerically by index, so rules[10] comes after rules[2].
    parts = re.split(r"[.\[\]]+", issue.path)
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in parts)


def _overlaps(path: str, reported: list[str]) -> bool:
    """True if `path` is at, inside or around a path already reported."""
    return any(_within(path, other) or _within(other, path) for other in reported)


def _within(path: str, prefix: str) -> bool:
    return path == prefix or (path.startswith(prefix) and path[len(prefix)] in ".[")


def unknown_message(kind: str, known: Any) -> str:
    """ "unknown engine; declared: a, b" — the message for a name that is not declared."""
    names = ", ".join(sorted(known)) or "none"
    return f"unknown {kind}; declared: {names}"


_unknown = unknown_message


def _issue(error: Any) -> ConfigIssue:
    loc = tuple(error["loc"])
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = str(error["msg"])
    value = error.get("input")
    if error["type"] == "extra_forbidden":
        message = _unknown_key(loc)
    elif error["type"] == "missing":
        message, value = "required key is missing", NOTHING
    return ConfigIssue(path or "<root>", value, message)


def closest_key(loc: tuple[Any, ...]) -> str | None:
    """The valid key closest to the unknown one at `loc` (its last part), if one is close."""
    close = difflib.get_close_matches(str(loc[-1]), _keys_at(loc[:-1]), n=1, cutoff=0.6)
    return close[0] if close else None


def _unknown_key(loc: tuple[Any, ...]) -> str:
    close = closest_key(loc)
    if close is not None:
        return f"unknown key; did you mean `{close}`?"
    keys = _keys_at(loc[:-1])
    return f"unknown key; valid keys: {', '.join(keys)}" if keys else "unknown key"


def _keys_at(loc: tuple[Any, ...]) -> list[str]:
    """The keys the model allows at `loc` (table names and list indexes are walked through)."""
    model: Any = TurnoutConfig
    parts = list(loc)
    while parts:
        fields = getattr(model, "model_fields", {})
        field = fields.get(parts.pop(0))
        if field is None:
            return []
        annotation = field.annotation
        model = _model_in(annotation)
        # dict[str, Model] and list[Model] hold one more level: the name or the index.
        if model is not None and get_origin(_unwrap(annotation)) in (dict, list) and parts:
            parts.pop(0)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return list(model.model_fields)
    return []


def _unwrap(annotation: Any) -> Any:
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) in (UnionType, Union) and len(args) == 1:
        return args[0]
    return annotation


def _model_in(annotation: Any) -> Any:
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (dict, list):
        inner = get_args(annotation)[-1]
        return inner if isinstance(inner, type) and issubclass(inner, BaseModel) else None
    return None
