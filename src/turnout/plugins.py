"""Plugins discovered through entry points: a name maps to a factory."""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from turnout.errors import TurnoutError

GROUPS = ("turnout.engines", "turnout.exporters", "turnout.sinks", "turnout.classifiers")


@functools.cache
def discover(group: str) -> dict[str, EntryPoint]:
    """Installed entry points of `group`, by name (cached for the process)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def load_plugin(group: str, name: str) -> Any:
    """Load plugin `name` of `group`, or raise one error naming what is installed."""
    found = discover(group).get(name)
    if found is None:
        installed = ", ".join(sorted(discover(group))) or "none"
        raise TurnoutError(f"no plugin {name!r} in entry-point group {group!r}; installed: {installed}")
    try:
        return found.load()
    except Exception as exc:
        dist = found.dist.name if found.dist is not None else "unknown distribution"
        raise TurnoutError(f"plugin {name!r} ({group}, from {dist}) failed to load: {exc!r}") from exc


def load_engine_plugin(name: str, options: dict[str, Any]) -> Any:
    """Build an engine from the `turnout.engines` plugin `name` with `options`."""
    factory = load_plugin("turnout.engines", name)
    try:
        return factory(**options)
    except (TypeError, ValueError) as exc:
        raise TurnoutError(f"engine plugin {name!r} rejected its options {options!r}: {exc}") from exc
