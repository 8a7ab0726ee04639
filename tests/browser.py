"""Debian's headless Chromium for the dashboard's browser tests (and for developers, by hand).

    .venv/bin/python tests/browser.py --install-only   # what `make test` runs first

`find_chromium()` looks at `TURNOUT_CHROMIUM`, then `chromium` on PATH; `ensure_installed()`
installs the Debian `chromium` package with apt-get when it is missing and we are root.
Playwright drives that browser through `executable_path`: it never downloads a browser of its own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time

INSTALL_TIMEOUT_S = 1200.0
"""apt-get update + install on a slow mirror: generous, it runs once per machine."""


class BrowserUnavailable(RuntimeError):
    """Chromium could not be found or installed; the message says why."""


def find_chromium() -> str | None:
    """The Chromium executable, or None."""
    configured = os.environ.get("TURNOUT_CHROMIUM")
    if configured:
        return configured if os.path.exists(configured) else None
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def ensure_installed(*, timeout_s: float = INSTALL_TIMEOUT_S, log: bool = True) -> str:
    """The Chromium executable, installing Debian's `chromium` first if it is missing."""
    found = find_chromium()
    if found is not None:
        return found
    apt = shutil.which("apt-get")
    if apt is None or os.geteuid() != 0:
        raise BrowserUnavailable(
            "Chromium not found and cannot install it here (needs root and apt-get): "
            "install the `chromium` package, or set TURNOUT_CHROMIUM to its executable"
        )
    if log:
        print(
            "\nChromium not found: installing the Debian `chromium` package with apt-get "
            "(once per machine; this can take a few minutes)...",
            file=sys.stderr,
            flush=True,
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    deadline = time.monotonic() + timeout_s
    for command in ([apt, "update"], [apt, "install", "-y", "--no-install-recommends", "chromium"]):
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
            raise BrowserUnavailable(f"`{' '.join(command)}` did not finish in {timeout_s:g}s") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip()[-800:]
            raise BrowserUnavailable(f"`{' '.join(command)}` failed ({done.returncode}): {tail}")
    found = find_chromium()
    if found is None:
        raise BrowserUnavailable("apt-get installed `chromium` but its executable is still not found")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install-only", action="store_true", help="install Chromium if missing, then exit")
    args = parser.parse_args()
    try:
        path = ensure_installed()
    except BrowserUnavailable as exc:
        print(f"browser.py: {exc}", file=sys.stderr)
        return 1
    if args.install_only:
        print(f"Chromium: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
