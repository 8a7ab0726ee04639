"""Change without restart: poll a config file's stamp and reload when it changes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from pathlib import Path

from turnout.errors import TurnoutError
from turnout.failures import Failures


def stamp(path: Path) -> tuple[int, int]:
    """What tells a changed file: nanosecond mtime and size (size catches coarse-mtime filesystems)."""
    info = path.stat()
    return info.st_mtime_ns, info.st_size


class FileWatcher:
    """Calls `reload` whenever the file's stamp changes; a failing reload keeps it watching."""

    def __init__(
        self, path: Path, reload: Callable[[], object], *, interval_s: float, failures: Failures
    ) -> None:
        self.path = path
        self.interval_s = interval_s
        self._reload = reload
        self._failures = failures
        self._stamp = stamp(path) if path.exists() else None
        self._task: asyncio.Task[None] | None = None

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
                current = stamp(self.path)
                if current == self._stamp:
                    continue
                self._stamp = current
                # Reading, compiling and importing must not stall the requests on this loop.
                await asyncio.to_thread(self._reload)
            except TurnoutError:
                pass  # reload() logged it; the old config stays until the file changes again
            except Exception as exc:
                # Whatever goes wrong, the watcher must keep running: count it and go on.
                self._failures.record("config.watch", exc)
