"""The state store interface: versioned records, an audit log, per-replica windows, a leader lock.

A store keeps what must outlive a process and be shared by its replicas. It knows nothing of
rollouts: records are JSON objects under a namespace and a key (rollout state, and later admin
overlays or an engine registry), the audit log says who changed what, when and why, and windows
are opaque JSON objects each replica writes for one stretch of time. Every time is a Unix
timestamp the caller passes in, so tests drive the clock.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Record:
    """A stored JSON object and its version (1 when first written, +1 on every write)."""

    value: dict[str, Any]
    version: int
    updated_at: float


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One change: who made it, when, why, and the value before and after."""

    at: float
    namespace: str
    key: str
    actor: str
    action: str
    reason: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Window:
    """What one replica measured for `scope` between `start` and `end`."""

    scope: str
    replica: str
    start: float
    end: float
    data: dict[str, Any]


class LeaderLock(abc.ABC):
    """Held by one process at a time; released when its holder stops or dies."""

    @abc.abstractmethod
    def acquire(self) -> bool:
        """Take the lock if it is free (or keep it); True while this process holds it."""

    @abc.abstractmethod
    def release(self) -> None:
        """Let another process take the lock."""


class StateStore(abc.ABC):
    """Where rollout state, the audit log and metric windows live. Methods block: call them off the loop."""

    url: str

    @abc.abstractmethod
    def get(self, namespace: str, key: str) -> Record | None:
        """The record at (namespace, key), or None."""

    @abc.abstractmethod
    def items(self, namespace: str) -> dict[str, Record]:
        """Every record of a namespace, by key."""

    @abc.abstractmethod
    def put(
        self, namespace: str, key: str, value: dict[str, Any], *, at: float, expect: int | None = None
    ) -> bool:
        """Write a record. With `expect` (0 = must not exist yet), only if its version is still that."""

    @abc.abstractmethod
    def audit(self, entry: AuditEntry) -> None:
        """Append an entry to the audit log."""

    @abc.abstractmethod
    def history(self, namespace: str, key: str | None = None, *, limit: int = 50) -> list[AuditEntry]:
        """The newest audit entries of a namespace (and key), oldest first."""

    @abc.abstractmethod
    def add_window(self, window: Window) -> None:
        """Store one replica's window (replacing one with the same scope, replica and end)."""

    @abc.abstractmethod
    def windows(self, scope: str, *, since: float) -> list[Window]:
        """Every replica's windows of `scope` that end after `since`, oldest first."""

    @abc.abstractmethod
    def prune_windows(self, *, before: float) -> int:
        """Delete windows that ended before `before`; how many went."""

    @abc.abstractmethod
    def leader_lock(self, name: str) -> LeaderLock:
        """A lock that one process of the deployment holds at a time."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections, files and locks."""
