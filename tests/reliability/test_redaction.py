"""Secrets in plugin and engine options never appear in an error, `validate`'s output or a log line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from turnout import ConfigError, Turnout
from turnout.cli import main
from turnout.redact import redact_text, redact_value

SECRETS = ("sk-live-123", "sk-top-456", "hunter2", "tok-789", "b3arer")


def langgraph_engine(**extra: Any) -> dict[str, Any]:
    options = {
        "graph": "nowhere.at.all:graph",
        "api_key": "sk-top-456",
        "config": {"configurable": {"openai_api_key": "sk-live-123", "thread_id": "t"}},
        "headers": [{"Authorization": "Bearer b3arer"}],
        **extra,
    }
    return {"engines": {"agent": {"plugin": "langgraph", "options": options}}}


def assert_no_secret(text: str) -> None:
    leaked = [secret for secret in SECRETS if secret in text]
    assert not leaked, f"{leaked} in {text!r}"


def test_plugin_options_are_redacted_in_config_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        Turnout(langgraph_engine(unknown_option=1), env={})
    assert_no_secret(str(caught.value))
    assert_no_secret(repr([issue.value for issue in caught.value.issues]))
    assert "***" in str(caught.value)


def test_values_are_redacted_by_key_name_at_any_depth() -> None:
    bad = {"engines": {"agent": ["not", {"db": {"password": "hunter2", "token": "tok-789"}}]}}
    with pytest.raises(ConfigError) as caught:
        Turnout(bad, env={})
    (issue,) = caught.value.issues
    assert issue.value == ["not", {"db": {"password": "***", "token": "***"}}]
    assert_no_secret(str(caught.value))


def test_a_secret_setting_of_the_wrong_type_is_masked() -> None:
    with pytest.raises(ConfigError) as caught:
        Turnout({"http": {"override_secret": ["hunter2"]}}, env={})
    assert caught.value.issues[0].path == "http.override_secret"
    assert_no_secret(str(caught.value))


def test_validate_prints_no_secret(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "turnout.json"
    path.write_text(json.dumps(langgraph_engine(unknown_option=1)))
    assert main(["validate", str(path)]) == 1
    out, err = capsys.readouterr()
    assert_no_secret(out + err)
    assert "engines.agent.plugin" in err


def test_a_failed_reload_logs_no_secret() -> None:
    t = Turnout({}, env={})
    with capture_logs() as logs, pytest.raises(ConfigError):
        t.reload(langgraph_engine(unknown_option=1))
    (failed,) = [e for e in logs if e["event"] == "turnout.reload_failed"]
    assert_no_secret(json.dumps(failed))


def test_dsn_userinfo_and_secret_query_values_are_masked() -> None:
    text = redact_text("postgresql://app:hunter2@db:5432/x?sslmode=require&api_key=tok-789")
    assert text == "postgresql://app:***@db:5432/x?sslmode=require&api_key=***"
    assert redact_text("Authorization: Bearer b3arer") == "Authorization: ***"
    assert redact_text("LangGraph(api_key=sk-live-123, timeout=3)") == "LangGraph(api_key=***, timeout=3)"


def test_numbers_under_secret_like_names_stay() -> None:
    assert redact_value({"max_key_length": 256, "token_budget": 1.5, "api_key": "x"}) == {
        "max_key_length": 256,
        "token_budget": 1.5,
        "api_key": "***",
    }
