"""Plugins discovered through entry points: a name maps to a factory.

Groups: `turnout.engines`, `turnout.exporters`, `turnout.sinks`, `turnout.classifiers`,
`turnout.notifiers`, `turnout.comparators`, `turnout.providers`.
Discovery is cached per process. `TURNOUT_DISABLE_PLUGIN_AUTOLOAD=1` turns it off and
`[plugins] block = [...]` hides plugins by name (or `group:name`); a config can always name
a factory directly as `"package.module:attribute"`, which needs no discovery.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from turnout.errors import TurnoutError, redact
from turnout.imports import ImportTargetError, resolve

GROUPS = (
    "turnout.engines",
    "turnout.exporters",
    "turnout.sinks",
    "turnout.classifiers",
    "turnout.notifiers",
    "turnout.comparators",
    "turnout.providers",
)
DISABLE_ENV = "TURNOUT_DISABLE_PLUGIN_AUTOLOAD"


class PluginError(TurnoutError):
    """A plugin is missing, blocked, or failed to load or to build."""


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One installed plugin, as `turnout plugins` lists it."""

    group: str
    name: str
    value: str
    distribution: str
    version: str
    error: str | None = None

    @property
    def loads(self) -> bool:
        """Whether importing the plugin worked."""
        return self.error is None


def autoload_enabled(env: Mapping[str, str] | None = None) -> bool:
    """False when `TURNOUT_DISABLE_PLUGIN_AUTOLOAD` is set to a true value."""
    value = (os.environ if env is None else env).get(DISABLE_ENV, "").strip().lower()
    return value not in {"1", "true", "yes", "on"}


@functools.cache
def _installed(group: str) -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=group)}


def discover(group: str, *, block: Iterable[str] = (), autoload: bool = True) -> dict[str, EntryPoint]:
    """Installed entry points of `group` by name, minus blocked ones; empty when autoload is off."""
    if group not in GROUPS:
        raise PluginError(f"unknown plugin group {group!r}; groups: {', '.join(GROUPS)}")
    if not (autoload and autoload_enabled()):
        return {}
    blocked = set(block)
    return {
        name: ep
        for name, ep in _installed(group).items()
        if name not in blocked and f"{group}:{name}" not in blocked
    }


def clear_cache() -> None:
    """Forget discovered entry points (after installing a plugin at run time, and in tests)."""
    _installed.cache_clear()


def load_plugin(group: str, name: str, *, block: Iterable[str] = (), autoload: bool = True) -> Any:
    """The object plugin `name` of `group` names, or one error naming the group and what is installed."""
    if ":" in name and not name.startswith(f"{group}:"):
        return _import(name, group)
    found = discover(group, block=block, autoload=autoload).get(name)
    if found is None:
        raise PluginError(_missing(group, name, block, autoload))
    try:
        return found.load()
    except Exception as exc:
        raise PluginError(
            f"plugin {name!r} ({group}) from distribution {_dist(found)} failed to load: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def build_plugin(
    group: str, name: str, options: Mapping[str, Any], *, block: Iterable[str] = (), autoload: bool = True
) -> Any:
    """Load plugin `name` and call it with `options`; options it rejects give a clear error."""
    factory = load_plugin(group, name, block=block, autoload=autoload)
    try:
        return factory(**options)
    except (TypeError, ValueError) as exc:
        raise PluginError(
            redact(f"plugin {name!r} ({group}) rejected its options {dict(options)!r}: {exc}")
        ) from exc


def load_engine_plugin(
    name: str, options: Mapping[str, Any], *, block: Iterable[str] = (), autoload: bool = True
) -> Any:
    """Build an engine from the `turnout.engines` plugin `name` with `options`."""
    return build_plugin("turnout.engines", name, options, block=block, autoload=autoload)


def installed_plugins() -> list[PluginInfo]:
    """Every installed plugin of every group, each tried once (a broken one is reported, not raised)."""
    infos: list[PluginInfo] = []
    for group in GROUPS:
        for name, ep in sorted(_installed(group).items()):
            error = None
            try:
                ep.load()
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            dist = ep.dist
            infos.append(PluginInfo(group, name, ep.value, _dist(ep), dist.version if dist else "?", error))
    return infos


def _import(target: str, group: str) -> Any:
    try:
        return resolve(target)
    except ImportTargetError as exc:
        raise PluginError(f"cannot import {target!r} for {group}: {exc}") from exc


def _missing(group: str, name: str, block: Iterable[str], autoload: bool) -> str:
    if not (autoload and autoload_enabled()):
        how = f"{DISABLE_ENV}=1" if autoload else "[plugins] autoload = false"
        return (
            f"no plugin {name!r} in entry-point group {group!r}: plugin discovery is disabled by "
            f"{how} (name the factory as 'package.module:attribute' instead)"
        )
    if name in set(block) or f"{group}:{name}" in set(block):
        return f"plugin {name!r} in entry-point group {group!r} is blocked by [plugins] block"
    installed = ", ".join(f"{n} ({_dist(ep)})" for n, ep in sorted(_installed(group).items())) or "none"
    return f"no plugin {name!r} in entry-point group {group!r}; installed: {installed}"


def _dist(ep: EntryPoint) -> str:
    dist = ep.dist
    return dist.name if dist is not None else "unknown distribution"
