"""structlog setup: JSON or console lines, with the current span's trace_id and span_id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from opentelemetry.sdk.trace import TracerProvider

from turnout import Turnout
from turnout.telemetry.logs import add_trace_context, configure_logging


@pytest.fixture(autouse=True)
def pristine_structlog() -> Iterator[None]:
    """Start from structlog's defaults and put the previous configuration back afterwards.

    The same processor list is restored, so loggers that cached it keep working for later tests.
    """
    saved = structlog.get_config()
    was_configured = structlog.is_configured()
    structlog.reset_defaults()
    try:
        yield
    finally:
        if was_configured:
            structlog.configure(**saved)
        else:
            structlog.reset_defaults()


@pytest.fixture
def tracer_provider() -> Iterator[TracerProvider]:
    provider = TracerProvider()
    yield provider
    provider.shutdown()


def output_lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_json_lines_carry_the_current_span(
    capsys: pytest.CaptureFixture[str], tracer_provider: TracerProvider
) -> None:
    assert configure_logging("json", force=True)
    log = structlog.get_logger("test")

    with tracer_provider.get_tracer("test").start_as_current_span("request") as span:
        log.info("engine.served", engine="legacy")
    log.info("outside")

    inside, outside = (json.loads(line) for line in output_lines(capsys))
    context = span.get_span_context()
    assert inside["event"] == "engine.served"
    assert inside["engine"] == "legacy"
    assert inside["level"] == "info"
    assert inside["timestamp"].endswith("Z")
    assert inside["trace_id"] == format(context.trace_id, "032x")
    assert inside["span_id"] == format(context.span_id, "016x")
    assert len(inside["trace_id"]) == 32
    assert len(inside["span_id"]) == 16
    assert "trace_id" not in outside
    assert "span_id" not in outside


def test_json_lines_render_exceptions(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", force=True)
    log = structlog.get_logger("test")

    try:
        raise ValueError("bad input")
    except ValueError:
        log.exception("failed")

    (line,) = (json.loads(line) for line in output_lines(capsys))
    assert line["level"] == "error"
    assert "ValueError: bad input" in line["exception"]


def test_console_lines_carry_the_current_span(
    capsys: pytest.CaptureFixture[str], tracer_provider: TracerProvider
) -> None:
    assert configure_logging("console", force=True)
    log = structlog.get_logger("test")

    with tracer_provider.get_tracer("test").start_as_current_span("request") as span:
        log.warning("engine.slow", engine="workflow")

    (line,) = output_lines(capsys)
    assert "engine.slow" in line
    assert "warning" in line
    assert "engine=workflow" in line
    assert f"trace_id={format(span.get_span_context().trace_id, '032x')}" in line
    assert "\x1b[" not in line  # no colour codes in log files


def test_the_level_filters_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("json", level=logging.WARNING, force=True)
    log = structlog.get_logger("test")

    log.info("hidden")
    log.warning("shown")

    assert [json.loads(line)["event"] for line in output_lines(capsys)] == ["shown"]


def test_an_application_configuration_is_left_alone() -> None:
    structlog.configure(processors=[structlog.processors.KeyValueRenderer()])
    processors = structlog.get_config()["processors"]

    assert configure_logging("json") is False
    assert structlog.get_config()["processors"] is processors
    assert configure_logging("json", force=True) is True
    assert structlog.get_config()["processors"] is not processors


async def test_turnout_start_configures_logging_from_config() -> None:
    t = Turnout({"telemetry": {"exporters": [], "log_format": "json"}})

    await t.start()
    await t.stop()

    assert structlog.is_configured()
    assert isinstance(structlog.get_config()["processors"][-1], structlog.processors.JSONRenderer)
    assert add_trace_context in structlog.get_config()["processors"]


async def test_turnout_start_keeps_the_application_logging() -> None:
    renderer = structlog.processors.KeyValueRenderer()
    structlog.configure(processors=[renderer])
    t = Turnout({"telemetry": {"exporters": [], "log_format": "json"}})

    await t.start()
    await t.stop()

    assert structlog.get_config()["processors"] == [renderer]


def test_add_trace_context_keeps_ids_the_caller_set(tracer_provider: TracerProvider) -> None:
    event: dict[str, Any] = {"event": "x", "trace_id": "given"}

    with tracer_provider.get_tracer("test").start_as_current_span("request") as span:
        out = add_trace_context(None, "info", event)

    assert out["trace_id"] == "given"
    assert out["span_id"] == format(span.get_span_context().span_id, "016x")
    assert add_trace_context(None, "info", {"event": "y"}) == {"event": "y"}
