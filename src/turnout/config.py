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
    shadow_safe: bool = True
    """False when the engine has side effects (writes, payments, emails): it may never run as a shadow."""


class RolloutConfig(_Model):
    """Time-based steps: the share (percent) the treatment variants get at each step."""

    steps: list[Percent] = Field(min_length=1)
    every: Duration
    start: Annotated[datetime, AfterValidator(_as_utc)] | None = None


class GuardrailsConfig(_Model):
    """Thresholds a variant must hold; breaching them triggers `action`."""

    p99_ms: float | None = Field(default=None, gt=0)
    min_success_rate: Fraction | None = None
    min_samples: int = Field(default=100, ge=1)
    action: Literal["rollback", "pause", "alert"] = "rollback"


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
    when: dict[str, Any] | None = None
    serve: str | None = None
    split: dict[str, Percent] | None = None
    rollout: RolloutConfig | None = None
    experiment: str | None = None
    seed: str | None = None
    guardrails: GuardrailsConfig | None = None
    enabled: bool = True
    shadow: ShadowConfig | None = None
    """A candidate engine to run beside the one this rule serves (overrides the flag's `shadow`)."""


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
    shadow: ShadowConfig | None = None
    """A candidate engine to run beside whichever engine serves this flag."""


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
    yield from _check_shadows(config)
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
