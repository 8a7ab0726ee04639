"""`turnout demo`: what a newcomer sees first reads cleanly in an 80-column terminal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
    commands = [line for line in out.splitlines() if " -m " in line or " " not in line.strip()]
    too_wide = [line for line in out.splitlines() if len(line.rstrip()) > 80 and line not in commands]
    assert too_wide == []
    assert (tmp_path / "logs" / "metrics.jsonl").is_file()
