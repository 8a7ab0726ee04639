"""Flag endpoints: read flags with their rules and rollout state; change them through overlays."""

from __future__ import annotations

import asyncio
import copy
from dataclasses import asdict
from typing import Any

from starlette.responses import Response

from turnout.admin.http import ApiError, Call, invalid, ok, text_field
from turnout.config import FlagConfig
from turnout.overlays import StaleWriteError
from turnout.rollouts import RolloutError, RolloutStatus
from turnout.router import Turnout


async def list_flags(call: Call) -> Response:
    """`GET /flags`."""
    turnout = call.turnout
    flags = await asyncio.to_thread(
        lambda: [flag_view(turnout, key, flag) for key, flag in turnout.config.flags.items()]
    )
    return ok({"flags": flags})


async def get_flag(call: Call) -> Response:
    """`GET /flags/{key}`, with `ETag: "<version>"`."""
    key = call.param("key")
    flag = _flag(call.turnout, key)
    view = await asyncio.to_thread(flag_view, call.turnout, key, flag)
    return ok(view, headers={"ETag": f'"{view["version"]}"'})


async def set_enabled(call: Call) -> Response:
    """`PUT /flags/{key}/enabled` (the kill switch)."""
    key = call.param("key")
    _flag(call.turnout, key)
    body = await call.body()
    enabled = body.get("enabled")
    if not isinstance(enabled, bool):
        raise invalid("enabled", enabled, "expected true or false")
    action = "enable" if enabled else "disable"
    return await _write(call, key, {"enabled": enabled}, action, text_field(body, "reason"))


async def set_split(call: Call) -> Response:
    """`PUT /flags/{key}/rules/{rule}/split`."""
    key, name = call.param("key"), call.param("rule")
    body = await call.body()
    split = body.get("split")
    if not isinstance(split, dict):
        raise invalid("split", split, 'expected an object of variant weights, e.g. {"a": 90, "b": 10}')
    rules = _rules(call, key)
    index = _rule_index(rules, key, name)
    rules[index]["split"] = split
    return await _write(call, key, {"rules": rules}, "set_split", text_field(body, "reason"))


async def put_rule(call: Call) -> Response:
    """`PUT /flags/{key}/rules/{rule}`: add the rule (at the end) or replace the one of that name."""
    key, name = call.param("key"), call.param("rule")
    body = await call.body()
    reason = text_field(body, "reason")
    rule = body.get("rule", {k: v for k, v in body.items() if k != "reason"})
    if not isinstance(rule, dict):
        raise invalid("rule", rule, "expected the rule as an object, as in the config file")
    if rule.get("name", name) != name:
        raise invalid("name", rule.get("name"), f"the rule's name must be the one in the path ({name!r})")
    rule = {**rule, "name": name}
    rules = _rules(call, key)
    names = [_name(r, i) for i, r in enumerate(rules)]
    if name in names:
        rules[names.index(name)] = rule
        action = "replace_rule"
    else:
        rules.append(rule)
        action = "add_rule"
    return await _write(call, key, {"rules": rules}, action, reason)


async def delete_rule(call: Call) -> Response:
    """`DELETE /flags/{key}/rules/{rule}`."""
    key, name = call.param("key"), call.param("rule")
    body = await call.body()
    rules = _rules(call, key)
    del rules[_rule_index(rules, key, name)]
    return await _write(call, key, {"rules": rules}, "delete_rule", text_field(body, "reason"))


async def drop_overlay(call: Call) -> Response:
    """`DELETE /flags/{key}/overlay`: the file's flag is in force again."""
    key = call.param("key")
    _flag(call.turnout, key)
    body = await call.body()
    return await _write(call, key, {}, "revert", text_field(body, "reason"), replace=True)


async def _write(
    call: Call, key: str, update: dict[str, Any], action: str, reason: str, *, replace: bool = False
) -> Response:
    overlays = call.turnout.overlays
    expect = _if_match(call)
    try:
        await asyncio.to_thread(
            overlays.write,
            key,
            update,
            expect=expect,
            actor=call.caller.name,
            action=action,
            reason=reason,
            replace=replace,
        )
    except StaleWriteError as exc:
        raise ApiError(412, str(exc), headers={"ETag": f'"{exc.current}"'}) from None
    turnout = call.turnout
    view = await asyncio.to_thread(flag_view, turnout, key, turnout.config.flags[key])
    return ok(view, headers={"ETag": f'"{view["version"]}"'})


def _if_match(call: Call) -> int | None:
    header = call.request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or len(text) > 18:
        raise ApiError(412, f"If-Match {header[:40]!r} is not a version this API gave (an ETag)")
    return int(text)


def _flag(turnout: Turnout, key: str) -> FlagConfig:
    flag = turnout.config.flags.get(key)
    if flag is None:
        raise ApiError(404, f"no flag {key!r}")
    return flag


def _rules(call: Call, key: str) -> list[dict[str, Any]]:
    _flag(call.turnout, key)
    flag = call.turnout.overlays.flag(key) or {}
    return copy.deepcopy(list(flag.get("rules") or []))


def _rule_index(rules: list[dict[str, Any]], key: str, name: str) -> int:
    for index, rule in enumerate(rules):
        if _name(rule, index) == name:
            return index
    raise ApiError(404, f"flag {key!r} has no rule {name!r}")


def _name(rule: dict[str, Any], index: int) -> str:
    return str(rule.get("name") or f"rule-{index}")


def flag_view(turnout: Turnout, key: str, flag: FlagConfig) -> dict[str, Any]:
    """A flag as the admin API shows it: its rules, why each decides, where rollouts stand."""
    overlay = turnout.overlays.records.get(key)
    return {
        "key": key,
        "kind": flag.kind,
        "enabled": flag.enabled,
        "default": flag.default,
        "variants": list(flag.variants),
        "rules": [_rule_view(turnout, key, flag, index) for index in range(len(flag.rules))],
        "version": turnout.overlays.version(key),
        "overlay": dict(overlay.value) if overlay is not None else {},
    }


def _rule_view(turnout: Turnout, key: str, flag: FlagConfig, index: int) -> dict[str, Any]:
    rule = flag.rules[index]
    name = rule.name or f"rule-{index}"
    status: dict[str, Any] | None = None
    if rule.guardrails is not None and rule.enabled:
        try:
            status = status_view(turnout.rollouts.status(key, rule=name))
        except (RolloutError, OSError) as exc:
            status = {"error": str(exc)}
    return {
        "name": name,
        "enabled": rule.enabled,
        "when": rule.when,
        "serve": rule.serve,
        "split": rule.split,
        "experiment": rule.experiment,
        "rollout": rule.rollout.model_dump(mode="json") if rule.rollout else None,
        "guardrails": rule.guardrails.model_dump(mode="json", exclude_defaults=True)
        if rule.guardrails
        else None,
        "reason": "TARGETING_MATCH" if rule.serve is not None else "SPLIT",
        "rollout_status": status,
    }


def status_view(status: RolloutStatus) -> dict[str, Any]:
    """A rollout status as JSON data."""
    return {
        "flag": status.flag,
        "rule": status.rule,
        "state": status.state,
        "step": status.step,
        "step_index": status.step_index,
        "steps": list(status.steps),
        "failures": status.failures,
        "failure_threshold": status.failure_threshold,
        "action": status.action,
        "checked_at": status.checked_at,
        "checks": [check.to_dict() for check in status.checks],
        "history": [asdict(entry) for entry in status.history],
        "next": status.next,
    }
