"""`turnout demo`: what a newcomer sees first reads cleanly in an 80-column terminal."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def test_the_demo_summarises_simulated_failures_and_fits_80_columns(tmp_path: Path) -> None:
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(("TURNOUT_", "FAKE_LLM_"))
    }
    env.update(COLUMNS="80", NO_COLOR="1", TURNOUT_CACHE_DIR=str(tmp_path / "cache"))
    done = subprocess.run(
        [sys.executable, "-m", "turnout.cli", "demo", "--users", "200", "--seed", "3"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert done.stderr == ""  # no log line interleaved with the progress display
    assert "[warning" not in out and "turnout.failure" not in out
    before, _, after = out.partition("chatting")
    assert "failure" not in before.lower()
    assert "Requests by plan and variant" in after
    assert "🧪 workflow-canary (flag coordinator): each variant" in after  # one line, not wrapped
    assert "(intent rule)" in after and "premium requests (" in after
    assert "A variant counts its requests, fallback time included; an engine, its calls." in after
    # Only a command or a path (which must not be broken) may be wider than the terminal.
    lines = out.splitlines()
    suggested = lines[lines.index("Try next:") + 1 :] if "Try next:" in lines else []  # commands to paste
    commands = [line for line in lines if " -m " in line or " " not in line.strip()] + suggested
    too_wide = [line for line in out.splitlines() if len(line.rstrip()) > 80 and line not in commands]
    assert too_wide == []
    assert (tmp_path / "logs" / "metrics.jsonl").is_file()


def test_demo_serve_keeps_serving_the_dashboard_until_ctrl_c(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        name: value for name, value in os.environ.items() if not name.startswith(("TURNOUT_", "FAKE_LLM_"))
    }
    env.update(COLUMNS="120", NO_COLOR="1", TURNOUT_CACHE_DIR=str(tmp_path / "cache"))
    command = [sys.executable, "-m", "turnout.cli", "demo", "--users", "100", "--serve", "--port", str(port)]
    with subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True) as server:
        try:
            assert server.stdout is not None
            url = next((line.split()[1] for line in server.stdout if line.startswith("Dashboard: ")), None)
            assert url == f"http://127.0.0.1:{port}/admin/ui/"
            page = None
            while page is None and server.poll() is None:  # it listens just after printing its address
                try:
                    page = httpx.get(url + "view/engines", timeout=5)
                except httpx.TransportError:
                    time.sleep(0.05)
            assert page is not None and page.status_code == 200
            assert page.json()["role"] == "admin" and "engine.workflow" in page.json()["html"]
            server.send_signal(signal.SIGINT)
            assert server.wait(timeout=60) == 0
        finally:
            if server.poll() is None:
                server.kill()
