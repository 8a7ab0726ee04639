"""Endpoints besides flags: rollouts, engines and their registry, metrics, experiments, the audit log."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any

from starlette.responses import Response

from turnout.admin.flags import status_view
from turnout.admin.http import ApiError, Call, invalid, ok, text_field
from turnout.config import _TARGET as TARGET
from turnout.config import parse_duration
from turnout.errors import TurnoutError
from turnout.overlays import NAMESPACE as OVERLAYS
from turnout.registry import ENGINE_NAME, STAGES, VERSION, RegistryError, UnknownVersionError
from turnout.registry import NAMESPACE as REGISTRY
from turnout.rollouts import RolloutError
from turnout.rollouts.controller import NAMESPACE as ROLLOUTS
from turnout.rollouts.status import guarded_rules
from turnout.telemetry.snapshot import snapshot_from

ACTIONS = ("promote", "pause", "resume", "abort")
MAX_AUDIT = 1000


async def whoami(call: Call) -> Response:
    """`GET /whoami`."""
    return ok({"role": call.caller.role, "name": call.caller.name})


# -- rollouts ----------------------------------------------------------------------------


async def list_rollouts(call: Call) -> Response:
    """`GET /rollouts`: every guarded rollout's status."""
    turnout = call.turnout

    def read() -> list[dict[str, Any]]:
        rules = guarded_rules(turnout.config)
        return [status_view(turnout.rollouts.status(g.flag, rule=g.rule)) for g in rules]

    return ok({"rollouts": await asyncio.to_thread(read)})


async def get_rollout(call: Call) -> Response:
    """`GET /rollouts/{flag}` (`?rule=` when the flag has several guarded rules)."""
    flag = call.param("flag")
    rule = call.request.query_params.get("rule")
    return await _rollout(call, lambda: call.turnout.rollouts.status(flag, rule=rule))


async def rollout_action(call: Call) -> Response:
    """`POST /rollouts/{flag}/{action}`: promote, pause, resume or abort."""
    flag, action = call.param("flag"), call.param("action")
    if action not in ACTIONS:
        raise ApiError(404, f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    body = await call.body()
    reason = text_field(body, "reason")
    rule = body.get("rule")
    if rule is not None and not isinstance(rule, str):
        raise invalid("rule", rule, "expected a rule name")
    method = getattr(call.turnout.rollouts, action)
    return await _rollout(call, lambda: method(flag, reason=reason, rule=rule, actor=call.caller.name))


async def _rollout(call: Call, read: Any) -> Response:
    flag = call.param("flag")
    if flag not in call.turnout.config.flags:
        raise ApiError(404, f"no flag {flag!r}")
    try:
        status = await asyncio.to_thread(read)
    except RolloutError as exc:
        raise ApiError(409, str(exc)) from None
    return ok(status_view(status))


# -- engines and the registry ------------------------------------------------------------


async def list_engines(call: Call) -> Response:
    """`GET /engines`: engines in force with version, health and breaker, and registered versions."""
    turnout = call.turnout
    components = turnout.telemetry.live().get("components", {})

    def registered() -> dict[str, Any]:
        if not turnout.overlays.store_exists():
            return {}
        return turnout.registry.engines()

    versions = await asyncio.to_thread(registered)
    engines = []
    for name, engine in sorted(turnout.engines.items()):
        stats = components.get(f"engine.{name}", {})
        engines.append(
            {
                "name": name,
                "version": engine.version,
                "health": stats.get("status", "unknown"),
                "requests": stats.get("total_requests", 0),
                "breaker": engine.breaker.state if engine.breaker is not None else "none",
                "fallback": engine.fallback,
                "timeout_s": engine.timeout_s,
                "registry": _registry_view(versions.pop(name, [])),
            }
        )
    for name, found in sorted(versions.items()):
        engines.append(
            {"name": name, "version": None, "health": "unknown", "registry": _registry_view(found)}
        )
    return ok({"engines": engines})


def _registry_view(versions: list[Any]) -> dict[str, Any] | None:
    if not versions:
        return None
    return {
        "versions": [v.to_dict() for v in versions],
        "tags": {tag: v.version for v in versions for tag in v.tags},
    }


async def register_engine(call: Call) -> Response:
    """`POST /engines/register`."""
    body = await call.body()
    engine, version = text_field(body, "engine", limit=128), text_field(body, "version", limit=64)
    if not ENGINE_NAME.match(engine):
        raise invalid("engine", engine, "expected letters, digits, '_', '-', '.' (an engine name)")
    if not VERSION.match(version):
        raise invalid("version", version, "expected letters, digits and '_.+-', at most 64")
    params, metrics = body.get("params") or {}, body.get("metrics") or {}
    if not isinstance(params, dict):
        raise invalid("params", params, "expected an object")
    if not isinstance(metrics, dict) or not all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in metrics.values()
    ):
        raise invalid("metrics", metrics, "expected an object of numbers")
    target = body.get("target")
    if target is not None and (not isinstance(target, str) or not TARGET.match(target)):
        raise invalid("target", target, "expected package.module:attribute")
    found = await _registry(
        lambda: call.turnout.registry.register(
            engine,
            version,
            description=text_field(body, "description"),
            params=params,
            metrics=metrics,
            target=target,
            actor=call.caller.name,
            reason=text_field(body, "reason"),
        )
    )
    return ok(found.to_dict(), 201)


async def list_versions(call: Call) -> Response:
    """`GET /engines/{name}/versions`."""
    name = call.param("name")
    found = await _registry(lambda: call.turnout.registry.versions(name))
    if not found:
        raise ApiError(404, f"engine {name!r} has no registered version")
    return ok({"engine": name, **(_registry_view(found) or {})})


async def promote_version(call: Call) -> Response:
    """`POST /engines/{name}/versions/{version}/promote` (`stage`: the next one by default)."""
    name, version = call.param("name"), call.param("version")
    body = await call.body()
    stage = body.get("stage")
    if stage is not None and stage not in STAGES:
        raise invalid("stage", stage, f"unknown stage; stages: {', '.join(STAGES)}")
    reason = text_field(body, "reason")
    found = await _registry(
        lambda: call.turnout.registry.promote(name, version, stage, actor=call.caller.name, reason=reason)
    )
    return ok(found.to_dict())


async def rollback_engine(call: Call) -> Response:
    """`POST /engines/{name}/rollback`: the previous stable version is stable again."""
    name = call.param("name")
    reason = text_field(await call.body(), "reason")
    found = await _registry(
        lambda: call.turnout.registry.rollback(name, actor=call.caller.name, reason=reason)
    )
    return ok(found.to_dict())


async def cleanup_engines(call: Call) -> Response:
    """`POST /engines/cleanup`: delete versions archived longer ago than `older_than` (e.g. "30d")."""
    body = await call.body()
    try:
        seconds = parse_duration(body.get("older_than", "30d"))
    except ValueError as exc:
        raise invalid("older_than", body.get("older_than"), str(exc)) from None
    reason = text_field(body, "reason")
    removed = await _registry(
        lambda: call.turnout.registry.cleanup(seconds, actor=call.caller.name, reason=reason)
    )
    return ok({"removed": [v.to_dict() for v in removed]})


async def _registry(action: Any) -> Any:
    try:
        return await asyncio.to_thread(action)
    except UnknownVersionError as exc:
        raise ApiError(404, str(exc)) from None
    except RegistryError as exc:
        raise ApiError(409, str(exc)) from None


# -- metrics, experiments, audit ---------------------------------------------------------


async def metrics(call: Call) -> Response:
    """`GET /metrics`: the figures now, as a metrics.jsonl line."""
    telemetry = call.turnout.telemetry
    snapshot = snapshot_from(
        telemetry.live(),
        interval_s=telemetry.config.snapshot_interval_s,
        failures=call.turnout.failures.snapshot(),
    )
    return ok(snapshot.model_dump(mode="json"))


async def list_experiments(call: Call) -> Response:
    """`GET /experiments`: every experiment a rule names."""
    config = call.turnout.config
    found = []
    for key, flag in config.flags.items():
        for index, rule in enumerate(flag.rules):
            if rule.experiment is not None:
                found.append(
                    {
                        "name": rule.experiment,
                        "flag": key,
                        "rule": rule.name or f"rule-{index}",
                        "split": rule.split,
                        "enabled": rule.enabled,
                        "settings": config.experiments[rule.experiment].model_dump(mode="json")
                        if rule.experiment in config.experiments
                        else None,
                    }
                )
    return ok({"experiments": found})


async def experiment_results(call: Call) -> Response:
    """`GET /experiments/{name}/results`: the same report as `turnout report` (`?by=` a segment)."""
    from turnout.analysis.report import report

    name = call.param("name")
    config = call.turnout.config
    if not any(rule.experiment == name for flag in config.flags.values() for rule in flag.rules):
        raise ApiError(404, f"no rule names experiment {name!r}")
    by = call.request.query_params.get("by") or None
    try:
        result = await asyncio.to_thread(report, name, config=config, by=by)
    except TurnoutError as exc:
        raise ApiError(409, str(exc)) from None
    return ok(result.to_dict())


# -- shadows ----------------------------------------------------------------------------


async def list_shadows(call: Call) -> Response:
    """`GET /shadows`: every flag that shadows a candidate engine, with this process's figures."""
    from turnout.shadow_report import live_report

    config = call.turnout.config
    live = call.turnout.telemetry.live().get("shadows") or {}
    found = [
        key
        for key, flag in config.flags.items()
        if flag.shadow is not None or any(rule.shadow is not None for rule in flag.rules)
    ]
    return ok({"shadows": [live_report(key, live.get(key, {})).to_dict() for key in sorted(found)]})


async def shadow_results(call: Call) -> Response:
    """`GET /shadows/{flag}`: the same report as `turnout shadow report`, from this process's figures."""
    from turnout.shadow_report import live_report

    key = call.param("flag")
    if key not in call.turnout.config.flags:
        raise ApiError(404, f"no flag {key!r}")
    live = call.turnout.telemetry.live().get("shadows") or {}
    return ok(live_report(key, live.get(key, {})).to_dict())


async def audit(call: Call) -> Response:
    """`GET /audit?limit=N`: the newest changes (flags, rollouts, registry), newest first."""
    raw = call.request.query_params.get("limit", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_AUDIT:
        raise invalid("limit", raw, f"expected a whole number from 1 to {MAX_AUDIT}")
    limit = int(raw)
    turnout = call.turnout

    def read() -> list[dict[str, Any]]:
        if not turnout.overlays.store_exists():
            return []
        store = turnout.overlays.store()
        entries = [e for ns in (OVERLAYS, ROLLOUTS, REGISTRY) for e in store.history(ns, limit=limit)]
        entries.sort(key=lambda e: e.at, reverse=True)
        return [asdict(e) for e in entries[:limit]]

    return ok({"entries": await asyncio.to_thread(read)})
