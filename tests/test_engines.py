"""Engines through `Turnout`: threads, contextvars, timeouts, fallbacks, circuit breaker, targets."""

from __future__ import annotations

import asyncio
import functools
import sys
import textwrap
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from turnout import (
    BoundEngine,
    ConfigError,
    Reason,
    RoutingContext,
    Turnout,
    TurnoutError,
    current_context,
    current_decision,
)
from turnout.errors import CircuitOpenError, EngineNotFoundError, EngineTimeoutError
from turnout.testing import FakeClock

FLAG = "coordinator"


def config(
    default: str = "primary",
    variants: tuple[str, ...] = ("primary", "backup"),
    engines: dict[str, Any] | None = None,
    **flag: Any,
) -> dict[str, Any]:
    """A one-flag config whose default variant (hence engine) is `default`."""
    return {
        "engines": engines or {},
        "flags": {FLAG: {"variants": list(variants), "default": default, **flag}},
    }


def serving(engines: dict[str, Any] | None = None, default: str = "primary", **kwargs: Any) -> Turnout:
    return Turnout(config(default, engines=engines), **kwargs)


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown so sync engines left blocking by a timeout finish their thread.

    Async tests set it themselves before returning: the event loop (and its executor,
    which waits for its threads) is closed before this fixture's teardown runs.
    """
    event = threading.Event()
    yield event
    event.set()


# -- how engines are called ------------------------------------------------------------------


async def test_sync_engine_runs_in_a_worker_thread_with_its_arguments() -> None:
    t = serving()
    seen: dict[str, Any] = {}

    @t.engine("primary")
    def primary(message: str, *, lang: str) -> str:
        seen["thread"] = threading.get_ident()
        return f"{message}/{lang}"

    result = await t.run(FLAG, "hi", context=RoutingContext("u1"), lang="fr")

    assert result == "hi/fr"
    assert seen["thread"] != threading.get_ident()


async def test_async_engine_is_awaited_on_the_event_loop() -> None:
    t = serving()
    seen: dict[str, Any] = {}

    @t.engine("primary")
    async def primary(message: str) -> str:
        seen["thread"] = threading.get_ident()
        seen["loop"] = asyncio.get_running_loop()
        await asyncio.sleep(0)
        return message.upper()

    assert await t.run(FLAG, "hi", context=RoutingContext("u1")) == "HI"
    assert seen["thread"] == threading.get_ident()
    assert seen["loop"] is asyncio.get_running_loop()
    assert t.engines["primary"].is_async


async def test_async_callables_are_recognised_through_partials_and_call_methods() -> None:
    class Coordinator:
        async def __call__(self, message: str) -> str:
            return f"object:{message}"

    async def tagged(tag: str, message: str) -> str:
        return f"{tag}:{message}"

    t = serving()
    t.add_engine("primary", Coordinator())
    t.add_engine("backup", functools.partial(tagged, "partial"))

    assert t.engines["primary"].is_async
    assert t.engines["backup"].is_async
    assert await t.run(FLAG, "x", context=RoutingContext("u1")) == "object:x"


async def test_sync_callable_returning_an_awaitable_is_awaited() -> None:
    async def later(message: str) -> str:
        return f"later:{message}"

    def start_later(message: str) -> Any:  # sync, but hands back a coroutine
        return later(message)

    t = serving()
    t.add_engine("primary", start_later)

    assert not t.engines["primary"].is_async
    assert await t.run(FLAG, "x", context=RoutingContext("u1")) == "later:x"


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_engine_sees_the_routing_context_and_decision(kind: str) -> None:
    t = serving()
    seen: dict[str, Any] = {}

    def look() -> str:
        seen["context"] = current_context()
        seen["decision"] = current_decision(FLAG)
        return "ok"

    async def alook() -> str:
        return look()

    t.add_engine("primary", look if kind == "sync" else alook)
    ctx = RoutingContext("u1", attributes={"plan": "pro"})

    assert current_context() is None
    assert await t.run(FLAG, context=ctx) == "ok"

    assert seen["context"] is ctx
    assert seen["decision"] is not None
    assert seen["decision"].engine == "primary"
    assert current_context() is None  # reset after the call


async def test_engine_sees_the_request_context_already_in_force() -> None:
    from turnout.context import use_context

    t = serving()
    t.add_engine("primary", current_context)
    ctx = RoutingContext("u1")

    with use_context(ctx):
        assert await t.run(FLAG) is ctx
        assert current_context() is ctx
    assert ctx.decisions[FLAG].reason == Reason.DEFAULT


# -- timeouts --------------------------------------------------------------------------------


async def test_async_engine_past_its_timeout_is_cancelled_and_raises() -> None:
    t = serving({"primary": {"timeout_ms": 50}})
    never = asyncio.Event()
    cancelled = asyncio.Event()

    @t.engine("primary")
    async def primary() -> str:
        try:
            await never.wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "unreachable"

    with pytest.raises(EngineTimeoutError) as info:
        await t.run(FLAG, context=RoutingContext("u1"))

    assert info.value.engine == "primary"
    assert isinstance(info.value, TimeoutError)
    assert cancelled.is_set()
    assert t.failures.snapshot()["engine.primary"] == {"EngineTimeoutError": 1}


async def test_sync_engine_past_its_timeout_raises(release: threading.Event) -> None:
    t = serving({"primary": {"timeout_ms": 50}})
    t.add_engine("primary", lambda: release.wait(10) and "late")

    try:
        with pytest.raises(EngineTimeoutError, match="primary"):
            await t.run(FLAG, context=RoutingContext("u1"))
    finally:
        release.set()
    assert t.failures.count("engine.primary") == 1


async def test_engine_within_its_timeout_returns_normally() -> None:
    t = serving({"primary": {"timeout_ms": 5000}})
    t.add_engine("primary", lambda: "quick")

    assert await t.run(FLAG, context=RoutingContext("u1")) == "quick"
    assert t.failures.count() == 0


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_engines_own_timeout_error_is_not_reported_as_ours(kind: str) -> None:
    t = serving({"primary": {"timeout_ms": 5000}})
    upstream = TimeoutError("upstream API timed out")

    def fail() -> str:
        raise upstream

    async def afail() -> str:
        raise upstream

    t.add_engine("primary", fail if kind == "sync" else afail)

    with pytest.raises(TimeoutError, match=r"^upstream API timed out$") as info:
        await t.run(FLAG, context=RoutingContext("u1"))
    # (asyncio copies a bare TimeoutError coming back from a worker thread, so compare text, not identity)
    assert not isinstance(info.value, EngineTimeoutError)
    assert t.failures.snapshot() == {"engine.primary": {"TimeoutError": 1}}


# -- fallback --------------------------------------------------------------------------------


FALLBACK_ENGINES = {"primary": {"fallback": "backup"}, "backup": {}}


async def test_fallback_serves_when_the_engine_raises() -> None:
    t = serving(FALLBACK_ENGINES)
    t.add_engine("backup", lambda message: f"backup:{message}")

    @t.engine("primary")
    async def primary(message: str) -> str:
        raise RuntimeError("boom")

    ctx = RoutingContext("u1")
    assert await t.run(FLAG, "hi", context=ctx) == "backup:hi"

    decision = ctx.decisions[FLAG]
    assert decision.reason == Reason.FALLBACK
    assert decision.engine == "backup"
    assert decision.variant == "primary"  # the variant the flag served is kept
    assert decision.error is not None
    assert "RuntimeError" in decision.error
    assert "boom" in decision.error
    assert t.failures.snapshot() == {"engine.primary": {"RuntimeError": 1}}


async def test_fallback_serves_when_the_engine_times_out() -> None:
    t = serving({"primary": {"fallback": "backup", "timeout_ms": 50}, "backup": {}})
    t.add_engine("backup", lambda: "backup")
    never = asyncio.Event()

    @t.engine("primary")
    async def primary() -> str:
        await never.wait()
        return "unreachable"

    ctx = RoutingContext("u1")
    assert await t.run(FLAG, context=ctx) == "backup"
    assert ctx.decisions[FLAG].reason == Reason.FALLBACK
    assert ctx.decisions[FLAG].engine == "backup"
    assert t.failures.snapshot() == {"engine.primary": {"EngineTimeoutError": 1}}


async def test_sync_engine_timeout_falls_back(release: threading.Event) -> None:
    t = serving({"primary": {"fallback": "backup", "timeout_ms": 50}, "backup": {}})
    t.add_engine("primary", lambda: release.wait(10) and "late")
    t.add_engine("backup", lambda: "backup")

    ctx = RoutingContext("u1")
    try:
        assert await t.run(FLAG, context=ctx) == "backup"
    finally:
        release.set()
    assert ctx.decisions[FLAG].reason == Reason.FALLBACK


async def test_fallback_chain_is_walked_until_an_engine_serves() -> None:
    engines = {"primary": {"fallback": "second"}, "second": {"fallback": "backup"}, "backup": {}}
    t = serving(engines)
    calls: list[str] = []

    def failing(name: str) -> Any:
        def engine() -> str:
            calls.append(name)
            raise ValueError(name)

        return engine

    t.add_engine("primary", failing("primary"))
    t.add_engine("second", failing("second"))
    t.add_engine("backup", lambda: calls.append("backup") or "last")

    ctx = RoutingContext("u1")
    assert await t.run(FLAG, context=ctx) == "last"
    assert calls == ["primary", "second", "backup"]
    assert ctx.decisions[FLAG].engine == "backup"
    assert ctx.decisions[FLAG].reason == Reason.FALLBACK
    assert t.failures.count("engine.primary") == 1
    assert t.failures.count("engine.second") == 1


async def test_failing_engine_without_fallback_reraises_the_original_error() -> None:
    t = serving()
    error = KeyError("missing")

    @t.engine("primary")
    async def primary() -> str:
        raise error

    ctx = RoutingContext("u1")
    with pytest.raises(KeyError) as info:
        await t.run(FLAG, context=ctx)
    assert info.value is error
    assert ctx.decisions[FLAG].reason == Reason.DEFAULT  # not rewritten by a failed run
    assert t.failures.count("engine.primary") == 1


async def test_when_the_fallback_fails_too_its_error_is_raised() -> None:
    t = serving(FALLBACK_ENGINES)
    t.add_engine("primary", lambda: 1 / 0)

    def backup() -> str:
        raise LookupError("backup down")

    t.add_engine("backup", backup)

    with pytest.raises(LookupError, match="backup down"):
        await t.run(FLAG, context=RoutingContext("u1"))
    assert t.failures.snapshot() == {
        "engine.primary": {"ZeroDivisionError": 1},
        "engine.backup": {"LookupError": 1},
    }


async def test_config_settings_apply_to_engines_registered_in_code() -> None:
    t = serving({"primary": {"fallback": "backup", "timeout_ms": 250, "version": "4.2"}, "backup": {}})
    t.add_engine("primary", lambda: "p")
    t.add_engine("backup", lambda: "b")

    engine = t.engines["primary"]
    assert engine.fallback == "backup"
    assert engine.timeout_s == pytest.approx(0.25)
    assert engine.version == "4.2"


# -- circuit breaker -------------------------------------------------------------------------


class Flaky:
    """A sync engine that fails while `broken`, counting calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.broken = True

    def __call__(self) -> str:
        self.calls += 1
        if self.broken:
            raise ConnectionError("down")
        return "primary"


def breaker_turnout(clock: FakeClock, failures: int = 3, reset_s: float = 30) -> tuple[Turnout, Flaky]:
    engines = {
        "primary": {"fallback": "backup", "circuit_breaker": {"failures": failures, "reset_s": reset_s}},
        "backup": {},
    }
    t = serving(engines, clock=clock)
    flaky = Flaky()
    t.add_engine("primary", flaky)
    t.add_engine("backup", lambda: "backup")
    return t, flaky


async def serve(t: Turnout) -> tuple[Any, Reason, str | None]:
    ctx = RoutingContext("u1")  # a fresh request each time
    result = await t.run(FLAG, context=ctx)
    return result, ctx.decisions[FLAG].reason, ctx.decisions[FLAG].engine


async def test_breaker_opens_after_consecutive_failures_and_skips_the_engine() -> None:
    clock = FakeClock()
    t, flaky = breaker_turnout(clock, failures=3)

    for _ in range(3):
        assert await serve(t) == ("backup", Reason.FALLBACK, "backup")
    assert flaky.calls == 3

    for _ in range(5):
        assert await serve(t) == ("backup", Reason.FALLBACK, "backup")
    assert flaky.calls == 3  # skipped while open
    assert t.failures.snapshot()["engine.primary"] == {"ConnectionError": 3, "CircuitOpenError": 5}


async def test_breaker_half_open_trial_success_closes_it() -> None:
    clock = FakeClock()
    t, flaky = breaker_turnout(clock, failures=2, reset_s=30)
    for _ in range(2):
        await serve(t)
    flaky.broken = False

    clock.advance(29)
    assert await serve(t) == ("backup", Reason.FALLBACK, "backup")
    assert flaky.calls == 2  # still open just before reset_s

    clock.advance(1)
    assert await serve(t) == ("primary", Reason.DEFAULT, "primary")
    assert flaky.calls == 3  # the trial call went through

    for _ in range(3):
        assert await serve(t) == ("primary", Reason.DEFAULT, "primary")
    assert flaky.calls == 6


async def test_breaker_half_open_trial_failure_reopens_it() -> None:
    clock = FakeClock()
    t, flaky = breaker_turnout(clock, failures=2, reset_s=30)
    for _ in range(2):
        await serve(t)

    clock.advance(30)
    assert await serve(t) == ("backup", Reason.FALLBACK, "backup")
    assert flaky.calls == 3  # one trial, failed

    assert await serve(t) == ("backup", Reason.FALLBACK, "backup")
    assert flaky.calls == 3  # open again: a single failure while half-open is enough

    clock.advance(30)
    flaky.broken = False
    assert await serve(t) == ("primary", Reason.DEFAULT, "primary")
    assert flaky.calls == 4


async def test_breaker_counts_only_consecutive_failures() -> None:
    clock = FakeClock()
    t, flaky = breaker_turnout(clock, failures=3)

    for _ in range(4):
        flaky.broken = True
        await serve(t)
        await serve(t)
        flaky.broken = False
        assert await serve(t) == ("primary", Reason.DEFAULT, "primary")
    assert flaky.calls == 12  # never opened: a success resets the count


async def test_breaker_lets_only_one_trial_through_while_half_open() -> None:
    clock = FakeClock()
    t = serving(
        {"primary": {"fallback": "backup", "circuit_breaker": {"failures": 1, "reset_s": 10}}, "backup": {}},
        clock=clock,
    )
    gate = asyncio.Event()
    entered = asyncio.Event()
    calls = 0

    @t.engine("primary")
    async def primary() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("first call fails")
        entered.set()
        await gate.wait()
        return "primary"

    t.add_engine("backup", lambda: "backup")
    await serve(t)  # opens the breaker
    clock.advance(10)

    trial = asyncio.create_task(serve(t))
    await entered.wait()
    assert await serve(t) == ("backup", Reason.FALLBACK, "backup")  # not a second trial
    assert calls == 2

    gate.set()
    assert await trial == ("primary", Reason.DEFAULT, "primary")
    assert await serve(t) == ("primary", Reason.DEFAULT, "primary")


async def test_a_cancelled_trial_call_does_not_wedge_the_breaker_half_open() -> None:
    clock = FakeClock()
    t = serving(
        {"primary": {"fallback": "backup", "circuit_breaker": {"failures": 1, "reset_s": 10}}, "backup": {}},
        clock=clock,
    )
    entered = asyncio.Event()
    mode = "fail"

    @t.engine("primary")
    async def primary() -> str:
        if mode == "fail":
            raise RuntimeError("down")
        if mode == "hang":
            entered.set()
            await asyncio.Event().wait()
        return "primary"

    t.add_engine("backup", lambda: "backup")
    await serve(t)
    clock.advance(10)

    mode = "hang"
    trial = asyncio.create_task(serve(t))
    await entered.wait()
    trial.cancel()
    with pytest.raises(asyncio.CancelledError):
        await trial

    mode = "ok"
    assert await serve(t) == ("primary", Reason.DEFAULT, "primary")


async def test_breaker_can_be_disabled() -> None:
    engines = {"primary": {"fallback": "backup", "circuit_breaker": {"enabled": False}}, "backup": {}}
    t = serving(engines)
    flaky = Flaky()
    t.add_engine("primary", flaky)
    t.add_engine("backup", lambda: "backup")

    for _ in range(20):
        await serve(t)
    assert flaky.calls == 20
    assert t.engines["primary"].breaker is None


async def test_open_breaker_without_fallback_raises_circuit_open() -> None:
    clock = FakeClock()
    t = serving({"primary": {"circuit_breaker": {"failures": 1, "reset_s": 5}}}, clock=clock)
    flaky = Flaky()
    t.add_engine("primary", flaky)

    with pytest.raises(ConnectionError):
        await serve(t)
    with pytest.raises(CircuitOpenError, match="primary"):
        await serve(t)
    assert flaky.calls == 1


# -- engines that are missing ------------------------------------------------------------------


async def test_variant_without_an_engine_is_served_by_the_default_engine() -> None:
    t = Turnout(
        config("legacy", variants=("legacy", "workflow"), rules=[{"name": "all", "serve": "workflow"}])
    )
    t.add_engine("legacy", lambda message: f"legacy:{message}")

    ctx = RoutingContext("u1")
    assert t.decide(FLAG, ctx).engine == "workflow"
    assert await t.run(FLAG, "hi", context=ctx) == "legacy:hi"

    decision = ctx.decisions[FLAG]
    assert decision.reason == Reason.ERROR
    assert decision.engine == "legacy"
    assert decision.variant == "workflow"  # the users' assignment stays what it was
    assert decision.rule == "all"
    assert decision.error is not None
    assert "workflow" in decision.error
    assert t.failures.snapshot() == {"engine.workflow": {"EngineNotFoundError": 1}}


async def test_no_engine_at_all_raises_engine_not_found() -> None:
    t = serving()
    with pytest.raises(EngineNotFoundError, match="primary"):
        await t.run(FLAG, context=RoutingContext("u1"))


def test_add_engine_rejects_non_callables() -> None:
    t = serving()
    with pytest.raises(TypeError, match="callable"):
        t.add_engine("primary", "not a function")  # type: ignore[arg-type]
    assert "primary" not in t.engines


# -- engines from config targets -------------------------------------------------------------


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Write a uniquely named module into tmp_path (importable); returns a writer of its source."""
    names: list[str] = []
    monkeypatch.syspath_prepend(str(tmp_path))

    def write(source: str) -> str:
        name = f"turnout_engines_{uuid.uuid4().hex}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        names.append(name)
        return name

    yield write
    for name in names:
        sys.modules.pop(name, None)


ENGINE_MODULE = """
    import asyncio

    VERSION = "not callable"

    def legacy(message):
        return f"legacy:{message}"

    async def modern(message):
        await asyncio.sleep(0)
        return f"modern:{message}"

    modern.version = "7.1"

    class Holder:
        @staticmethod
        def nested(message):
            return f"nested:{message}"
"""


async def test_engines_are_imported_from_config_targets(module: Any) -> None:
    name = module(ENGINE_MODULE)
    t = Turnout(
        config(
            "legacy",
            variants=("legacy", "modern", "nested"),
            engines={
                "legacy": {"target": f"{name}:legacy", "version": "1.5"},
                "modern": {"target": f"{name}:modern"},
                "nested": {"target": f"{name}:Holder.nested"},
            },
        )
    )

    assert set(t.engines) == {"legacy", "modern", "nested"}
    assert t.engines["legacy"].version == "1.5"
    assert t.engines["modern"].version == "7.1"  # from the function's `version` attribute
    assert t.engines["nested"].version == "0"
    assert t.engines["modern"].is_async
    assert await t.run(FLAG, "hi", context=RoutingContext("u1")) == "legacy:hi"


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("{name}_missing:legacy", "cannot import"),
        ("{name}:absent", "no attribute"),
        ("{name}:Holder.absent", "no attribute"),
        ("{name}:VERSION", "not callable"),
    ],
)
def test_bad_targets_fail_at_load_naming_the_field(module: Any, target: str, message: str) -> None:
    name = module(ENGINE_MODULE)
    bad = target.format(name=name)

    with pytest.raises(ConfigError) as info:
        Turnout(config("legacy", variants=("legacy",), engines={"legacy": {"target": bad}}))

    (issue,) = info.value.issues
    assert issue.path == "engines.legacy.target"
    assert issue.value == bad
    assert message in issue.message
    assert "engines.legacy.target" in str(info.value)


def test_a_target_module_that_raises_on_import_is_a_config_error(module: Any) -> None:
    name = module("raise RuntimeError('cannot start without DATABASE_URL')\n")

    with pytest.raises(ConfigError) as info:
        Turnout(config("legacy", variants=("legacy",), engines={"legacy": {"target": f"{name}:x"}}))

    (issue,) = info.value.issues
    assert issue.path == "engines.legacy.target"
    assert "DATABASE_URL" in issue.message


def test_every_bad_target_is_reported_at_once(module: Any) -> None:
    name = module(ENGINE_MODULE)
    engines = {"a": {"target": f"{name}:nope"}, "b": {"target": f"{name}:VERSION"}}

    with pytest.raises(ConfigError) as info:
        Turnout(config("a", variants=("a", "b"), engines=engines))
    assert sorted(issue.path for issue in info.value.issues) == ["engines.a.target", "engines.b.target"]


def test_target_import_only_rejects_malformed_strings() -> None:
    from turnout.engines import import_target

    with pytest.raises(TurnoutError, match=r"package\.module:attribute"):
        import_target("no_colon_here")
    assert import_target("os.path:join") is __import__("os").path.join


# -- versions --------------------------------------------------------------------------------


def test_engine_version_from_the_decorator() -> None:
    t = serving()

    @t.engine("primary", version="2.0")
    def primary() -> str:
        return "p"

    t.add_engine("backup", lambda: "b")

    assert primary() == "p"  # the decorator returns the function unchanged
    assert t.engines["primary"].version == "2.0"
    assert t.engines["primary"].name == "primary"
    assert t.engines["backup"].version == "0"


def test_engines_survive_a_reload_and_take_the_new_settings() -> None:
    t = serving()
    t.add_engine("primary", lambda: "p", version="2.0")
    t.reload(config(engines={"primary": {"timeout_ms": 100}}))

    assert t.engines["primary"].version == "2.0"
    assert t.engines["primary"].timeout_s == pytest.approx(0.1)


# -- the sync path ---------------------------------------------------------------------------


def bound(t: Turnout, ctx: RoutingContext | None = None) -> BoundEngine:
    ctx = ctx or RoutingContext("u1")
    return BoundEngine(t, ctx, t.decide(FLAG, ctx))


def test_call_sync_runs_a_sync_engine_inline() -> None:
    t = serving()
    seen: dict[str, Any] = {}

    @t.engine("primary")
    def primary(message: str) -> str:
        seen["thread"] = threading.get_ident()
        seen["context"] = current_context()
        return f"sync:{message}"

    ctx = RoutingContext("u1")
    engine = bound(t, ctx)
    assert engine.name == "primary"
    assert engine.variant == "primary"
    assert engine.call_sync("hi") == "sync:hi"
    assert seen == {"thread": threading.get_ident(), "context": ctx}
    assert current_context() is None


def test_call_sync_with_a_timeout_keeps_the_context_and_falls_back(release: threading.Event) -> None:
    t = serving({"primary": {"fallback": "backup", "timeout_ms": 50}, "backup": {}})
    seen: dict[str, Any] = {}

    def primary() -> str:
        seen["primary"] = current_context()
        release.wait(10)
        return "late"

    def backup() -> str:
        seen["backup"] = current_context()
        return "backup"

    t.add_engine("primary", primary)
    t.add_engine("backup", backup)
    ctx = RoutingContext("u1")

    assert bound(t, ctx).call_sync() == "backup"
    assert seen == {"primary": ctx, "backup": ctx}
    assert ctx.decisions[FLAG].reason == Reason.FALLBACK
    assert t.failures.snapshot() == {"engine.primary": {"EngineTimeoutError": 1}}


def test_call_sync_timeout_without_fallback_raises(release: threading.Event) -> None:
    t = serving({"primary": {"timeout_ms": 50}})
    t.add_engine("primary", lambda: release.wait(10) and "late")

    with pytest.raises(EngineTimeoutError):
        bound(t).call_sync()


def test_call_sync_reraises_the_original_error() -> None:
    t = serving()
    error = ValueError("bad input")

    def primary() -> str:
        raise error

    t.add_engine("primary", primary)
    with pytest.raises(ValueError) as info:
        bound(t).call_sync()
    assert info.value is error


def test_call_sync_on_an_async_engine_raises_a_clear_error() -> None:
    t = serving(FALLBACK_ENGINES)
    called: list[str] = []

    async def primary() -> str:
        called.append("primary")
        return "p"

    t.add_engine("primary", primary)
    t.add_engine("backup", lambda: called.append("backup") or "b")

    with pytest.raises(TurnoutError, match=r"'primary' is async.*await"):
        bound(t).call_sync()
    assert called == []  # a programming error: no fallback, nothing counted
    assert t.failures.count() == 0


def test_call_sync_refuses_an_async_fallback_naming_it() -> None:
    t = serving(FALLBACK_ENGINES)
    t.add_engine("primary", lambda: 1 / 0)

    async def backup() -> str:
        return "b"

    t.add_engine("backup", backup)

    with pytest.raises(TurnoutError, match="'backup' is async") as info:
        bound(t).call_sync()
    assert isinstance(info.value.__cause__, ZeroDivisionError)


async def test_awaiting_a_bound_engine_runs_it_with_fallback() -> None:
    t = serving(FALLBACK_ENGINES)
    t.add_engine("primary", lambda: 1 / 0)
    t.add_engine("backup", lambda: "backup")
    ctx = RoutingContext("u1")

    assert await bound(t, ctx)() == "backup"
    assert ctx.decisions[FLAG].reason == Reason.FALLBACK
    assert repr(bound(t)) == "<BoundEngine coordinator=primary engine='primary'>"


async def test_a_hung_sync_engine_does_not_starve_other_engines() -> None:
    release = threading.Event()
    t = Turnout(
        {
            "engines": {
                "stuck": {"timeout_ms": 20, "circuit_breaker": {"enabled": False}},
                "fast": {"timeout_ms": 2000},
            },
            "flags": {
                "a": {"variants": ["stuck"], "default": "stuck"},
                "b": {"variants": ["fast"], "default": "fast"},
            },
            "telemetry": {"exporters": []},
        }
    )
    t.add_engine("stuck", lambda message: release.wait(30))
    t.add_engine("fast", lambda message: "ok")
    try:
        for _ in range(40):  # more hung calls than one engine's pool has threads
            with pytest.raises(EngineTimeoutError):
                await t.run("a", "hi", context=RoutingContext("u"))
        assert await t.run("b", "hi", context=RoutingContext("u")) == "ok"
    finally:
        release.set()
