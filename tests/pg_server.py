"""A throwaway PostgreSQL server for the tests and benchmarks (and for developers, by hand).

    .venv/bin/python tests/pg_server.py              # start one, print its DSN, stop on Ctrl-C
    .venv/bin/python tests/pg_server.py --port 55432 --durable

`find_binaries()` locates the server programs (`TURNOUT_PG_BINDIR`, the Debian layout
`/usr/lib/postgresql/<version>/bin`, else `initdb` on PATH); `ensure_installed()` installs the
Debian `postgresql` package with apt-get when they are missing and we are root. The cluster
lives in a fresh temp directory, listens on 127.0.0.1 only (a free port) and on a Unix socket
in that directory, trusts every local connection, and is removed by `cleanup()`. PostgreSQL
refuses to run as root, so as root the server programs run as the `postgres` system user
(created by the Debian package) through `runuser` (or `su`).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import pwd
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType

from debian_packages import apt_install

INSTALL_TIMEOUT_S = 1200.0
"""apt-get update + install on a slow mirror: generous, it runs once per machine."""

_SETTINGS_FAST = {
    # A throwaway test cluster: durability off makes commits nearly free.
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}


class PostgresUnavailable(RuntimeError):
    """PostgreSQL could not be found, installed or started; the message says why."""


def find_binaries() -> Path | None:
    """The directory holding `initdb`, `pg_ctl` and `postgres`, or None."""
    candidates: list[str] = []
    if env := os.environ.get("TURNOUT_PG_BINDIR"):
        candidates.append(env)
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    candidates.extend(debian)
    if found := shutil.which("initdb"):
        candidates.append(str(Path(found).resolve().parent))
    for candidate in candidates:
        path = Path(candidate)
        if all((path / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return path
    return None


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def ensure_installed(*, timeout_s: float = INSTALL_TIMEOUT_S, log: bool = True) -> Path:
    """The server binaries' directory, installing Debian's `postgresql` first if they are missing."""
    found = find_binaries()
    if found is not None:
        return found
    apt_install(
        "postgresql",
        error=PostgresUnavailable,
        missing="PostgreSQL server programs (initdb, pg_ctl) not found: install the `postgresql` package, "
        "or set TURNOUT_PG_BINDIR",
        timeout_s=timeout_s,
        log=log,
    )
    found = find_binaries()
    if found is None:
        raise PostgresUnavailable("apt-get installed `postgresql` but initdb/pg_ctl are still not found")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresServer:
    """One throwaway cluster: `start()`, `stop()`, `start()` again (same port and data), `cleanup()`."""

    def __init__(
        self,
        *,
        port: int | None = None,
        database: str = "turnout_test",
        durable: bool = False,
        base_dir: str | os.PathLike[str] | None = None,
        install: bool = True,
    ) -> None:
        self.bindir = ensure_installed() if install else find_binaries()
        if self.bindir is None:
            raise PostgresUnavailable("PostgreSQL server programs (initdb, pg_ctl) not found")
        self.port = port or free_port()
        self.database = database
        self.durable = durable
        self._owned_dir = base_dir is None
        self.base = Path(base_dir or tempfile.mkdtemp(prefix="turnout-pg-"))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self._run_as: list[str] = []
        if os.geteuid() == 0:
            self._run_as = _as_postgres_user()
        self._initialised = False
        self.running = False

    @property
    def dsn(self) -> str:
        """The URL of the test database (trust authentication: no password)."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{self.database}"

    def url(self, database: str) -> str:
        """The URL of another database on this server."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def start(self, timeout_s: float = 60.0) -> None:
        """Start the server (creating the cluster and the database the first time)."""
        if not self._initialised:
            self._init()
        self._pg_ctl("start", "-w", "-t", str(int(timeout_s)), "-l", str(self.log), timeout_s=timeout_s + 10)
        self.running = True
        if not self._initialised:
            self._tool("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", self.database)
            self._initialised = True

    def stop(self, mode: str = "fast", timeout_s: float = 60.0) -> None:
        """Stop the server (`fast`: open connections are terminated, as in a restart)."""
        if self.running:
            self._pg_ctl("stop", "-w", "-m", mode, "-t", str(int(timeout_s)), timeout_s=timeout_s + 10)
            self.running = False

    def cleanup(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self.stop(mode="immediate")
        finally:
            if self._owned_dir:
                shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.cleanup()

    def _init(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            entry = pwd.getpwnam("postgres")
            for path in (self.base, self.data):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self.base.chmod(0o700)
        self.data.chmod(0o700)
        if not (self.data / "PG_VERSION").exists():
            self._tool(
                "initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"
            )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.base}'",
            "max_connections": "50",
            **({} if self.durable else _SETTINGS_FAST),
        }
        with (self.data / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# turnout test server\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())

    def _pg_ctl(self, *args: str, timeout_s: float) -> None:
        self._tool("pg_ctl", "-D", str(self.data), *args, timeout_s=timeout_s)

    def _tool(self, name: str, *args: str, timeout_s: float = 120.0) -> None:
        command = [str(self.bindir / name), *args]
        if self._run_as:
            # runuser takes the program and its arguments; su takes one shell command line.
            tail = command if self._run_as[0].endswith("runuser") else [shlex.join(command)]
            command = [*self._run_as, *tail]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
                env={**os.environ, "LC_ALL": "C", "PGHOST": str(self.base)},
                cwd=self.base,
            )
        except subprocess.TimeoutExpired as exc:
            raise PostgresUnavailable(f"{name} did not finish in {timeout_s:g}s{self._log_tail()}") from exc
        if done.returncode != 0:
            output = (done.stderr + done.stdout).strip()[-800:]
            raise PostgresUnavailable(f"{name} {' '.join(args)} failed: {output}{self._log_tail()}")

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\nserver log:\n" + self.log.read_text(encoding="utf-8", errors="replace")[-1500:]
        return ""


def _as_postgres_user() -> list[str]:
    """The command prefix that runs a program as the `postgres` system user (we are root)."""
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresUnavailable(
            "running as root and there is no `postgres` system user to run the server as "
            "(the Debian postgresql package creates it)"
        ) from exc
    if runuser := shutil.which("runuser"):
        return [runuser, "-u", "postgres", "--"]
    if su := shutil.which("su"):
        return [su, "postgres", "-s", "/bin/sh", "-c"]
    raise PostgresUnavailable("running as root and neither runuser nor su is available")


def main() -> None:
    """Start a server, print how to reach it, stop it on Ctrl-C (or SIGTERM)."""
    parser = argparse.ArgumentParser(description="start a throwaway PostgreSQL server for turnout's tests")
    parser.add_argument("--port", type=int, default=None, help="TCP port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--database", default="turnout_test")
    parser.add_argument("--durable", action="store_true", help="keep fsync and synchronous_commit on")
    parser.add_argument(
        "--install-only", action="store_true", help="install the server if missing, then exit"
    )
    args = parser.parse_args()
    if args.install_only:
        print(f"PostgreSQL server binaries: {ensure_installed()}")
        return
    server = PostgresServer(port=args.port, database=args.database, durable=args.durable)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with server:
        print(f"PostgreSQL running in {server.base} (log: {server.log})")
        print(f"  psql {server.dsn}")
        print(f"  turnout events summary {server.dsn}")
        print("Ctrl-C stops it and removes its directory.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
