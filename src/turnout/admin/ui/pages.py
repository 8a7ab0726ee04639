"""What each dashboard page shows, as an HTML fragment, read through the same functions as the CLI.

Figures come from metrics.jsonl (`telemetry.reading.MetricsReader`, merged by
`telemetry.figures`), experiments from `turnout.analysis.report`, rollouts from
`Turnout.rollouts.status`; this module only lays them out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from html import escape
from typing import TYPE_CHECKING
from urllib.parse import quote

from turnout.admin.ui.access import may
from turnout.admin.ui.charts import Series, line_chart
from turnout.analysis.html import report_section
from turnout.analysis.report import report, running_experiments
from turnout.config import FlagConfig, RuleConfig, ThresholdsConfig, TurnoutConfig
from turnout.errors import TurnoutError
from turnout.rollouts.checks import Outcome
from turnout.rollouts.status import RolloutStatus, guarded_rules
from turnout.telemetry.figures import Dashboard, Figures, Reading, merge

if TYPE_CHECKING:
    from turnout.router import Turnout

_BADGE = {"healthy": "ok", "idle": "idle", "warning": "warn", "critical": "bad"}
_OUTCOME = {
    Outcome.PASS: ("pass", "ok"),
    Outcome.FAIL: ("fail", "bad"),
    Outcome.INCONCLUSIVE: ("inconclusive", "idle"),
}
_ROLLOUT_BADGE = {"running": "ok", "complete": "ok", "paused": "warn", "rolled_back": "bad"}
_ACTIONS = ("promote", "pause", "resume", "abort")


@dataclass(frozen=True, slots=True)
class Look:
    """Everything one page is drawn from: the app, the caller's role and the metrics read."""

    turnout: Turnout
    role: str
    latest: Dashboard
    history: Sequence[Reading]

    @property
    def config(self) -> TurnoutConfig:
        """The configuration in force (admin changes included)."""
        return self.turnout.config

    @property
    def can_act(self) -> bool:
        """Whether write controls are shown."""
        return may(self.role, "write")

    @property
    def as_of(self) -> datetime | None:
        """The time of the newest snapshot read."""
        return max(self.latest.processes.values(), default=None)


@dataclass(frozen=True, slots=True)
class Page:
    """A page's title and body."""

    title: str
    html: str


def overview(look: Look) -> Page:
    """Each flag: state, split, rollout step, health badge, requests/s."""
    rows = []
    for key, flag in look.config.flags.items():
        figures = _flag_figures(look, key, flag)
        status = _worst(fig.status or "idle" for fig in figures.values())
        rows.append(
            _row(
                f'<a href="{_href("flags", key)}">{escape(key)}</a>',
                _state_badge(flag),
                _splits_text(flag),
                _rollout_steps(look, key),
                _badge(status, _BADGE.get(status, "idle")),
                _requests_per_s(look, key, flag),
            )
        )
    columns = ("Flag", "State", "Split", "Rollout", "Health", "Requests/s")
    body = ["<h1>Overview</h1>", _problem(look), _table("Flags", columns, rows)]
    if not rows:
        body.append('<p class="empty">No flag is configured.</p>')
    return Page("Overview", "\n".join(body))


def flag(look: Look, key: str | None) -> Page:
    """A flag's rules in order, who gets what, the kill switch and the split editors."""
    flags = look.config.flags
    if key is None or key not in flags:
        links = "".join(f'<li><a href="{_href("flags", k)}">{escape(k)}</a></li>' for k in flags)
        missing = f'<p class="problem">No flag named {escape(key)!s}.</p>' if key is not None else ""
        return Page("Flags", f"<h1>Flags</h1>{missing}<ul>{links}</ul>")
    chosen = flags[key]
    parts = [
        f"<h1>Flag {escape(key)} {_state_badge(chosen)}</h1>",
        f"<p>Variants: {escape(', '.join(chosen.variants))}; default {escape(chosen.default)}; "
        f"{escape(chosen.kind)} flag, hashed by {escape(chosen.hash_by or 'the user id')}.</p>",
    ]
    if look.can_act:
        parts.append(_kill_switch(key, chosen))
    parts.append("<h2>Rules, in the order they are tried</h2>")
    parts.append(_rules_table(chosen))
    if look.can_act:
        for index, rule in enumerate(chosen.rules):
            if rule.split is not None:
                parts.append(_split_editor(key, chosen, index, rule))
    parts.append(_decision_reasons(look, key))
    figures = _flag_figures(look, key, chosen)
    if figures:
        parts.append("<h2>Who gets what</h2>")
        own = _flag_experiment(look, key) is not None
        caption = "Variants" if own else "Variants: their engines' figures, shared with every flag using them"
        parts.append(_figures_table(caption, figures, look))
        parts.append(_variant_charts(look, key, chosen))
    return Page(f"Flag {key}", "\n".join(parts))


def engines(look: Look) -> Page:
    """Per engine and per variant: requests, success rate, latency over time, breaker state, version."""
    parts = ["<h1>Engines</h1>", _problem(look)]
    components = look.latest.components
    if components:
        parts.append(_figures_table("Engines and components", components, look, breakers=True))
    for name in components:
        series = _component_series(look.history, partial(_component_of, name))
        parts.append(
            f'<section class="charts"><h2>{escape(name)}</h2>{_latency_charts(name, series)}</section>'
        )
    for name, experiment in look.latest.experiments.items():
        parts.append(f"<h2>Experiment {escape(name)}: variants</h2>")
        parts.append(_figures_table(f"Variants of {name}", experiment.variants, look))
        parts.append(_experiment_charts(look, name))
    parts += _shadow_tables(look)
    parts.append(_registry_table(look))
    return Page("Engines", "\n".join(parts))


_STAGE_BADGE = {"deployed": "ok", "stable": "ok", "canary": "warn", "archived": "idle"}


def _registry_table(look: Look) -> str:
    """Every registered version of every engine: stage, tags, when, what (as `turnout registry list`)."""
    try:
        registered = look.turnout.registry.engines()
    except Exception as exc:  # the store is unreachable: say so, draw the rest of the page
        problem = f"The engine registry cannot be read: {exc}"
        return f'<h2>Engine registry</h2><p class="problem">{escape(problem)}</p>'
    if not registered:
        return (
            '<h2>Engine registry</h2><p class="empty">No engine version is registered '
            "(<code>turnout registry register</code> or <code>POST /engines/{name}/versions</code>).</p>"
        )
    rows = [
        _row(
            escape(found.engine),
            escape(found.version),
            _badge(found.stage, _STAGE_BADGE.get(found.stage, "idle")),
            escape(", ".join(found.tags)) or "—",
            _when(found.registered_at or None),
            _when(found.stage_changed_at or None),
            escape(found.description) or "—",
        )
        for versions in registered.values()
        for found in versions
    ]
    columns = ("Engine", "Version", "Stage", "Tags", "Registered", "Stage since", "Description")
    return "<h2>Engine registry</h2>" + _table("Registered engine versions, oldest first", columns, rows)


def _shadow_tables(look: Look) -> list[str]:
    """Each shadowed flag's comparison per intent: the rows of `turnout shadow report`, live."""
    from turnout.shadow_report import HEADER, live_report, row_cells

    live = look.turnout.telemetry.live().get("shadows") or {}
    parts = []
    for key, flag in look.config.flags.items():
        if flag.shadow is None and all(rule.shadow is None for rule in flag.rules):
            continue
        report = live_report(key, live.get(key, {}))
        parts.append(f"<h2>Shadow runs of {escape(key)}</h2>")
        if not report.rows:
            parts.append("<p>No shadow call compared yet in this process.</p>")
            continue
        for total in report.totals():
            rows = [row for row in report.rows if (row.served, row.shadow) == (total.served, total.shadow)]
            caption = f"{total.shadow} in the shadow of {total.served}, per intent"
            cells = [[escape(cell) for cell in row_cells(row)] for row in [*rows, total]]
            parts.append(_table(caption, HEADER, cells))
    return parts


def experiment(look: Look, name: str | None, by: str | None = None) -> Page:
    """The analysis module's report of one experiment (the list without a name), `by` a segment."""
    names = running_experiments(look.config)
    if name is None:
        links = "".join(f'<li><a href="{_href("experiments", n)}">{escape(n)}</a></li>' for n in names)
        empty = '<p class="empty">No experiment is running.</p>' if not names else ""
        return Page("Experiments", f"<h1>Experiments</h1>{empty}<ul>{links}</ul>")
    try:
        found = report(name, config=look.config, by=by or None)
    except TurnoutError as exc:
        return Page(
            f"Experiment {name}",
            f'<h1>Experiment {escape(name)}</h1><p class="problem">{escape(str(exc))}</p>',
        )
    choices = [("", "nothing"), ("intent", "intent"), ("plan", "plan")]
    links = " · ".join(
        f'<a href="?by={quote(value)}"{" aria-current=true" if value == (by or "") else ""}>{label}</a>'
        for value, label in choices
    )
    body = f'<p class="by">Break the results down by: {links}</p>'
    return Page(f"Experiment {name}", f'{body}<div class="report">{report_section(found)}</div>')


def rollout(look: Look, key: str | None) -> Page:
    """A guarded rollout's steps, its checks with their numbers, its history and the actions."""
    guarded = [g for g in guarded_rules(look.config) if key is None or g.flag == key]
    if key is None:
        links = "".join(
            f'<li><a href="{_href("rollouts", g.flag)}">{escape(g.flag)} / {escape(g.rule)}</a></li>'
            for g in guarded
        )
        empty = '<p class="empty">No rule has guardrails.</p>' if not guarded else ""
        return Page("Rollouts", f"<h1>Rollouts</h1>{empty}<ul>{links}</ul>")
    parts = [f"<h1>Rollout of {escape(key)}</h1>"]
    if not guarded:
        parts.append(f'<p class="problem">Flag {escape(key)} has no rule with guardrails.</p>')
    for rule in guarded:
        try:
            status = look.turnout.rollouts.status(key, rule=rule.rule)
        except TurnoutError as exc:
            parts.append(f'<p class="problem">{escape(rule.rule)}: {escape(str(exc))}</p>')
            continue
        parts.append(_rollout_section(status, look.can_act))
    return Page(f"Rollout {key}", "\n".join(parts))


# -- flags ---------------------------------------------------------------------------------


def rule_name(rule: RuleConfig, index: int) -> str:
    """A rule's name, or `rule-N` for an unnamed one (as the rollouts and the admin API call it)."""
    return rule.name or f"rule-{index}"


def _state_badge(flag: FlagConfig) -> str:
    return _badge("on", "ok") if flag.enabled else _badge("off (kill switch)", "bad")


def _splits_text(flag: FlagConfig) -> str:
    parts = []
    for index, rule in enumerate(flag.rules):
        if not rule.enabled:
            continue
        if rule.split is not None:
            shares = " / ".join(f"{escape(v)} {w:g}%" for v, w in rule.split.items())
            parts.append(f"{escape(rule_name(rule, index))}: {shares}")
        elif rule.serve is not None:
            parts.append(f"{escape(rule_name(rule, index))}: {escape(rule.serve)}")
    parts.append(f"otherwise {escape(flag.default)}")
    return "<br>".join(parts)


def _rules_table(flag: FlagConfig) -> str:
    rows = []
    for index, rule in enumerate(flag.rules):
        when = escape(json.dumps(rule.when, sort_keys=True)) if rule.when else "everyone"
        if rule.split is not None:
            what = "split " + ", ".join(f"{escape(v)} {w:g}%" for v, w in rule.split.items())
        else:
            what = f"serve {escape(rule.serve or flag.default)}"
        extra = []
        if rule.experiment:
            extra.append(f"experiment {escape(rule.experiment)}")
        if rule.rollout is not None:
            extra.append("gradual rollout")
        if rule.guardrails is not None:
            extra.append("guardrails")
        state = _badge("on", "ok") if rule.enabled else _badge("off", "idle")
        name = escape(rule_name(rule, index))
        rows.append(_row(str(index + 1), name, f"<code>{when}</code>", what, escape(", ".join(extra)), state))
    default = f"serve {escape(flag.default)}"
    rows.append(_row(str(len(flag.rules) + 1), "default", "everyone else", default, "", _badge("on", "ok")))
    return _table("Rules", ("#", "Rule", "When", "Serves", "Also", "State"), rows)


def _kill_switch(key: str, flag: FlagConfig) -> str:
    turn = "false" if flag.enabled else "true"
    label = "Turn the flag off (everyone gets the default)" if flag.enabled else "Turn the flag back on"
    field = f"ks-{_id(key)}"
    return (
        f'<form class="act" data-method="PUT" data-url="flags/{quote(key, safe="")}/enabled" '
        'aria-label="Kill switch">'
        f'<input type="hidden" name="enabled" value="{turn}">'
        f'<label for="{field}">Reason</label> <input id="{field}" name="reason" required>'
        f' <button type="submit" class="{"danger" if flag.enabled else ""}">{label}</button>'
        '<p class="form-error" role="alert"></p></form>'
    )


def _split_editor(key: str, flag: FlagConfig, index: int, rule: RuleConfig) -> str:
    name = rule_name(rule, index)
    path = f"flags.{key}.rules[{index}].split"
    base = f"sp-{_id(key)}-{index}"
    inputs = []
    for variant in flag.variants:
        weight = (rule.split or {}).get(variant, 0.0)
        field = f"{base}-{_id(variant)}"
        inputs.append(
            f'<label for="{field}">{escape(variant)} (%)</label> '
            f'<input id="{field}" name="split.{escape(variant)}" type="number" step="any" value="{weight:g}" '
            f'aria-describedby="{base}-error">'
            f'<span class="field-error" data-path="{escape(path)}.{escape(variant)}" role="alert"></span>'
        )
    return (
        f'<form class="act split" data-method="PUT" '
        f'data-url="flags/{quote(key, safe="")}/rules/{quote(name, safe="")}/split">'
        f"<fieldset><legend>Split of rule {escape(name)}</legend>{''.join(inputs)}"
        f'<label for="{base}-reason">Reason</label> <input id="{base}-reason" name="reason" required>'
        ' <button type="submit">Save split</button>'
        f'<p id="{base}-error" class="field-error" data-path="{escape(path)}" role="alert"></p>'
        '<p class="form-error" role="alert"></p></fieldset></form>'
    )


def _rollout_steps(look: Look, key: str) -> str:
    found = []
    for guarded in guarded_rules(look.config):
        if guarded.flag != key:
            continue
        try:
            status = look.turnout.rollouts.status(key, rule=guarded.rule)
        except TurnoutError as exc:
            found.append(f"{escape(guarded.rule)}: {escape(str(exc))}")
            continue
        word = status.state.replace("_", " ")
        found.append(
            f'<a href="{_href("rollouts", key)}">{_badge(word, _ROLLOUT_BADGE.get(status.state, "idle"))} '
            f"at {status.step:g}%</a> (step {status.step_index + 1} of {len(status.steps)})"
        )
    return "<br>".join(found) or "—"


# -- rollouts ------------------------------------------------------------------------------


def _rollout_section(status: RolloutStatus, can_act: bool) -> str:
    steps = []
    for index, percent in enumerate(status.steps):
        if index < status.step_index:
            word, attrs = "done", ""
        elif index == status.step_index:
            word, attrs = "current", ' aria-current="step" class="current"'
        else:
            word, attrs = "to come", ""
        steps.append(f"<li{attrs}><strong>{percent:g}%</strong> <span>{word}</span></li>")
    word = status.state.replace("_", " ")
    parts = [
        f"<section><h2>{escape(status.rule)} {_badge(word, _ROLLOUT_BADGE.get(status.state, 'idle'))}</h2>",
        f'<ol class="timeline" aria-label="Steps">{"".join(steps)}</ol>',
        f"<p>Failed intervals in a row: {status.failures} of {status.failure_threshold} "
        f"(then: {escape(status.action)}). Next: {escape(status.next)}</p>",
    ]
    if status.checks:
        rows = [
            _row(
                escape(c.check),
                _badge(*_OUTCOME[c.outcome]),
                escape(c.variant),
                "—" if c.value is None else f"{c.value:.4g}",
                f"{c.threshold:.4g}",
                f"{c.samples:,}",
                escape(c.reason),
            )
            for c in status.checks
        ]
        columns = ("Check", "Outcome", "Variant", "Value", "Threshold", "Samples", "Why")
        parts.append(_table(f"Last guardrail checks ({_when(status.checked_at)})", columns, rows))
    else:
        parts.append('<p class="empty">No guardrail check has run yet.</p>')
    if can_act:
        parts.append(_rollout_actions(status))
    if status.history:
        rows = [
            _row(_when(e.at), escape(e.action), escape(e.actor), escape(e.reason or "(no reason given)"))
            for e in status.history
        ]
        parts.append(_table("Audit log", ("When", "Action", "By", "Reason"), rows))
    parts.append("</section>")
    return "\n".join(parts)


def _rollout_actions(status: RolloutStatus) -> str:
    base = f"ro-{_id(status.flag)}-{_id(status.rule)}"
    forms = []
    for action in _ACTIONS:
        danger = ' class="danger"' if action == "abort" else ""
        forms.append(
            f'<form class="act inline" data-method="POST" '
            f'data-url="rollouts/{quote(status.flag, safe="")}/{action}">'
            f'<input type="hidden" name="rule" value="{escape(status.rule)}">'
            f'<input type="hidden" name="reason" data-from="{base}-reason">'
            f'<button type="submit"{danger}>{action.capitalize()}</button>'
            '<span class="form-error" role="alert"></span></form>'
        )
    return (
        f'<div class="actions"><label for="{base}-reason">Reason for the action</label> '
        f'<input id="{base}-reason" required> {"".join(forms)}</div>'
    )


# -- figures -------------------------------------------------------------------------------


_REASON_TEXT = {
    "TARGETING_MATCH": "a rule's condition matched",
    "SPLIT": "placed by a percentage split",
    "DEFAULT": "no rule matched: the default",
    "OVERRIDE": "forced for this user or request",
    "DISABLED": "the flag is switched off",
    "ERROR": "evaluation failed or the flag is unknown: the default",
    "FALLBACK": "the chosen engine failed; a fallback engine served",
}


def _decision_reasons(look: Look, key: str) -> str:
    """Why the flag served what it served: counts per reason, and per reason over time."""
    counts = look.latest.decisions.get(key, {})
    parts = ["<h2>Decision reasons</h2>"]
    if not counts:
        parts.append('<p class="empty">No decision of this flag is in the metrics yet.</p>')
        return "\n".join(parts)
    total = sum(counts.values())
    rows = [
        _row(
            escape(reason), f"{n:,}", _pct(n / total if total else None), escape(_REASON_TEXT.get(reason, ""))
        )
        for reason, n in sorted(counts.items(), key=lambda item: -item[1])
    ]
    parts.append(
        _table(
            "Decisions by reason, since each process started",
            ("Reason", "Decisions", "Share", "Meaning"),
            rows,
        )
    )
    grouped: dict[datetime, dict[str, int]] = {}
    for reading in look.history:
        at = grouped.setdefault(reading.timestamp.replace(microsecond=0), {})
        for reason, n in reading.decisions.get(key, {}).items():
            at[reason] = at.get(reason, 0) + n
    lines: dict[str, Series] = {
        reason: [(t, float(found.get(reason, 0))) for t, found in sorted(grouped.items())]
        for reason in counts
    }
    chart = line_chart(f"{key}: decisions per interval, by reason", lines, lambda v: f"{v:,.0f}")
    parts.append(f'<section class="charts">{chart}</section>')
    return "\n".join(parts)


def _flag_experiment(look: Look, key: str) -> str | None:
    """The experiment whose figures are the flag's own (the metrics count traffic per experiment)."""
    return next((name for name, exp in look.latest.experiments.items() if exp.flag == key), None)


def _flag_components(look: Look, flag: FlagConfig) -> dict[str, str]:
    """Each variant's engine component (`engine.NAME`, or a component named as the variant)."""
    found = {}
    for variant in flag.variants:
        for name in (f"engine.{variant}", variant):
            if name in look.latest.components:
                found[variant] = name
                break
    return found


def _flag_figures(look: Look, key: str, flag: FlagConfig) -> Mapping[str, Figures]:
    """The flag's experiment's variants, else its variants' engines (shared with other flags)."""
    experiment = _flag_experiment(look, key)
    if experiment is not None:
        return look.latest.experiments[experiment].variants
    components = _flag_components(look, flag)
    return {variant: look.latest.components[name] for variant, name in components.items()}


def _requests_per_s(look: Look, key: str, flag: FlagConfig) -> str:
    """Requests in the newest snapshot interval, per second (engines' figures marked as such)."""
    if not look.history:
        return "—"
    newest = look.history[-1].timestamp.replace(microsecond=0)
    recent = [reading for reading in look.history if reading.timestamp.replace(microsecond=0) == newest]
    experiment = _flag_experiment(look, key)
    count = 0
    for reading in recent:
        if experiment is not None:
            found = reading.experiments.get(experiment)
            count += sum(f.total_requests for f in found.variants.values()) if found is not None else 0
        else:
            names = set(_flag_components(look, flag).values())
            count += sum(f.total_requests for name, f in reading.components.items() if name in names)
    rate = f"{count / look.config.telemetry.snapshot_interval_s:,.1f}"
    return rate if experiment is not None else f"{rate} (its engines, all flags)"


def _figures_table(
    caption: str, figures: Mapping[str, Figures], look: Look, *, breakers: bool = False
) -> str:
    engines = look.turnout.engines
    rows = []
    for name, fig in figures.items():
        status = fig.status or "idle"
        breaker = []
        if breakers:
            engine = engines.get(name.removeprefix("engine."))
            state = getattr(getattr(engine, "breaker", None), "state", None)
            kind = {"closed": "ok", "half-open": "warn", "open": "bad"}.get(str(state), "idle")
            breaker.append(_badge(str(state), kind) if state is not None else "—")
            version = getattr(engine, "version", None)
            breaker.append(escape(str(version)) if version else "—")
        reason = escape(fig.status_reason)
        errors = ", ".join(f"{escape(k)} {n:,}" for k, n in sorted(fig.errors.items())) or "none"
        lat = fig.latency
        cells = [f"{fig.total_requests:,}", _pct(fig.success_rate), _ms(lat.mean), _ms(lat.p50), _ms(lat.p95)]
        cells += [_ms(lat.p99), *breaker, errors, f"{_badge(status, _BADGE.get(status, 'idle'))} {reason}"]
        rows.append(_row(escape(name), *cells))
    columns = ["Name", "Requests", "Success", "Mean", "p50", "p95", "p99"]
    columns += ["Breaker", "Version"] * breakers + ["Errors and fallbacks", "Health"]
    return _table(caption, columns, rows)


def _component_series(
    history: Sequence[Reading], pick: Callable[[Reading], Figures | None]
) -> list[tuple[datetime, Figures]]:
    """Figures per snapshot time: the windows of every process written at that second, merged."""
    grouped: dict[datetime, list[Figures]] = {}
    for reading in history:
        figures = pick(reading)
        if figures is not None:
            grouped.setdefault(reading.timestamp.replace(microsecond=0), []).append(figures)
    limits = ThresholdsConfig()  # health is not drawn, only the figures
    return [(at, merge(parts, limits)) for at, parts in sorted(grouped.items())]


def _component_of(name: str, reading: Reading) -> Figures | None:
    return reading.components.get(name)


def _variant_of(experiment: str, variant: str, reading: Reading) -> Figures | None:
    found = reading.experiments.get(experiment)
    return found.variants.get(variant) if found is not None else None


def _latency_charts(name: str, series: Sequence[tuple[datetime, Figures]]) -> str:
    latency: dict[str, Series] = {
        "mean": [(t, f.latency.mean) for t, f in series],
        "p50": [(t, f.latency.p50) for t, f in series],
        "p95": [(t, f.latency.p95) for t, f in series],
        "p99": [(t, f.latency.p99) for t, f in series],
    }
    success: dict[str, Series] = {"success rate": [(t, f.success_rate) for t, f in series]}
    requests: dict[str, Series] = {"requests": [(t, float(f.total_requests)) for t, f in series]}
    return (
        line_chart(f"{name}: latency over time (ms)", latency, _ms_text)
        + line_chart(f"{name}: success rate over time", success, lambda v: f"{v:.1%}")
        + line_chart(f"{name}: requests per interval", requests, lambda v: f"{v:,.0f}")
    )


def _experiment_charts(look: Look, name: str) -> str:
    variants = look.latest.experiments[name].variants
    p99: dict[str, Series] = {}
    success: dict[str, Series] = {}
    for variant in variants:
        series = _component_series(look.history, partial(_variant_of, name, variant))
        p99[variant] = [(t, f.latency.p99) for t, f in series]
        success[variant] = [(t, f.success_rate) for t, f in series]
    return (
        '<section class="charts">'
        + line_chart(f"{name}: p99 latency per variant (ms)", p99, _ms_text)
        + line_chart(f"{name}: success rate per variant", success, lambda v: f"{v:.1%}")
        + "</section>"
    )


def _variant_charts(look: Look, key: str, flag: FlagConfig) -> str:
    for name, experiment in look.latest.experiments.items():
        if experiment.flag == key:
            return _experiment_charts(look, name)
    return ""


# -- small words ---------------------------------------------------------------------------


def _worst(statuses: Iterable[str]) -> str:
    order = ("critical", "warning", "healthy", "idle")
    found = set(statuses)
    return next((s for s in order if s in found), "idle")


def _table(caption: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A table whose first cell per row heads it; each cell names its column for narrow screens."""
    head = "".join(f'<th scope="col">{escape(c)}</th>' for c in columns)
    lines = []
    for row in rows:
        first, *rest = row
        cells = "".join(
            f'<td data-label="{escape(column)}">{cell}</td>'
            for column, cell in zip(columns[1:], rest, strict=True)
        )
        lines.append(f'<tr><th scope="row">{first}</th>{cells}</tr>')
    caption = f"<caption>{escape(caption)}</caption>"
    return (
        f'<table class="cards">{caption}<thead><tr>{head}</tr></thead><tbody>{"".join(lines)}</tbody></table>'
    )


def _row(header: str, *cells: str) -> list[str]:
    """A table row: `header` and `cells` are HTML already."""
    return [header, *cells]


def _badge(word: str, kind: str) -> str:
    return f'<span class="badge {kind}">{escape(word)}</span>'


def _problem(look: Look) -> str:
    if look.latest.problem is None:
        return ""
    return f'<p class="problem">{escape(look.latest.problem)}</p>'


def _href(section: str, name: str) -> str:
    return f"{section}/{quote(name, safe='')}"


def _id(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _ms(value: float | None) -> str:
    return "—" if value is None else _ms_text(value)


def _ms_text(value: float) -> str:
    if value < 10:
        return f"{value:.2f} ms"
    if value < 100:
        return f"{value:.1f} ms"
    return f"{value:,.0f} ms"


def _when(at: float | None) -> str:
    if at is None:
        return "never"
    return f"{datetime.fromtimestamp(at, UTC):%Y-%m-%d %H:%M:%S} UTC"
