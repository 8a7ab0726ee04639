"""The admin API's endpoints, described once: the app's routes and its OpenAPI document come from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from turnout.admin import control, flags
from turnout.admin.http import Handler
from turnout.registry import ENGINE_NAME, STAGES, VERSION

_NAME = {"type": "string", "minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_.@+-]+$"}
_REASON = {"type": "string", "maxLength": 1000, "description": "why (kept in the audit log)"}
_ENGINE = {"type": "string", "pattern": ENGINE_NAME.pattern}
_VERSION = {"type": "string", "pattern": VERSION.pattern}
_TARGET = {
    "type": "string",
    "pattern": r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$",
    "maxLength": 100,
    "nullable": True,
}
_OBJECT = {"type": "object"}
_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}
_ISSUES = {
    "type": "object",
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"path": {"type": "string"}, "value": {}, "message": {"type": "string"}},
                "required": ["path", "message"],
            },
        }
    },
    "required": ["errors"],
}
_WEIGHT = {"type": "number", "minimum": 0, "maximum": 100}
_RULE = {
    "type": "object",
    "description": "a rule as in the config file: when, serve or split, experiment, rollout, guardrails",
    "properties": {
        "when": {"type": "object", "maxProperties": 3},
        "serve": _NAME,
        "split": {"type": "object", "additionalProperties": _WEIGHT, "maxProperties": 4},
        "experiment": _NAME,
        "enabled": {"type": "boolean"},
        "reason": _REASON,
    },
    "maxProperties": 6,
}


@dataclass(frozen=True, slots=True)
class Operation:
    """One endpoint: method, path, the role it needs, its handler and how OpenAPI describes it."""

    method: str
    path: str
    role: str
    handler: Handler
    summary: str
    body: dict[str, Any] | None = None
    ok: int = 200
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: tuple[int, ...] = ()


def _body(properties: dict[str, Any], required: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


OPERATIONS = (
    Operation("GET", "/whoami", "read", control.whoami, "The caller's role"),
    Operation("GET", "/flags", "read", flags.list_flags, "Every flag with its rules and rollout state"),
    Operation("GET", "/flags/{key}", "read", flags.get_flag, "One flag; ETag is its version", errors=(404,)),
    Operation(
        "PUT",
        "/flags/{key}/enabled",
        "write",
        flags.set_enabled,
        "Enable or disable a flag (kill switch); If-Match for a conditional write",
        _body({"enabled": {"type": "boolean"}, "reason": _REASON}, ("enabled",)),
        errors=(404, 412, 422),
    ),
    Operation(
        "PUT",
        "/flags/{key}/rules/{rule}/split",
        "write",
        flags.set_split,
        "Set a rule's split",
        _body(
            {
                "split": {"type": "object", "additionalProperties": _WEIGHT, "maxProperties": 4},
                "reason": _REASON,
            },
            ("split",),
        ),
        errors=(404, 412, 422),
    ),
    Operation(
        "PUT",
        "/flags/{key}/rules/{rule}",
        "write",
        flags.put_rule,
        "Add a rule (at the end) or replace the rule of that name",
        _RULE,
        errors=(404, 412, 422),
    ),
    Operation(
        "DELETE",
        "/flags/{key}/rules/{rule}",
        "write",
        flags.delete_rule,
        "Delete a rule",
        _body({"reason": _REASON}),
        errors=(404, 412, 422),
    ),
    Operation(
        "DELETE",
        "/flags/{key}/overlay",
        "write",
        flags.drop_overlay,
        "Drop every change made through the API: the file's flag is in force again",
        _body({"reason": _REASON}),
        errors=(404, 412, 422),
    ),
    Operation("GET", "/rollouts", "read", control.list_rollouts, "Every guarded rollout's status"),
    Operation(
        "GET",
        "/rollouts/{flag}",
        "read",
        control.get_rollout,
        "Where a guarded rollout stands: state, step, checks, history, next",
        query={"rule": _NAME},
        errors=(404, 409),
    ),
    Operation(
        "POST",
        "/rollouts/{flag}/{action}",
        "write",
        control.rollout_action,
        "Promote, pause, resume or abort a guarded rollout",
        _body({"reason": _REASON, "rule": {**_NAME, "nullable": True}}),
        errors=(404, 409, 422),
    ),
    Operation("GET", "/engines", "read", control.list_engines, "Engines: version, health, breaker, registry"),
    Operation(
        "POST",
        "/engines/register",
        "write",
        control.register_engine,
        "Register an engine version (stage registered, tag latest)",
        _body(
            {
                "engine": _ENGINE,
                "version": _VERSION,
                "description": {"type": "string", "maxLength": 1000},
                "params": {"type": "object", "maxProperties": 3},
                "metrics": {"type": "object", "additionalProperties": {"type": "number"}, "maxProperties": 3},
                "target": _TARGET,
                "reason": _REASON,
            },
            ("engine", "version"),
        ),
        ok=201,
        errors=(409, 422),
    ),
    Operation(
        "POST",
        "/engines/cleanup",
        "admin",
        control.cleanup_engines,
        "Delete versions archived longer ago than `older_than`",
        _body(
            {
                "older_than": {"type": "string", "pattern": "^[1-9][0-9]{0,5}(ms|s|m|h|d|w)$"},
                "reason": _REASON,
            }
        ),
        errors=(422,),
    ),
    Operation(
        "GET",
        "/engines/{name}/versions",
        "read",
        control.list_versions,
        "An engine's registered versions and tags",
        errors=(404,),
    ),
    Operation(
        "POST",
        "/engines/{name}/versions/{version}/promote",
        "write",
        control.promote_version,
        "Move a version to a stage (the next one by default)",
        _body({"stage": {"type": "string", "enum": list(STAGES), "nullable": True}, "reason": _REASON}),
        errors=(404, 409, 422),
    ),
    Operation(
        "POST",
        "/engines/{name}/rollback",
        "write",
        control.rollback_engine,
        "Archive the stable version; the previous stable one is stable again",
        _body({"reason": _REASON}),
        errors=(404, 409, 422),
    ),
    Operation("GET", "/metrics", "read", control.metrics, "The metrics now, as a metrics.jsonl line"),
    Operation("GET", "/experiments", "read", control.list_experiments, "Experiments the rules name"),
    Operation(
        "GET",
        "/experiments/{name}/results",
        "read",
        control.experiment_results,
        "An experiment's report (as `turnout report` gives it)",
        query={"by": {"type": "string", "maxLength": 40}},
        errors=(404, 409),
    ),
    Operation(
        "GET", "/shadows", "read", control.list_shadows, "Every shadowed flag's comparison, per intent"
    ),
    Operation(
        "GET",
        "/shadows/{flag}",
        "read",
        control.shadow_results,
        "A flag's shadow comparison (as `turnout shadow report` gives it)",
        errors=(404,),
    ),
    Operation(
        "GET",
        "/audit",
        "read",
        control.audit,
        "The newest changes: who, when, what, before and after, why",
        query={"limit": {"type": "integer", "minimum": 1, "maximum": control.MAX_AUDIT}},
        errors=(422,),
    ),
)


def document(version: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of the admin API."""
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        parameters: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": _path_schema(op, name)}
            for name in _path_params(op.path)
        ]
        parameters += [
            {"name": name, "in": "query", "required": False, "schema": schema}
            for name, schema in op.query.items()
        ]
        if op.method in ("PUT", "DELETE") and op.path.startswith("/flags/"):
            parameters.append(
                {
                    "name": "If-Match",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 24},
                }
            )
        responses: dict[str, Any] = {
            str(op.ok): {"description": "done", "content": {"application/json": {"schema": _OBJECT}}},
            "401": _error("missing or unknown token"),
            "403": _error("the token's role is too low"),
        }
        for status in op.errors:
            responses[str(status)] = (
                {"description": "invalid", "content": {"application/json": {"schema": _ISSUES}}}
                if status == 422
                else _error({404: "not found", 409: "does not apply now", 412: "stale If-Match"}[status])
            )
        if op.body is not None:
            responses.setdefault("400", _error("the body is not JSON"))
            responses.setdefault(
                "422", {"description": "invalid", "content": {"application/json": {"schema": _ISSUES}}}
            )
        operation: dict[str, Any] = {
            "summary": op.summary,
            "operationId": _operation_id(op),
            "parameters": parameters,
            "responses": responses,
            "x-turnout-role": op.role,
        }
        if op.body is not None:
            operation["requestBody"] = {
                "required": bool(op.body.get("required")),
                "content": {"application/json": {"schema": op.body}},
            }
        paths.setdefault(op.path, {})[op.method.lower()] = operation
    return {
        "openapi": "3.0.3",
        "info": {"title": "turnout admin API", "version": version},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
        "paths": paths,
    }


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _path_schema(op: Operation, name: str) -> dict[str, Any]:
    if name == "action":
        return {"type": "string", "enum": list(control.ACTIONS)}
    return _NAME


def _operation_id(op: Operation) -> str:
    words = [p.strip("{}") for p in op.path.split("/") if p]
    return "_".join([op.method.lower(), *words])


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ERROR}}}
