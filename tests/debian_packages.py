"""Install a Debian package for the test setup (PostgreSQL, Chromium): root and apt-get, with a deadline."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time


def apt_install(package: str, *, error: type[Exception], missing: str, timeout_s: float, log: bool) -> None:
    """`apt-get update` then install `package`; `error(reason)` when that cannot be done here.

    `missing` says what was not found and how else to provide it (shown when there is no root or apt-get).
    """
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise error(f"{missing} (cannot install it here: needs root and apt-get)")
    if log:
        print(
            f"\n`{package}` not found: installing the Debian package with apt-get "
            "(once per machine; this can take a few minutes)...",
            file=sys.stderr,
            flush=True,
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    deadline = time.monotonic() + timeout_s
    for command in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", package]):
        try:
            done = subprocess.run(
                command,
                env=env,
                capture_output=True,
                text=True,
                timeout=max(deadline - time.monotonic(), 1.0),
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise error(f"`{' '.join(command)}` did not finish in {timeout_s:g}s") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-800:]
            raise error(f"`{' '.join(command)}` failed ({done.returncode}): {tail}")
