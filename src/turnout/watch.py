"""Change without restart: poll a config file and reload it once a change has settled.

An editor, `cp` or a shell `>` redirect writes a file in several steps; a poll that lands
in between would read half a config. A change is applied only when two polls in a row see
the same size, modification time and content hash: the file stayed put for one interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from pathlib import Path

from turnout.errors import TurnoutError
from turnout.failures import Failures

Stamp = tuple[int, int, str]


def stamp(path: Path) -> Stamp:
    """What tells a changed file: nanosecond mtime, size and a hash of the content."""
    info = path.stat()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return info.st_mtime_ns, info.st_size, digest


class FileWatcher:
    """Calls `reload` once the file has changed and then held still for one poll.

    A failing reload keeps it watching; the file is tried again when it changes.
    """

    def __init__(
        self, path: Path, reload: Callable[[], object], *, interval_s: float, failures: Failures
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self._reload = reload
        self._failures = failures
        self._applied: Stamp | None = self._read_stamp()
        self._seen: Stamp | None = self._applied
        self._task: asyncio.Task[None] | None = None

    def _read_stamp(self) -> Stamp | None:
        try:
            return stamp(self.path)
        except OSError:
            return None

    def start(self) -> None:
        """Start polling on the running loop (idempotent)."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="turnout-watch")

    async def stop(self) -> None:
        """Stop polling."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                # Reading, compiling and importing must not stall the requests on this loop.
                await asyncio.to_thread(self.poll)
            except Exception as exc:
                # Whatever goes wrong, the watcher must keep running: count it and go on.
                self._failures.record("config.watch", exc)

    def poll(self) -> bool:
        """One look at the file; reloads (and returns True) when a change has settled."""
        current = stamp(self.path)
        seen, self._seen = self._seen, current
        if current == self._applied or current != seen:
            return False  # unchanged, or still changing: look again next time
        self._applied = current
        # A failed reload was logged by reload(); the old config stays until the file changes again.
        with contextlib.suppress(TurnoutError):
            self._reload()
        return True
