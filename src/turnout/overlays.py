"""Admin overlays: changes to flags made through the admin API, kept in the state store.

An overlay replaces fields of one flag of the file config (`enabled`, `rules`); the config in
force is the file (with the environment's overrides) plus every overlay, validated like the
file. Each process reads the store every `[admin] poll_interval_s` and rebuilds its config
when an overlay (or the engine registry) changed, so every replica applies a change within
one interval. An overlay that no longer fits the file (its flag is gone, a variant it serves
was removed) is ignored, logged and counted: the file config alone stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from turnout.config import TurnoutConfig, validate_config
from turnout.errors import ConfigError, TurnoutError
from turnout.failures import Failures
from turnout.state import AuditEntry, Record, StateStore, open_store, state_url
from turnout.types import Clock

NAMESPACE = "overlay"
"""The state store namespace of overlays; one record per flag key."""
OVERLAY_FIELDS = ("enabled", "rules")
"""The fields of a flag an overlay may replace."""

_log = structlog.get_logger("turnout")


class StaleWriteError(TurnoutError):
    """A write was based on a version of the flag that is no longer the current one."""

    def __init__(self, key: str, expected: int, current: int) -> None:
        super().__init__(f"flag {key!r} is at version {current}, the change was based on {expected}")
        self.current = current


class Overlays:
    """The overlays in force in this process, and the loop that reads other replicas' changes."""

    def __init__(self, failures: Failures, clock: Clock, *, mirror: tuple[str, ...] = ()) -> None:
        self._failures = failures
        self._clock = clock
        self._mirror = mirror
        self.records: dict[str, Record] = {}
        """The overlay of each flag, by key, as last read from the store."""
        self.mirrored: dict[str, dict[str, Record]] = {namespace: {} for namespace in mirror}
        """Records of other namespaces read along (the engine registry), by namespace and key."""
        self.base: TurnoutConfig | None = None
        """The file config (with the environment's overrides) the overlays apply to."""
        self.on_change: Callable[[], None] | None = None
        self._url: str | None = None
        self._interval = 5.0
        self._store: StateStore | None = None
        self._store_lock = threading.Lock()
        self._task: asyncio.Task[None] | None = None

    # -- the config in force -------------------------------------------------------------

    def apply(self, base: TurnoutConfig) -> TurnoutConfig:
        """`base` with every overlay applied; `base` itself when there is none or they do not fit."""
        first = self._url is None
        self.base = base
        self._interval = base.admin.poll_interval_s
        self._url = state_url(base)
        if first:
            try:
                self.read()
            except Exception as exc:  # the file config serves; the loop tries again
                self._failures.record("overlays", exc, step="read")
        changes = {key: record.value for key, record in self.records.items() if record.value}
        if not changes:
            return base
        try:
            return validate_config(overlay(dump(base), changes), source="admin overlays")
        except ConfigError as exc:
            self._failures.record("overlays", exc, keeping="the file config")
            return base

    def candidate(self, key: str, value: Mapping[str, Any]) -> TurnoutConfig:
        """The config that `value` as the overlay of flag `key` would give; raises ConfigError."""
        if self.base is None:
            raise TurnoutError("no configuration loaded yet")
        changes = {k: r.value for k, r in self.records.items() if r.value}
        changes[key] = dict(value)
        return validate_config(overlay(dump(self.base), changes))

    def write(
        self,
        key: str,
        update: Mapping[str, Any],
        *,
        expect: int | None,
        actor: str,
        action: str,
        reason: str,
        replace: bool = False,
    ) -> Record:
        """Validate and store a change to flag `key`'s overlay, audit it and apply it in this process.

        `update` sets fields of the overlay (`replace=True`: becomes the whole overlay; `{}`
        drops it). Raises ConfigError when the result does not validate and StaleWriteError
        when `expect` is not the flag's current version.
        """
        store = self.store()
        record = store.get(NAMESPACE, key)
        current = record.version if record is not None else 0
        if expect is not None and expect != current:
            raise StaleWriteError(key, expect, current)
        value = dict(update) if replace else {**(record.value if record else {}), **update}
        before = self.flag(key)
        config = self.candidate(key, value)
        now = self._clock()
        if not store.put(NAMESPACE, key, value, at=now, expect=current):
            latest = store.get(NAMESPACE, key)
            raise StaleWriteError(key, current, latest.version if latest is not None else 0)
        after = dump(config)["flags"].get(key)
        store.audit(AuditEntry(now, NAMESPACE, key, actor, action, reason, before, after))
        self.records[key] = Record(value, current + 1, now)
        self._changed()
        return self.records[key]

    def flag(self, key: str) -> dict[str, Any] | None:
        """Flag `key` as in force (file plus overlays), as plain data."""
        if self.base is None:
            return None
        changes = {k: r.value for k, r in self.records.items() if r.value}
        flag: dict[str, Any] | None = overlay(dump(self.base), changes)["flags"].get(key)
        return flag

    def version(self, key: str) -> int:
        """The current version of flag `key`'s overlay in the store (0: never changed)."""
        if not self.store_exists():
            return 0
        record = self.store().get(NAMESPACE, key)
        return record.version if record is not None else 0

    # -- the store -----------------------------------------------------------------------

    def store(self) -> StateStore:
        """The state store (opened on first use)."""
        with self._store_lock:
            if self._store is None:
                if self._url is None:
                    raise TurnoutError("no configuration loaded yet")
                self._store = open_store(self._url)
            return self._store

    def store_exists(self) -> bool:
        """False while a SQLite store was never written (reading it would create the file)."""
        return self._store is not None or _exists(self._url)

    def read(self) -> bool:
        """Read the overlays (and mirrored namespaces) from the store; True if anything changed."""
        if not self.store_exists():
            return False  # nothing was ever written: no file to create
        store = self.store()
        records = store.items(NAMESPACE)
        mirrored = {namespace: store.items(namespace) for namespace in self._mirror}
        changed = _versions(records) != _versions(self.records) or any(
            _versions(mirrored[n]) != _versions(self.mirrored.get(n, {})) for n in self._mirror
        )
        self.records, self.mirrored = records, mirrored
        if self._task is None:
            self.close()
        return changed

    def reread(self) -> None:
        """Read the store now and apply what changed (after this process wrote the registry)."""
        if self.read():
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- the polling loop ----------------------------------------------------------------

    async def start(self) -> None:
        """Read the store every `[admin] poll_interval_s` and rebuild the config on a change."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="turnout-overlays")

    async def stop(self) -> None:
        """Stop the loop and close the store."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.close()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.poll()

    async def poll(self) -> bool:
        """One read of the store; a change is applied now. Never raises (failures are counted)."""
        try:
            changed = await asyncio.to_thread(self.read)
            if changed:
                self._changed()
            return changed
        except Exception as exc:
            self._failures.record("overlays", exc, step="poll")
            return False

    def close(self) -> None:
        """Close the store (a later use opens it again)."""
        with self._store_lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()


def dump(config: TurnoutConfig) -> dict[str, Any]:
    """`config` as plain data, as a file would hold it (defaults left out)."""
    return config.model_dump(mode="json", exclude_defaults=True)


def overlay(data: dict[str, Any], changes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """`data` (plain config) with each flag's fields replaced by its overlay; unknown flags skipped."""
    flags = dict(data.get("flags") or {})
    for key, change in changes.items():
        if key not in flags:
            _log.warning("turnout.overlay_unused", flag=key, note="the flag is not in the file config")
            continue
        flags[key] = {**flags[key], **{f: v for f, v in change.items() if f in OVERLAY_FIELDS}}
    return {**data, "flags": flags}


def _versions(records: Mapping[str, Record]) -> dict[str, int]:
    return {key: record.version for key, record in records.items()}


def _exists(url: str | None) -> bool:
    if url is None:
        return False
    if url.startswith("sqlite:///"):
        return Path(url.removeprefix("sqlite:///")).exists()
    return True
