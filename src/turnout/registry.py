"""The engine registry: versions of each engine with metadata, stages, tags, promotion and rollback.

A version moves through stages `registered → validated → canary → stable → deployed`, and
to `archived` from any of them. Tags name one version each: `latest` (the newest
registered), `canary` and `stable` (set when a version is promoted to that stage). A flag
variant `workflow@stable` is served by the version the tag names, and follows it: promote
another version to stable and every replica serves it within one poll interval. A version
may name its own `target` (`module:attr`, imported where it is served: the admin server need
not have the engine's code); without one it runs the engine of that name.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from turnout.config import _TARGET as TARGET
from turnout.config import EngineConfig, TurnoutConfig
from turnout.engines import Engine, import_target
from turnout.errors import TurnoutError
from turnout.failures import Failures
from turnout.state import AuditEntry, Record, StateStore
from turnout.types import Clock

NAMESPACE = "registry"
"""The state store namespace of the registry; one record per engine name."""
STAGES = ("registered", "validated", "canary", "stable", "deployed", "archived")
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "registered": frozenset({"validated", "archived"}),
    "validated": frozenset({"canary", "stable", "archived"}),
    "canary": frozenset({"validated", "stable", "archived"}),
    "stable": frozenset({"deployed", "archived"}),
    "deployed": frozenset({"stable", "archived"}),
    "archived": frozenset(),
}
"""The stages each stage may move to."""
TAGS = ("latest", "canary", "stable")
VERSION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+\-]{0,63}$")
"""What a version string may be."""
ENGINE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
"""What an engine name may be (as in `[engines.NAME]`)."""
_log = structlog.get_logger("turnout")


class RegistryError(TurnoutError):
    """A registry action that does not apply (a transition not allowed, a version taken...)."""


class UnknownVersionError(RegistryError):
    """The engine has no such version."""


@dataclass(frozen=True, slots=True)
class EngineVersion:
    """One registered version of an engine."""

    engine: str
    version: str
    stage: str
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    target: str | None = None
    registered_at: float = 0.0
    stage_changed_at: float = 0.0
    tags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """As JSON data."""
        data = asdict(self)
        data["tags"] = list(self.tags)
        return data


class Registry:
    """The engine registry in the state store: `register`, `promote`, `rollback`, `cleanup`, `resolve`."""

    def __init__(
        self,
        store: Callable[[], StateStore],
        *,
        clock: Clock,
        cached: Callable[[], Mapping[str, Record]] | None = None,
        on_change: Callable[[], None] | None = None,
        failures: Failures | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._cached = cached
        self.on_change = on_change
        self._failures = failures or Failures()

    # -- reading -------------------------------------------------------------------------

    def engines(self) -> dict[str, list[EngineVersion]]:
        """Every registered engine's versions, oldest first."""
        return {name: _versions(name, record.value) for name, record in sorted(self._records().items())}

    def versions(self, engine: str) -> list[EngineVersion]:
        """The versions of `engine`, oldest first (empty if it has none)."""
        record = self._store().get(NAMESPACE, engine)
        return _versions(engine, record.value) if record is not None else []

    def get(self, engine: str, version: str) -> EngineVersion:
        """One version; RegistryError if it is not registered."""
        for found in self.versions(engine):
            if found.version == version:
                return found
        raise UnknownVersionError(f"engine {engine!r} has no version {version!r}")

    def resolve(self, engine: str, tag: str) -> EngineVersion | None:
        """The version a tag (or a version string) names, from what this process last read."""
        records = self._cached() if self._cached is not None else self._records()
        record = records.get(engine)
        if record is None:
            return None
        data = record.value
        version = data.get("tags", {}).get(tag, tag)
        for found in _versions(engine, data):
            if found.version == version and found.stage != "archived":
                return found
        return None

    def _records(self) -> dict[str, Record]:
        return self._store().items(NAMESPACE)

    # -- changing ------------------------------------------------------------------------

    def register(
        self,
        engine: str,
        version: str,
        *,
        description: str = "",
        params: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        target: str | None = None,
        actor: str = "python",
        reason: str = "",
    ) -> EngineVersion:
        """Register a new version (stage `registered`, tagged `latest`)."""
        if not ENGINE_NAME.match(engine):
            raise RegistryError(f"engine name {engine!r}: letters, digits and '_.-', at most 128")
        if not VERSION.match(version):
            raise RegistryError(f"version {version!r}: letters, digits and '_.+-', at most 64")
        if target is not None and not TARGET.match(target):
            raise RegistryError(f"target {target!r}: expected package.module:attribute")

        def change(data: dict[str, Any], now: float) -> str | None:
            if version in data["versions"]:
                raise RegistryError(f"engine {engine!r} already has version {version!r}")
            data["versions"][version] = {
                "stage": "registered",
                "description": description,
                "params": dict(params or {}),
                "metrics": {k: float(v) for k, v in (metrics or {}).items()},
                "target": target,
                "registered_at": now,
                "stage_changed_at": now,
            }
            data["tags"]["latest"] = version
            return "register"

        return self._change(engine, version, change, actor, reason)

    def promote(
        self, engine: str, version: str, stage: str | None = None, *, actor: str = "python", reason: str = ""
    ) -> EngineVersion:
        """Move a version to `stage` (the next one by default); `canary`/`stable` also move that tag."""

        def change(data: dict[str, Any], now: float) -> str | None:
            entry = _entry(data, engine, version)
            current = entry["stage"]
            target = stage or _next_stage(current)
            if target not in STAGES:
                raise RegistryError(f"unknown stage {target!r}; stages: {', '.join(STAGES)}")
            if target not in TRANSITIONS[current]:
                allowed = ", ".join(sorted(TRANSITIONS[current])) or "none"
                raise RegistryError(
                    f"{engine} {version}: {current} cannot move to {target} (allowed: {allowed})"
                )
            entry["stage"], entry["stage_changed_at"] = target, now
            tags = data["tags"]
            if target in ("canary", "stable"):
                if target == "stable" and tags.get("stable") not in (None, version):
                    data["stable_history"].append(tags["stable"])
                tags[target] = version
                if target == "stable" and tags.get("canary") == version:
                    del tags["canary"]
            if target == "archived":
                for tag in [t for t, v in tags.items() if v == version and t != "latest"]:
                    del tags[tag]
            return "promote"

        return self._change(engine, version, change, actor, reason)

    def rollback(self, engine: str, *, actor: str = "python", reason: str = "") -> EngineVersion:
        """Archive the stable version and tag the previous stable one (still not archived) stable again."""
        chosen: list[str] = []

        def change(data: dict[str, Any], now: float) -> str | None:
            current = data["tags"].get("stable")
            history = data["stable_history"]
            while history and data["versions"].get(history[-1], {}).get("stage") in (None, "archived"):
                history.pop()
            if current is None or not history:
                raise RegistryError(f"engine {engine!r} has no previous stable version to roll back to")
            previous = history.pop()
            data["versions"][current]["stage"] = "archived"
            data["versions"][current]["stage_changed_at"] = now
            data["versions"][previous]["stage"] = "stable"
            data["versions"][previous]["stage_changed_at"] = now
            data["tags"]["stable"] = previous
            chosen.append(previous)
            return "rollback"

        self._change(engine, None, change, actor, reason)
        return self.get(engine, chosen[0])

    def cleanup(self, older_than_s: float, *, actor: str = "python", reason: str = "") -> list[EngineVersion]:
        """Delete archived versions archived more than `older_than_s` seconds ago; the ones deleted."""
        removed: list[EngineVersion] = []
        for engine in self.engines():
            gone: list[EngineVersion] = []

            def change(
                data: dict[str, Any], now: float, engine: str = engine, gone: list[EngineVersion] = gone
            ) -> str | None:
                gone.clear()  # a retry starts again from the record read anew
                for version, entry in list(data["versions"].items()):
                    tagged = version in data["tags"].values()
                    old = now - entry["stage_changed_at"] > older_than_s
                    if entry["stage"] == "archived" and old and not tagged:
                        gone.append(_version(engine, version, entry, data["tags"]))
                        del data["versions"][version]
                return "cleanup" if gone else None

            self._change(engine, None, change, actor, reason)
            removed.extend(gone)
        return removed

    def _change(
        self,
        engine: str,
        version: str | None,
        change: Callable[[dict[str, Any], float], str | None],
        actor: str,
        reason: str,
    ) -> EngineVersion:
        store = self._store()
        for _ in range(20):  # another writer may get in between: read again
            record = store.get(NAMESPACE, engine)
            current = record.version if record is not None else 0
            before = record.value if record is not None else {}
            data = _fresh(before)
            now = self._clock()
            action = change(data, now)
            if action is None:  # nothing to write
                return EngineVersion(engine, "", "")
            if store.put(NAMESPACE, engine, data, at=now, expect=current):
                break
        else:
            raise RegistryError(f"engine {engine!r}: the registry kept changing; try again")
        details = {"version": version} if version is not None else {}
        store.audit(AuditEntry(now, NAMESPACE, engine, actor, action, reason, before or None, data, details))
        if self.on_change is not None:
            self.on_change()
        if version is None:
            return EngineVersion(engine, "", "")
        return _version(engine, version, data["versions"][version], data["tags"])

    # -- serving -------------------------------------------------------------------------

    def tagged_engines(
        self, config: TurnoutConfig, engines: Mapping[str, Engine], clock: Clock
    ) -> dict[str, Engine]:
        """An engine for each `name@tag` variant of the config whose tag resolves now."""
        found: dict[str, Engine] = {}
        for flag in config.flags.values():
            if flag.kind != "engine":
                continue
            for variant in flag.variants:
                name, at, tag = variant.partition("@")
                if not at or variant in found:
                    continue
                try:
                    engine = self._engine_for(variant, name, tag, config, engines, clock)
                except Exception as exc:  # served by the flag default meanwhile (reason ERROR)
                    self._failures.record("registry", exc, variant=variant)
                    continue
                if engine is not None:
                    found[variant] = engine
        return found

    def _engine_for(
        self,
        variant: str,
        name: str,
        tag: str,
        config: TurnoutConfig,
        engines: Mapping[str, Engine],
        clock: Clock,
    ) -> Engine | None:
        resolved = self.resolve(name, tag)
        if resolved is None:
            return None
        base = engines.get(name)
        func = import_target(resolved.target) if resolved.target else (base.func if base else None)
        if func is None:
            return None
        settings = config.engines.get(name, EngineConfig())
        return Engine(variant, func, version=resolved.version, settings=settings, clock=clock)


def _fresh(value: Mapping[str, Any]) -> dict[str, Any]:
    """A deep-enough copy of an engine's record to change (versions, tags, stable history)."""
    return {
        "versions": {v: dict(entry) for v, entry in (value.get("versions") or {}).items()},
        "tags": dict(value.get("tags") or {}),
        "stable_history": list(value.get("stable_history") or []),
    }


def _entry(data: dict[str, Any], engine: str, version: str) -> dict[str, Any]:
    entry: dict[str, Any] | None = data["versions"].get(version)
    if entry is None:
        raise UnknownVersionError(f"engine {engine!r} has no version {version!r}")
    return entry


def _next_stage(stage: str) -> str:
    order = STAGES[:-1]
    if stage not in order or stage == order[-1]:
        raise RegistryError(f"a {stage} version has no next stage; name one")
    return order[order.index(stage) + 1]


def _versions(engine: str, value: Mapping[str, Any]) -> list[EngineVersion]:
    tags = value.get("tags") or {}
    entries = sorted((value.get("versions") or {}).items(), key=lambda item: item[1]["registered_at"])
    return [_version(engine, version, entry, tags) for version, entry in entries]


def _version(engine: str, version: str, entry: Mapping[str, Any], tags: Mapping[str, str]) -> EngineVersion:
    return EngineVersion(
        engine=engine,
        version=version,
        stage=entry["stage"],
        description=entry.get("description", ""),
        params=dict(entry.get("params") or {}),
        metrics=dict(entry.get("metrics") or {}),
        target=entry.get("target"),
        registered_at=entry.get("registered_at", 0.0),
        stage_changed_at=entry.get("stage_changed_at", 0.0),
        tags=tuple(t for t in TAGS if tags.get(t) == version),
    )
