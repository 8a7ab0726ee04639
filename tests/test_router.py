"""`Turnout`: reload, file watching, lifecycle, from_env, decisions outside requests, rollouts."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from structlog.testing import capture_logs

from turnout import ConfigError, Reason, RoutingContext, Turnout, TurnoutConfig, TurnoutError, current_context
from turnout.config import validate_config
from turnout.testing import FakeClock
from turnout.testing import eventually_async as eventually

FLAG = "coordinator"
VARIANTS = ["legacy", "workflow", "langgraph"]


def flags(default: str = "legacy", **flag: Any) -> dict[str, Any]:
    return {"flags": {FLAG: {"variants": VARIANTS, "default": default, **flag}}}


def toml(default: str, *, extra: str = "") -> str:
    return f'[flags.{FLAG}]\nvariants = {json.dumps(VARIANTS)}\ndefault = "{default}"\n{extra}'


def served(t: Turnout, key: str = "u1") -> str:
    return t.decide(FLAG, RoutingContext(key)).variant


# -- reload ------------------------------------------------------------------------------------


def test_reload_with_a_dict_swaps_the_config() -> None:
    t = Turnout(flags("legacy"))
    assert served(t) == "legacy"

    config = t.reload(flags("workflow"))

    assert served(t) == "workflow"
    assert config is t.config
    assert t.config.flags[FLAG].default == "workflow"


def test_reload_with_a_turnout_config() -> None:
    t = Turnout(flags("legacy"))
    config = validate_config(flags("langgraph"))

    assert t.reload(config) is config
    assert t.config is config
    assert served(t) == "langgraph"


def test_construct_with_a_turnout_config() -> None:
    config = validate_config(flags("workflow"))
    t = Turnout(config)
    assert t.config is config
    assert served(t) == "workflow"


@pytest.mark.parametrize("as_str", [True, False])
def test_reload_with_a_toml_path(tmp_path: Path, as_str: bool) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(toml("langgraph"))
    t = Turnout(flags("legacy"))

    t.reload(str(path) if as_str else path)
    assert served(t) == "langgraph"


def test_reload_with_a_json_path(tmp_path: Path) -> None:
    path = tmp_path / "turnout.json"
    path.write_text(json.dumps(flags("workflow")))
    t = Turnout(flags("legacy"))

    t.reload(path)
    assert served(t) == "workflow"


def test_reload_that_fails_validation_keeps_the_old_config() -> None:
    t = Turnout(flags("legacy", rules=[{"name": "pro", "when": {"plan": "pro"}, "serve": "workflow"}]))
    before = t.config
    pro = RoutingContext("u1", attributes={"plan": "pro"})
    assert t.decide(FLAG, pro).variant == "workflow"

    bad = flags("legacy", rules=[{"name": "pro", "split": {"legacy": 50, "workflow": 40}}])
    with capture_logs() as logs, pytest.raises(ConfigError) as info:
        t.reload(bad)

    assert "flags.coordinator.rules[0].split" in str(info.value)
    assert t.config is before
    assert t.decide(FLAG, RoutingContext("u1", attributes={"plan": "pro"})).variant == "workflow"
    assert t.decide(FLAG, RoutingContext("u2", attributes={"plan": "free"})).reason == Reason.DEFAULT
    (failed,) = [entry for entry in logs if entry["event"] == "turnout.reload_failed"]
    assert failed["log_level"] == "error"
    assert "sum to 90" in failed["error"]


@pytest.mark.parametrize(
    "bad",
    [
        {"flags": {FLAG: {"variants": VARIANTS, "default": "nope"}}},
        {"flags": {FLAG: {"variants": VARIANTS, "default": "legacy", "typo": 1}}},
        {"engines": {"legacy": {"fallback": "missing"}}},
    ],
)
def test_every_kind_of_invalid_reload_raises_config_error(bad: dict[str, Any]) -> None:
    t = Turnout(flags("workflow"))
    assert served(t) == "workflow"  # engines are known from the first decision on
    with pytest.raises(ConfigError):
        t.reload(bad)
    assert served(t) == "workflow"


def test_reload_with_a_bad_engine_target_keeps_the_old_engines() -> None:
    t = Turnout({**flags("legacy"), "engines": {"legacy": {"target": "os.path:join"}}})
    engine = t.engines["legacy"]

    with pytest.raises(ConfigError) as info:
        t.reload({**flags("workflow"), "engines": {"legacy": {"target": "os.path:nothing_here"}}})

    assert [issue.path for issue in info.value.issues] == ["engines.legacy.target"]
    assert t.engines["legacy"] is engine
    assert served(t) == "legacy"


def test_reload_of_a_broken_or_missing_file_keeps_the_old_config(tmp_path: Path) -> None:
    t = Turnout(flags("workflow"))
    broken = tmp_path / "broken.toml"
    broken.write_text("[flags.coordinator\nvariants = ")

    with pytest.raises(ConfigError, match="not valid"):
        t.reload(broken)
    with pytest.raises(ConfigError, match="cannot read"):
        t.reload(tmp_path / "absent.toml")
    assert served(t) == "workflow"


def test_reload_without_arguments_rereads_the_file(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(toml("legacy"))
    t = Turnout.from_file(path, env={})
    assert served(t) == "legacy"

    path.write_text(toml("workflow"))
    assert served(t) == "legacy"  # nothing changes until asked
    t.reload()
    assert served(t) == "workflow"


def test_reload_from_the_file_applies_the_environment_again(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(toml("legacy"))
    t = Turnout.from_file(path, env={"COORDINATOR_ENGINE": "langgraph"})
    assert served(t) == "langgraph"

    path.write_text(toml("workflow", extra="hash_by = 'user_id'\n"))
    t.reload()
    assert served(t) == "langgraph"  # the environment still overrides the file
    assert t.config.flags[FLAG].hash_by == "user_id"


def test_reload_without_arguments_needs_a_file() -> None:
    t = Turnout(flags("legacy"))
    with pytest.raises(TurnoutError, match="not loaded from a file"):
        t.reload()
    assert served(t) == "legacy"


def test_a_reload_logs_what_it_loaded() -> None:
    t = Turnout(flags("legacy"))
    with capture_logs() as logs:
        t.reload(flags("workflow"))
    assert {"event": "turnout.reloaded", "log_level": "info", "source": None, "flags": [FLAG]} in logs


# -- watching the file -------------------------------------------------------------------------


def watched(path: Path) -> Turnout:
    return Turnout.from_file(path, watch=True, watch_interval_s=0.05, env={})


async def test_a_watched_file_is_reloaded_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(toml("legacy"))
    t = watched(path)
    await t.start()
    try:
        path.write_text(toml("workflow"))
        await eventually(lambda: served(t) == "workflow", "the first change")
        path.write_text(toml("langgraph"))
        await eventually(lambda: served(t) == "langgraph", "the second change")
    finally:
        await t.stop()


async def test_a_change_that_keeps_the_mtime_is_still_seen(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(toml("legacy"))
    before = path.stat()
    t = watched(path)
    await t.start()
    try:
        path.write_text(toml("langgraph"))
        # A filesystem with coarse timestamps can give the rewritten file the same mtime.
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        await eventually(lambda: served(t) == "langgraph", "the change")
    finally:
        await t.stop()


async def test_a_broken_file_while_watching_keeps_the_old_config(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(toml("workflow"))
    t = watched(path)
    await t.start()
    try:
        with capture_logs() as logs:
            path.write_text(toml("not-a-variant"))
            await eventually(
                lambda: any(e["event"] == "turnout.reload_failed" for e in logs), "the failed reload"
            )
            assert served(t) == "workflow"

            path.write_bytes(b"\xff\xfe not utf-8 \x80")
            await eventually(
                lambda: sum(e["event"] == "turnout.reload_failed" for e in logs) == 2, "the second failure"
            )
            assert served(t) == "workflow"

        path.write_text(toml("langgraph"))  # the watcher is still running
        await eventually(lambda: served(t) == "langgraph", "the repaired file")
    finally:
        await t.stop()


async def test_the_watcher_survives_a_vanished_file_and_unexpected_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(toml("legacy"))
    t = watched(path)
    real_reload = t.reload
    raised: list[bool] = []

    def reload_once_badly(config: Any = None) -> TurnoutConfig:
        if not raised:
            raised.append(True)
            raise RuntimeError("unexpected")
        return real_reload(config)

    monkeypatch.setattr(t, "reload", reload_once_badly)
    await t.start()
    try:
        path.unlink()
        await eventually(lambda: t.failures.count("config.watch") > 0, "the missing file to be noticed")
        assert served(t) == "legacy"

        path.write_text(toml("workflow"))
        # The reload runs in a worker thread: wait for its error to be counted, not just raised.
        await eventually(
            lambda: t.failures.snapshot().get("config.watch", {}).get("RuntimeError") == 1,
            "the unexpected error",
        )
        assert raised == [True]

        path.write_text(toml("langgraph"))
        await eventually(lambda: served(t) == "langgraph", "a reload after the error")
    finally:
        await t.stop()


async def test_stop_ends_watching(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(toml("legacy"))
    t = watched(path)
    await t.start()
    await t.start()  # a second start does not start a second watcher
    await t.stop()
    await t.stop()  # stopping twice is harmless

    path.write_text(toml("workflow"))
    await asyncio.sleep(0.3)  # several watch intervals
    assert served(t) == "legacy"


async def test_without_watch_the_file_is_not_polled(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(toml("legacy"))
    t = Turnout.from_file(path, watch_interval_s=0.05, env={})
    await t.start()
    try:
        path.write_text(toml("workflow"))
        await asyncio.sleep(0.3)
        assert served(t) == "legacy"
    finally:
        await t.stop()


# -- lifecycle ---------------------------------------------------------------------------------


async def test_lifespan_yields_state_with_the_turnout(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(toml("legacy"))
    t = watched(path)
    app = Starlette()

    async with t.lifespan(app) as state:
        assert state["turnout"] is t
        path.write_text(toml("workflow"))  # started: the file is watched
        await eventually(lambda: served(t) == "workflow", "the watched change")

    path.write_text(toml("langgraph"))
    await asyncio.sleep(0.3)
    assert served(t) == "workflow"  # stopped on exit


async def test_lifespan_runs_under_starlettes_lifespan_protocol() -> None:
    t = Turnout(flags("legacy"))
    app = Starlette(lifespan=t.lifespan)
    incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    sent: list[dict[str, Any]] = []
    scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}

    async def receive() -> dict[str, Any]:
        return incoming.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)

    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert scope["state"]["turnout"] is t


async def test_start_warns_about_variants_without_an_engine() -> None:
    t = Turnout(
        {
            "flags": {
                FLAG: {"variants": VARIANTS, "default": "legacy"},
                "tone": {"kind": "value", "variants": ["formal", "casual"], "default": "formal"},
            }
        }
    )
    t.add_engine("legacy", lambda: "legacy")

    with capture_logs() as logs:
        await t.start()
    await t.stop()

    warnings = [entry for entry in logs if entry["event"] == "turnout.engines_missing"]
    assert len(warnings) == 1  # value flags have no engines to miss
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["setting"] == f"flags.{FLAG}.variants"
    assert warnings[0]["variants"] == ["workflow", "langgraph"]


async def test_start_is_quiet_when_every_variant_has_an_engine() -> None:
    t = Turnout(flags("legacy"))
    for name in VARIANTS:
        t.add_engine(name, lambda served=name: served)

    with capture_logs() as logs:
        await t.start()
    await t.stop()
    assert not [entry for entry in logs if entry["event"] == "turnout.engines_missing"]


# -- from_env ----------------------------------------------------------------------------------


def test_from_env_reads_the_file_named_by_turnout_config(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(toml("workflow"))
    t = Turnout.from_env({"TURNOUT_CONFIG": str(path)})
    assert served(t) == "workflow"

    path.write_text(toml("langgraph"))
    t.reload()  # it remembers the file
    assert served(t) == "langgraph"


def test_from_env_lets_the_environment_override_that_file(tmp_path: Path) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(toml("workflow"))
    t = Turnout.from_env({"TURNOUT_CONFIG": str(path), "COORDINATOR_ENGINE": "langgraph"})
    assert served(t) == "langgraph"


def test_from_env_without_a_file() -> None:
    t = Turnout.from_env({"COORDINATOR_ENGINE": "workflow"})
    assert served(t) == "workflow"
    assert Turnout.from_env({}).config.flags == {}


def test_from_env_with_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        Turnout.from_env({"TURNOUT_CONFIG": str(tmp_path / "absent.toml")})


def test_from_env_passes_settings_through(tmp_path: Path) -> None:
    path = tmp_path / "turnout.json"
    path.write_text(json.dumps(rollout()))
    clock = FakeClock()
    t = Turnout.from_env({"TURNOUT_CONFIG": str(path)}, clock=clock)
    assert shares(t) < 0.3

    clock.advance(2 * 3600)  # the rollout reads the injected clock
    assert shares(t) == 1.0


# -- deciding and running outside a request ----------------------------------------------------


def test_decide_without_a_context_outside_a_request() -> None:
    t = Turnout(flags("workflow"))
    assert current_context() is None

    decision = t.decide(FLAG)

    assert decision.reason == Reason.DEFAULT
    assert decision.variant == "workflow"
    assert decision.engine == "workflow"
    assert current_context() is None


def test_decide_an_unknown_flag_is_an_error_decision() -> None:
    t = Turnout(flags("legacy"))
    decision = t.decide("nope")
    assert decision.reason == Reason.ERROR
    assert decision.error is not None
    assert "nope" in decision.error
    assert t.failures.count("decide") == 1


async def test_run_without_a_context_outside_a_request() -> None:
    t = Turnout(flags("legacy"))
    t.add_engine("legacy", lambda message: f"legacy:{message}")
    assert await t.run(FLAG, "hi") == "legacy:hi"


async def test_run_reuses_the_decision_already_made_for_the_request() -> None:
    t = Turnout(flags("legacy"))
    t.add_engine("legacy", lambda: "legacy")
    t.add_engine("workflow", lambda: "workflow")
    ctx = RoutingContext("u1")
    t.decide(FLAG, ctx)

    t.reload(flags("workflow"))
    assert await t.run(FLAG, context=ctx) == "legacy"  # one request, one decision
    assert await t.run(FLAG, context=RoutingContext("u1")) == "workflow"


# -- rollouts across reloads -------------------------------------------------------------------


FAKE_START = "2027-01-15T08:00:00Z"  # FakeClock's default start


def rollout(rule: str = "canary") -> dict[str, Any]:
    return flags(
        "legacy",
        rules=[
            {
                "name": rule,
                "split": {"legacy": 50, "workflow": 50},
                "rollout": {"steps": [10, 50, 100], "every": "1h", "start": FAKE_START},
            }
        ],
    )


def shares(t: Turnout, users: int = 200) -> float:
    """The share of users served `workflow`."""
    return sum(served(t, f"user-{i}") == "workflow" for i in range(users)) / users


def test_a_reload_keeps_a_rollout_on_its_step() -> None:
    clock = FakeClock()
    t = Turnout(rollout(), clock=clock)
    assert shares(t) < 0.3  # step 1: 10%

    clock.advance(2 * 3600)
    assert shares(t) == 1.0  # step 3: 100%

    t.reload(rollout())
    assert shares(t) == 1.0  # anchored to its start: not back at step 1
    t.reload(validate_config(rollout()))
    assert shares(t) == 1.0


def test_a_rollout_with_an_explicit_start_follows_it() -> None:
    clock = FakeClock()
    config = rollout()
    config["flags"][FLAG]["rules"][0]["rollout"]["start"] = "2020-01-01T00:00:00Z"
    t = Turnout(config, clock=clock)
    assert shares(t) == 1.0  # long past the last step


async def test_a_request_in_flight_finishes_on_the_config_it_started_with() -> None:
    first = {
        "engines": {"legacy": {}, "workflow": {"fallback": "legacy"}},
        "flags": {FLAG: {"variants": ["legacy", "workflow"], "default": "workflow"}},
        "telemetry": {"exporters": []},
    }
    t = Turnout(first)
    t.add_engine("legacy", lambda message: "legacy")
    t.add_engine("workflow", lambda message: "workflow")
    context = RoutingContext("u1")
    engine = t.bind(FLAG, context)
    t.reload(
        {"flags": {"other": {"variants": ["legacy"], "default": "legacy"}}, "telemetry": {"exporters": []}}
    )
    assert await engine("hi") == "workflow"  # decided and run under the first config
    assert context.decisions[FLAG].reason is Reason.DEFAULT


def test_reload_applies_thresholds_and_names_settings_that_need_a_restart() -> None:
    t = Turnout(flags("legacy"))
    changed = flags("legacy")
    changed["telemetry"] = {"exporters": [], "thresholds": {"p99_ms_warning": 5}}
    changed["events"] = {"sink": "memory://"}
    with capture_logs() as logs:
        t.reload(changed)
    assert t.telemetry.config.thresholds.p99_ms_warning == 5
    warning = next(entry for entry in logs if entry["event"] == "turnout.reload_needs_restart")
    assert "events" in warning["settings"]


async def test_a_failed_start_leaves_nothing_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "turnout.toml"
    path.write_text(toml("legacy"))
    t = watched(path)

    async def broken_start() -> None:
        raise RuntimeError("sink unavailable")

    monkeypatch.setattr(t.events, "start", broken_start)
    with pytest.raises(RuntimeError):
        await t.start()
    assert t.telemetry.exporters == []  # no snapshot loop left running
    path.write_text(toml("workflow"))
    await asyncio.sleep(0.3)  # several watch intervals: a watcher left running would reload
    assert served(t) == "legacy"
