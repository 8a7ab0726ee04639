"""`turnout serve`, `turnout config export` and `turnout registry ...`: the control plane from a terminal."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from turnout.config import TurnoutConfig, load_file, parse_duration, validate_config
from turnout.environment import apply_environment
from turnout.errors import ConfigError, TurnoutError
from turnout.failures import Failures
from turnout.overlays import Overlays, dump
from turnout.registry import STAGES, EngineVersion, Registry
from turnout.state import open_store, state_url


def add_admin_commands(subparsers: Any) -> None:
    """Add `serve`, `config` and `registry` to the top-level `subparsers`."""
    serve = subparsers.add_parser(
        "serve",
        help="serve the admin API (and web UI) of a config",
        description="Serve the admin HTTP API of a config with uvicorn; changes are kept in its state store.",
    )
    serve.add_argument("config", type=Path, help="a TOML or JSON config file")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    serve.add_argument("--port", type=int, default=8081, help="port (%(default)s)")

    config = subparsers.add_parser("config", help="the configuration in force").add_subparsers(
        dest="config_command", required=True
    )
    export = config.add_parser(
        "export",
        help="print the config in force (file, environment and admin changes) as TOML",
    )
    export.add_argument("config", type=Path, nargs="?", help="default: $TURNOUT_CONFIG, else turnout.toml")

    registry = subparsers.add_parser(
        "registry",
        help="the engine registry: list, register, promote, rollback, cleanup",
        description="Register engine versions, move them through stages, roll back to the previous stable.",
    )
    registry.add_argument("--config", type=Path, help="default: $TURNOUT_CONFIG, else turnout.toml")
    registry.add_argument("--json", action="store_true", help="print JSON")
    actions = registry.add_subparsers(dest="registry_command", required=True)
    listing = actions.add_parser("list", help="engines, versions, stages and tags")
    listing.add_argument("engine", nargs="?")
    register = actions.add_parser("register", help="register a new version (stage registered, tag latest)")
    register.add_argument("engine")
    register.add_argument("version")
    register.add_argument("--description", default="")
    register.add_argument("--target", help="package.module:attribute serving this version")
    register.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="repeatable")
    register.add_argument("--metric", action="append", default=[], metavar="NAME=NUMBER", help="repeatable")
    promote = actions.add_parser("promote", help="move a version to a stage (the next one by default)")
    promote.add_argument("engine")
    promote.add_argument("version")
    promote.add_argument("--stage", choices=STAGES)
    rollback = actions.add_parser("rollback", help="archive the stable version, the previous stable serves")
    rollback.add_argument("engine")
    cleanup = actions.add_parser("cleanup", help="delete versions archived longer ago than --older-than")
    cleanup.add_argument("--older-than", default="30d", help="e.g. 7d, 30d (%(default)s)")
    for parser in (register, promote, rollback, cleanup):
        parser.add_argument("--reason", default="", help="why (kept in the audit log)")


def run_admin_command(args: argparse.Namespace) -> int:
    """Run `serve`, `config export` or `registry`; 2 for a bad config, 1 when an action does not apply."""
    try:
        if args.command == "serve":
            return _serve(args.config, args.host, args.port)
        if args.command == "config":
            return _export(_path(args.config))
        return _registry(args)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except TurnoutError as exc:
        print(f"turnout {args.command}: {exc}", file=sys.stderr)
        return 1


def _path(given: Path | None) -> Path:
    return given or Path(os.environ.get("TURNOUT_CONFIG") or "turnout.toml")


def _serve(path: Path, host: str, port: int) -> int:
    try:
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Mount
    except ImportError:
        raise TurnoutError('serving needs uvicorn and Starlette: pip install "turnout[cli]"') from None
    from turnout.router import Turnout

    turnout = Turnout.from_file(path)
    app = Starlette(routes=[Mount("", app=turnout.admin_app())], lifespan=turnout.lifespan)
    uvicorn.run(app, host=host, port=port, log_level="info")
    return 0


def effective_config(path: Path, env: dict[str, str] | None = None) -> TurnoutConfig:
    """The config in force for `path`: the file, the environment's overrides, the admin overlays."""
    base = validate_config(
        apply_environment(load_file(path), os.environ if env is None else env), source=str(path)
    )
    overlays = Overlays(Failures(), time.time)
    try:
        return overlays.apply(base)
    finally:
        overlays.close()


def _export(path: Path) -> int:
    try:
        import tomli_w
    except ImportError:
        raise TurnoutError('exporting TOML needs tomli-w: pip install "turnout[cli]"') from None
    from structlog.testing import capture_logs

    with capture_logs():  # stdout is the TOML alone
        config = effective_config(path)
    print(tomli_w.dumps(_no_nulls(dump(config))), end="")
    return 0


def _no_nulls(value: Any) -> Any:
    """TOML has no null: a value left unset is left out."""
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value if v is not None]
    return value


def _registry(args: argparse.Namespace) -> int:
    path = _path(args.config)
    config = validate_config(load_file(path), source=str(path))
    store = open_store(state_url(config))
    registry = Registry(lambda: store, clock=time.time)
    actor = f"cli:{os.environ.get('USER', 'unknown')}"
    try:
        command = args.registry_command
        if command == "list":
            engines = registry.engines()
            if args.engine:
                engines = {args.engine: engines.get(args.engine, [])}
            _print([v for versions in engines.values() for v in versions], args.json)
            return 0
        if command == "register":
            found = [
                registry.register(
                    args.engine,
                    args.version,
                    description=args.description,
                    params=dict(_pairs(args.param, "--param")),
                    metrics={k: _number(v, k) for k, v in _pairs(args.metric, "--metric")},
                    target=args.target,
                    actor=actor,
                    reason=args.reason,
                )
            ]
        elif command == "promote":
            found = [registry.promote(args.engine, args.version, args.stage, actor=actor, reason=args.reason)]
        elif command == "rollback":
            found = [registry.rollback(args.engine, actor=actor, reason=args.reason)]
        else:
            try:
                seconds = parse_duration(args.older_than)
            except ValueError as exc:
                raise TurnoutError(f"--older-than {args.older_than!r}: {exc}") from None
            found = registry.cleanup(seconds, actor=actor, reason=args.reason)
            if not args.json:
                print(f"deleted {len(found)} archived version(s)")
        _print(found, args.json)
        return 0
    finally:
        store.close()


def _pairs(items: list[str], option: str) -> list[tuple[str, str]]:
    pairs = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise TurnoutError(f"{option} {item!r}: expected KEY=VALUE")
        pairs.append((key, value))
    return pairs


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise TurnoutError(f"--metric {name}={text!r}: expected a number") from None


def _print(versions: list[EngineVersion], as_json: bool) -> None:
    if as_json:
        print(json.dumps([v.to_dict() for v in versions], indent=2))
        return
    for v in versions:
        tags = f"  [{', '.join(v.tags)}]" if v.tags else ""
        print(f"{v.engine} {v.version}  {v.stage}{tags}  {v.description}".rstrip())
