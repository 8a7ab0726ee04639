"""`turnout config export`, `turnout registry ...` and `turnout serve` from the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest

from admin.conftest import admin_config
from turnout import Turnout
from turnout.cli import main


def _write(tmp_path: Path) -> Path:
    config = admin_config(f"sqlite:///{tmp_path / 'state.db'}", tmp_path)
    path = tmp_path / "turnout.json"
    path.write_text(json.dumps(config))
    return path


def test_config_export_prints_the_config_in_force_as_toml(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path)
    turnout = Turnout.from_file(path, env={})
    turnout.overlays.write(
        "coordinator", {"enabled": False}, expect=None, actor="t", action="disable", reason=""
    )
    turnout.overlays.close()
    capsys.readouterr()
    assert main(["config", "export", str(path)]) == 0
    exported = tomllib.loads(capsys.readouterr().out)
    assert exported["flags"]["coordinator"]["enabled"] is False
    assert exported["flags"]["coordinator"]["rules"][1]["split"] == {"legacy": 90.0, "workflow": 10.0}
    assert exported["engines"]["workflow"]["version"] == "1.0"


def test_registry_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(_write(tmp_path))
    base = ["registry", "--config", path]
    assert main([*base, "register", "workflow", "2.0", "--metric", "f1=0.93", "--param", "k=3"]) == 0
    assert main([*base, "promote", "workflow", "2.0"]) == 0
    assert main([*base, "promote", "workflow", "2.0", "--stage", "stable"]) == 0
    capsys.readouterr()
    assert main([*base, "--json", "list"]) == 0
    [listed] = json.loads(capsys.readouterr().out)
    assert (listed["stage"], listed["tags"], listed["metrics"]) == (
        "stable",
        ["latest", "stable"],
        {"f1": 0.93},
    )
    assert main([*base, "rollback", "workflow"]) == 1
    assert "no previous stable" in capsys.readouterr().err
    assert main([*base, "register", "workflow", "3.0", "--metric", "f1=high"]) == 1
    assert main([*base, "cleanup", "--older-than", "7d"]) == 0
    assert "deleted 0 archived version(s)" in capsys.readouterr().out


def test_serve_answers_with_the_environment_token(tmp_path: Path, free_tcp_port: int) -> None:
    path = _write(tmp_path)
    env = {**os.environ, "TURNOUT_ADMIN_TOKEN": "served-token"}
    command = [sys.executable, "-m", "turnout.cli", "serve", str(path), "--port", str(free_tcp_port)]
    process = subprocess.Popen(
        command, env=env, cwd=Path(__file__).parents[1], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        response = None
        for _ in range(200):  # until uvicorn listens
            try:
                response = httpx.get(
                    f"http://127.0.0.1:{free_tcp_port}/whoami",
                    headers={"Authorization": "Bearer served-token"},
                )
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert response is not None
        assert response.json()["role"] == "admin"
    finally:
        process.terminate()
        process.wait(timeout=30)
