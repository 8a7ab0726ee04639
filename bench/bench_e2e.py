"""End to end: requests/s of a FastAPI route under uvicorn, bare and with turnout, loaded by wrk.

What users feel when they turn turnout on. Both apps run in their own uvicorn process (one
worker, loopback, access log off); wrk (from Debian's `wrk` package, installed here when
missing and run as root) keeps 100 connections busy, and every request carries a new
X-User-Id, so every request is a new user: a decision, an engine call and a new exposure
written to SQLite. The contenders are interleaved — bare, turnout, bare, turnout … — so that
load from elsewhere on the machine falls on both alike; the ratio is of the medians.

    .venv/bin/python bench/bench_e2e.py                  # 5 rounds of 10 s each per app
    .venv/bin/python bench/bench_e2e.py --quick          # 3 rounds of 5 s
    .venv/bin/python bench/bench_e2e.py --no-events      # exposures off, for comparison
    .venv/bin/python bench/bench_e2e.py --events-off-too # both, interleaved: what exposures cost

It also prints the CPU time per request of the server's event-loop thread and of its other
threads (the sink's writer), read from /proc, which load elsewhere disturbs less than throughput.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import _common

HERE = Path(__file__).resolve().parent

# Each wrk thread numbers its own requests; `tid` and the run's nonce keep ids unique across
# threads and rounds, so every request is a user turnout has never seen.
WRK_SCRIPT = """
local counter = 0
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  nonce = args[1] or "run"
end
function request()
  counter = counter + 1
  local plan = (counter % 5 == 0) and "premium" or "free"
  return wrk.format("POST", "/chat", {
    ["Content-Type"] = "application/json",
    ["X-User-Id"] = nonce .. "-" .. tid .. "-" .. counter,
    ["X-Plan"] = plan,
  }, '{"message": "where is my refund"}')
end
"""


def ensure_wrk() -> str:
    """The wrk binary; installs Debian's package when it is missing (needs root and apt-get)."""
    found = shutil.which("wrk")
    if found:
        return found
    sys.path.insert(0, str(HERE.parent / "tests"))
    from debian_packages import apt_install

    try:
        apt_install("wrk", error=RuntimeError, missing="wrk is not installed", timeout_s=600, log=True)
    except RuntimeError as exc:
        sys.exit(str(exc))
    return shutil.which("wrk") or sys.exit("wrk could not be installed")


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def server(factory: str, workdir: Path, events: bool) -> Iterator[tuple[int, int]]:
    """A uvicorn process serving `_e2e_app:<factory>` on a fresh loopback port."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    if not events:
        env["TURNOUT_EVENTS__ENABLED"] = "false"
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        f"_e2e_app:{factory}",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    process = subprocess.Popen(command, cwd=workdir, env=env)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
            if process.poll() is not None:
                sys.exit(f"{factory} exited with {process.returncode}")
            time.sleep(0.05)
        else:
            sys.exit(f"{factory} did not start listening within 30 s")
        yield port, process.pid
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def thread_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of the process's main thread — uvicorn's event loop —, of all its other threads)."""
    tick = os.sysconf("SC_CLK_TCK")
    loop = others = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            # Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
            fields = (task / "stat").read_text().rpartition(")")[2].split()
            spent = (int(fields[11]) + int(fields[12])) / tick
            if int(task.name) == pid:
                loop += spent
            else:
                others += spent
    return loop, others


def warm_up(wrk: str, port: int, script: Path, nonce: str) -> None:
    """A short run before the timed one: imports, caches and the SQLite file settle."""
    subprocess.run(
        [wrk, "-t1", "-c8", "-d1s", "-s", str(script), f"http://127.0.0.1:{port}", "--", f"warm{nonce}"],
        check=True,
        capture_output=True,
    )


def load(
    wrk: str, port: int, script: Path, seconds: int, connections: int, nonce: str
) -> tuple[float, int, int, int]:
    """(requests/s, requests, non-2xx responses, socket errors) of one wrk run."""
    out = subprocess.run(
        [
            wrk,
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
            "--",
            nonce,
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return rate, total, int(non2xx.group(1)) if non2xx else 0, sum(map(int, errors.groups())) if errors else 0


def main() -> None:
    """Interleave bare and turnout rounds, print a table of requests/s and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 5 s")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per app (default 5)")
    parser.add_argument("--seconds", type=int, default=None, help="wrk duration per round (default 10)")
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--no-events", action="store_true", help="turn exposures off in the turnout app")
    parser.add_argument(
        "--events-off-too", action="store_true", help="a third contender: turnout with exposures off"
    )
    _common.add_json_option(parser)
    args = parser.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    seconds = args.seconds or (5 if args.quick else 10)
    wrk = ensure_wrk()

    print("# uvicorn + wrk on loopback: bare FastAPI route vs the same route with turnout\n")
    print(_common.machine())
    print(_common.versions(("turnout", "fastapi", "starlette", "uvicorn")))
    print(
        f"{rounds} interleaved rounds of {seconds} s per app, {args.connections} connections, 2 wrk threads,"
    )
    print(
        "every request a new user id"
        + (" (exposures off)" if args.no_events else " (a new exposure each)")
        + "\n"
    )

    contenders = [("bare", "bare_app", True), ("turnout", "turnout_app", not args.no_events)]
    if args.events_off_too and not args.no_events:
        contenders.append(("turnout, exposures off", "turnout_app", False))
    rates: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    loop_us: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    other_us: dict[str, list[float]] = {name: [] for name, _, _ in contenders}
    failures = 0
    with tempfile.TemporaryDirectory(prefix="turnout-e2e-") as tmp:
        script = Path(tmp) / "new_user.lua"
        script.write_text(WRK_SCRIPT)
        for round_ in range(rounds):
            for index, (name, factory, events) in enumerate(contenders):
                workdir = Path(tmp) / f"{index}-{round_}"
                workdir.mkdir()
                with server(factory, workdir, events=events) as (port, pid):
                    warm_up(wrk, port, script, f"r{round_}")
                    before = thread_cpu(pid)
                    rate, total, non2xx, errors = load(
                        wrk, port, script, seconds, args.connections, f"r{round_}"
                    )
                    after = thread_cpu(pid)
                rates[name].append(rate)
                loop_us[name].append((after[0] - before[0]) / total * 1e6)
                other_us[name].append((after[1] - before[1]) / total * 1e6)
                failures += non2xx + errors
                print(f"round {round_ + 1}/{rounds} {name:8} {rate:10,.0f} req/s", file=sys.stderr)

    bare, turned = statistics.median(rates["bare"]), statistics.median(rates["turnout"])
    rows = [
        (
            name,
            f"{statistics.median(values):,.0f}",
            f"{max(values):,.0f}",
            f"{min(values):,.0f}",
            f"{statistics.median(values) / bare:.3f}",
            f"{statistics.median(loop_us[name]):.0f}",
            f"{statistics.median(other_us[name]):.0f}",
        )
        for name, values in rates.items()
    ]
    headers = ("app", "median req/s", "best", "worst", "× bare (medians)", "loop µs CPU/req", "other threads")
    print(_common.table(headers, rows, right=(1, 2, 3, 4, 5, 6)))
    print(
        "\nCPU per request from /proc/PID/task/*/stat (10 ms ticks) over the timed run: the main thread"
        " runs uvicorn's event loop; the others are the sink's writer and the default executor."
    )
    best_ratio = max(rates["turnout"]) / max(rates["bare"])
    print(
        f"\nturnout / bare throughput: {turned / bare:.3f} (medians), {best_ratio:.3f} (best rounds); "
        f"non-2xx responses and socket errors: {failures}"
    )
    print(f"target ≥ 0.95×: {'met' if turned / bare >= 0.95 else 'missed'}; {_common.load()} at the end")
    _common.save_ratio(args.json, "e2e", turned / bare, target=0.95, higher_is_better=True)


if __name__ == "__main__":
    main()
