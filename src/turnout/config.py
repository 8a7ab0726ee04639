"""The configuration model: one pydantic tree, validated once at load.

Shape and types are checked by pydantic; references between parts (a `serve` naming a
declared variant, a fallback naming a declared engine, conditions that compile) are
checked afterwards by `validate_config`, so every error names its exact path.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from turnout.errors import ConditionError, ConfigError, ConfigIssue

HashName = Literal["murmur3", "growthbook-v1", "growthbook-v2"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


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
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class CircuitBreakerConfig(_Model):
    """Skip an engine for `reset_s` after `failures` consecutive failures."""

    enabled: bool = True
    failures: int = Field(default=5, ge=1)
    reset_s: Duration = 30.0


class EngineConfig(_Model):
    """Where an engine comes from and how it is run."""

    target: str | None = Field(default=None, pattern=_TARGET.pattern)
    plugin: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    version: str | None = None
    timeout_ms: float | None = Field(default=None, gt=0)
    fallback: str | None = None
    circuit_breaker: CircuitBreakerConfig = CircuitBreakerConfig()


class RolloutConfig(_Model):
    """Time-based steps: the share (percent) the treatment variants get at each step."""

    steps: list[Percent] = Field(min_length=1)
    every: Duration
    start: Annotated[datetime, AfterValidator(_as_utc)] | None = None


class CheckConfig(_Model):
    """One guardrail check on the treatment: a bound (`max` or `min`) or a margin against control."""

    metric: str = Field(min_length=1)
    """success_rate, error_rate, mean_ms, p50_ms, p95_ms, p99_ms, or a custom per-request metric."""
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


class RuleConfig(_Model):
    """One targeting rule: a condition, then a fixed variant or a split."""

    name: str | None = None
    when: dict[str, Any] | None = None
    serve: str | None = None
    split: dict[str, Percent] | None = None
    rollout: RolloutConfig | None = None
    experiment: str | None = None
    seed: str | None = None
    guardrails: GuardrailsConfig | None = None
    enabled: bool = True


class FlagConfig(_Model):
    """A flag: its variants, default, kill switch, overrides and ordered rules."""

    variants: list[str] = Field(min_length=1)
    default: str
    kind: Literal["engine", "value"] = "engine"
    hash_by: str | None = None
    hash: HashName = "murmur3"
    enabled: bool = True
    allow_overrides: bool = False
    overrides: dict[str, str] = Field(default_factory=dict)
    rules: list[RuleConfig] = Field(default_factory=list)


class IntentConfig(_Model):
    """The message-intent signal (fastText by default)."""

    enabled: bool = False
    classifier: str = "fasttext"
    model: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)
    min_confidence: Fraction = 0.6
    unknown_label: str = "unknown"
    max_chars: int = Field(default=2000, ge=1)


class ThresholdsConfig(_Model):
    """Health thresholds for components and variants."""

    p99_ms_warning: float = Field(default=2000.0, gt=0)
    p99_ms_critical: float = Field(default=5000.0, gt=0)
    min_success_rate: Fraction = 0.95
    critical_success_rate: Fraction = 0.9
    min_samples: int = Field(default=20, ge=1)


class TelemetryConfig(_Model):
    """Tracing, metrics snapshots and where they are exported."""

    snapshot_interval_s: Duration = 10.0
    exporters: list[str] = Field(default_factory=lambda: ["jsonl"])
    jsonl_path: str = "logs/metrics.jsonl"
    jsonl_max_bytes: int = Field(default=50_000_000, ge=1024)
    jsonl_backups: int = Field(default=5, ge=0)
    exporter_timeout_s: Duration = 5.0
    exporter_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    log_format: Literal["console", "json"] = "console"
    thresholds: ThresholdsConfig = ThresholdsConfig()
    components: dict[str, ThresholdsConfig] = Field(default_factory=dict)


class EventsConfig(_Model):
    """Exposure and business event delivery."""

    enabled: bool = True
    sink: str = "sqlite:///turnout_events.db"
    sinks: list[str] = Field(default_factory=list)
    batch_size: int = Field(default=500, ge=1)
    flush_interval_s: Duration = 1.0
    queue_size: int = Field(default=100_000, ge=1)
    overflow: Literal["drop_newest", "drop_oldest"] = "drop_newest"
    shutdown_timeout_s: Duration = 10.0
    base_properties: dict[str, Any] = Field(default_factory=dict)


class HttpConfig(_Model):
    """How the middleware reads the routing context from a request."""

    user_header: str | None = "X-User-Id"
    user_cookie: str | None = None
    user_query: str | None = None
    session_header: str | None = "X-Session-Id"
    attribute_headers: dict[str, str] = Field(default_factory=dict)
    anonymous_cookie: str = "turnout_id"
    anonymous_cookie_max_age: Duration = 365 * 86400.0
    variant_header: str | None = None
    override_header: str = "X-Turnout-Override"
    override_query: str = "turnout_override"
    max_key_length: int = Field(default=256, ge=8, le=4096)


class RoutingConfig(_Model):
    """Switch whole kinds of rules on or off (the seed's ENABLE_* switches)."""

    attribute_rules: bool = True
    split_rules: bool = True


class PluginsConfig(_Model):
    """Plugin discovery: switch it off, or hide plugins by name (or `group:name`)."""

    autoload: bool = True
    block: list[str] = Field(default_factory=list)


class StateConfig(_Model):
    """Where state that outlives a process and is shared by replicas is kept (rollouts, audit log)."""

    url: str | None = None
    """sqlite:///path or postgresql://...; by default turnout_state.db next to the SQLite events file."""


class RolloutsConfig(_Model):
    """How guardrail actions are announced."""

    notifiers: list[str] = Field(default_factory=lambda: ["log"])
    """log, webhook, or `turnout.notifiers` plugins by name."""
    notifier_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    """Options per notifier, e.g. `webhook = { url = "https://..." }`."""


class TurnoutConfig(_Model):
    """The whole configuration."""

    engines: dict[str, EngineConfig] = Field(default_factory=dict)
    flags: dict[str, FlagConfig] = Field(default_factory=dict)
    routing: RoutingConfig = RoutingConfig()
    intent: IntentConfig = IntentConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    events: EventsConfig = EventsConfig()
    http: HttpConfig = HttpConfig()
    plugins: PluginsConfig = PluginsConfig()
    state: StateConfig = StateConfig()
    rollouts: RolloutsConfig = RolloutsConfig()


def validate_config(data: Mapping[str, Any], *, source: str | None = None) -> TurnoutConfig:
    """Validate raw data into a `TurnoutConfig`, or raise one `ConfigError` listing every issue."""
    try:
        config = TurnoutConfig.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        issues = [_issue(error) for error in errors]
        # Report the valid parts' reference errors too, so one run lists every problem.
        with contextlib.suppress(ValidationError):
            issues.extend(check_references(TurnoutConfig.model_validate(_valid_parts(data, errors))))
        raise ConfigError(issues, source=source) from None
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
        raise ConfigError([ConfigIssue(str(path), None, f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(str(path), None, f"not valid UTF-8 text: {exc}")]) from None
    try:
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError([ConfigIssue(str(path), None, f"not valid: {exc}")]) from None
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(str(path), type(data).__name__, "must hold a table")])
    return data


def check_references(config: TurnoutConfig) -> Iterator[ConfigIssue]:
    """Yield every cross-reference problem: variants, engines, fallbacks, conditions."""
    from turnout.conditions import compile_condition

    for name, engine in config.engines.items():
        path = f"engines.{name}"
        if not _NAME.match(name):
            yield ConfigIssue(path, name, "engine names are letters, digits, '_', '-', '.'")
        if engine.target and engine.plugin:
            yield ConfigIssue(f"{path}.plugin", engine.plugin, "give `target` or `plugin`, not both")
        if engine.fallback is not None and engine.fallback not in config.engines:
            yield ConfigIssue(f"{path}.fallback", engine.fallback, _unknown("engine", config.engines))
    yield from _fallback_cycles(config)
    yield from _shared_guarded_experiments(config)
    for key, flag in config.flags.items():
        path = f"flags.{key}"
        declared = set(flag.variants)
        if len(declared) != len(flag.variants):
            yield ConfigIssue(f"{path}.variants", flag.variants, "variants must be unique")
        if flag.default not in declared:
            yield ConfigIssue(f"{path}.default", flag.default, _unknown("variant", flag.variants))
        for user, variant in flag.overrides.items():
            if variant not in declared:
                yield ConfigIssue(f"{path}.overrides.{user}", variant, _unknown("variant", flag.variants))
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
            if rule.guardrails is not None:
                yield from _check_guardrails(rpath, rule)
            if rule.when is not None:
                try:
                    compile_condition(rule.when, path=f"{rpath}.when")
                except ConditionError as exc:
                    yield ConfigIssue(exc.path, exc.value, exc.message)


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
                None,
                "a rollout needs a fixed `start` (e.g. 2026-12-01T09:00:00Z) so every process and restart "
                "agree on its step",
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


def _check_guardrails(rpath: str, rule: RuleConfig) -> Iterator[ConfigIssue]:
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


def _valid_parts(data: Mapping[str, Any], errors: list[Any]) -> dict[str, Any]:
    """`data` without what failed: bad flags and sections left out, bad engines emptied."""
    bad = {tuple(error["loc"][:2]) for error in errors}
    part: dict[str, Any] = {}
    for section, value in data.items():
        if section in ("engines", "flags") and isinstance(value, Mapping) and (section,) not in bad:
            # A bad engine stays declared (empty) so fallbacks naming it are not misreported.
            part[section] = {
                name: {} if (section, name) in bad else item
                for name, item in value.items()
                if section == "engines" or (section, name) not in bad
            }
        elif not any(loc[:1] == (section,) for loc in bad):
            part[section] = value
    return part


def _unknown(kind: str, known: Any) -> str:
    names = ", ".join(sorted(known)) or "none"
    return f"unknown {kind}; declared: {names}"


def _issue(error: Any) -> ConfigIssue:
    path = ""
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = str(error["msg"])
    if error["type"] == "extra_forbidden":
        message = "unknown key (check for a typo)"
    return ConfigIssue(path or "<root>", error.get("input"), message)
