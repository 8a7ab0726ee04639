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
import sys

from debian_packages import apt_install

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
    apt_install(
        "chromium",
        error=BrowserUnavailable,
        missing="Chromium not found: install the `chromium` package, "
        "or set TURNOUT_CHROMIUM to its executable",
        timeout_s=timeout_s,
        log=log,
    )
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
