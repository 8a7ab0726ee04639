"""Admin API tests: a Turnout with two engines and a split, state in a scratch store, known tokens."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from events.conftest import pg_url, postgres_dsn, postgres_server  # noqa: F401 - the events tests' PostgreSQL
from turnout import Turnout
from turnout.admin import admin_app, token_digest

READ, WRITE, ADMIN = "read-token-1234", "write-token-5678", "admin-token-9abc"
TOKENS = {token_digest(READ): "read", token_digest(WRITE): "write", token_digest(ADMIN): "admin"}


def legacy(message: str) -> str:
    return f"legacy:{message}"


def workflow(message: str) -> str:
    return f"workflow:{message}"


def workflow_v2(message: str) -> str:
    return f"workflow-v2:{message}"


def admin_config(state_url: str, tmp_path: Path) -> dict[str, Any]:
    """Two engines, a flag with a targeting rule and a 90/10 split, tokens of every role."""
    return {
        "engines": {
            "legacy": {"target": "admin.conftest:legacy"},
            "workflow": {"target": "admin.conftest:workflow", "version": "1.0"},
        },
        "flags": {
            "coordinator": {
                "variants": ["legacy", "workflow"],
                "default": "legacy",
                "rules": [
                    {"name": "premium", "when": {"plan": "premium"}, "serve": "workflow"},
                    {"name": "canary", "experiment": "wf-canary", "split": {"legacy": 90, "workflow": 10}},
                ],
            }
        },
        "state": {"url": state_url},
        "events": {"sink": f"sqlite:///{tmp_path / 'events.db'}"},
        "telemetry": {"jsonl_path": str(tmp_path / "metrics.jsonl")},
        "admin": {"tokens": TOKENS, "poll_interval_s": 1},
    }


@pytest.fixture
def state_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@pytest.fixture
def turnout(state_url: str, tmp_path: Path) -> Turnout:
    return Turnout(admin_config(state_url, tmp_path), env={})


@pytest.fixture
async def client(turnout: Turnout) -> AsyncIterator[httpx.AsyncClient]:
    app = admin_app(turnout, env={})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as http:
        yield http
    turnout.overlays.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
