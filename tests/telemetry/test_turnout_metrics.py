"""What a Turnout records as it decides and runs: engines, decide, intent, variants, `measure`."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterable
from typing import Any

import pytest

from turnout import RoutingContext, Turnout
from turnout.testing import make_turnout
from turnout.types import Intent

FLAG = "coordinator"
EXPERIMENT = "workflow-canary"


def config(*, intent: bool = False) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        {"name": "canary", "experiment": EXPERIMENT, "split": {"legacy": 50, "workflow": 50}}
    ]
    if intent:
        rules.insert(0, {"name": "refunds", "when": {"intent": "refund"}, "serve": "workflow"})
    return {
        "engines": {"legacy": {}, "workflow": {"fallback": "legacy"}},
        "flags": {
            FLAG: {"variants": ["legacy", "workflow"], "default": "legacy", "rules": rules},
            "plain": {"variants": ["legacy", "workflow"], "default": "legacy"},
        },
        "intent": {"enabled": intent},
        "telemetry": {"exporters": []},
    }


def keys_for(variant: str, n: int) -> list[str]:
    """`n` targeting keys the canary split assigns to `variant` (found on a throwaway Turnout)."""
    probe = Turnout(config())
    found = [f"u{i}" for i in range(2000) if probe.decide(FLAG, RoutingContext(f"u{i}")).variant == variant]
    return found[:n]


LEGACY_KEYS = keys_for("legacy", 5)
WORKFLOW_KEYS = keys_for("workflow", 5)


class Classifier:
    def predict(self, text: str) -> Intent:
        if "boom" in text:
            raise ValueError("model file is corrupt")
        return Intent("refund" if "refund" in text else "chat", 0.9)


def make(*, fail: Iterable[str] = (), intent: bool = False) -> Turnout:
    t = make_turnout(config(intent=intent), classifier=Classifier())
    failing = set(fail)

    def engine_named(name: str) -> Any:
        async def engine(message: str) -> str:
            if name in failing:
                raise ConnectionError(f"{name} is down")
            return f"{name}:{message}"

        return engine

    for name in ("legacy", "workflow"):
        t.add_engine(name, engine_named(name))
    return t


def components(t: Turnout) -> dict[str, Any]:
    data: dict[str, Any] = t.metrics.snapshot(reset_window=False)["components"]
    return data


def variants(t: Turnout) -> dict[str, Any]:
    experiments = t.metrics.snapshot(reset_window=False)["experiments"]
    assert experiments[EXPERIMENT]["flag"] == FLAG
    found: dict[str, Any] = experiments[EXPERIMENT]["variants"]
    return found


async def test_runs_are_counted_per_engine_and_decisions_under_decide() -> None:
    t = make()

    for key in LEGACY_KEYS[:3] + WORKFLOW_KEYS[:2]:
        await t.run(FLAG, "hi", context=RoutingContext(key))

    found = components(t)
    assert set(found) == {"decide", "engine.legacy", "engine.workflow"}
    assert found["engine.legacy"]["total_requests"] == 3
    assert found["engine.workflow"]["total_requests"] == 2
    assert found["decide"]["total_requests"] == 5
    for stats in found.values():
        assert stats["success_rate"] == 1.0
        assert stats["errors"] == {}
        latency = stats["latency_ms"]
        assert 0.0 <= latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
        assert latency["mean"] <= latency["max"]


async def test_snapshot_without_reset_keeps_the_window_open() -> None:
    t = make()
    await t.run(FLAG, "hi", context=RoutingContext(LEGACY_KEYS[0]))

    first = components(t)["engine.legacy"]
    await t.run(FLAG, "hi", context=RoutingContext(LEGACY_KEYS[1]))
    second = components(t)["engine.legacy"]

    assert first["window"]["total_requests"] == 1
    assert second["total_requests"] == second["window"]["total_requests"] == 2


async def test_a_run_reuses_the_request_decision() -> None:
    t = make()
    ctx = RoutingContext(LEGACY_KEYS[0])

    t.decide(FLAG, ctx)
    await t.run(FLAG, "a", context=ctx)
    await t.run(FLAG, "b", context=ctx)

    found = components(t)
    assert found["decide"]["total_requests"] == 1
    assert found["engine.legacy"]["total_requests"] == 2
    assert variants(t)["legacy"]["exposures"] == 1
    assert variants(t)["legacy"]["total_requests"] == 2


def test_an_unknown_flag_is_counted_as_a_failure() -> None:
    t = make()

    t.decide("missing", RoutingContext("u1"))
    t.decide("plain", RoutingContext("u1"))

    decide = components(t)["decide"]
    assert (decide["total_requests"], decide["success_rate"]) == (2, 0.5)
    assert decide["errors"] == {"UnknownFlagError": 1}
    assert t.failures.snapshot() == {"decide": {"UnknownFlagError": 1}}


async def test_classifying_records_intent_classify() -> None:
    t = make(intent=True)

    await t.run(FLAG, "hi", context=RoutingContext("a", text="refund please"))
    await t.run(FLAG, "hi", context=RoutingContext("b", text="hello there"))
    await t.run(FLAG, "hi", context=RoutingContext("c", text="boom"))
    await t.run(FLAG, "hi", context=RoutingContext("d", text="   "))  # nothing to classify

    intent = components(t)["intent.classify"]
    assert intent["total_requests"] == 3
    assert intent["errors"] == {"ValueError": 1}
    assert intent["success_rate"] == pytest.approx(2 / 3, abs=1e-6)
    assert components(t)["engine.workflow"]["total_requests"] >= 1
    assert t.failures.count("intent.classify") == 1


async def test_no_intent_component_when_nothing_needs_the_intent() -> None:
    t = make(intent=True)

    await t.run("plain", "hi", context=RoutingContext("a", text="refund please"))

    assert "intent.classify" not in components(t)


async def test_experiment_variants_count_exposures_and_requests() -> None:
    t = make()

    for key in LEGACY_KEYS[:4] + WORKFLOW_KEYS[:3]:
        await t.run(FLAG, "hi", context=RoutingContext(key))
    t.decide(FLAG, RoutingContext(WORKFLOW_KEYS[3]))  # exposed, never run

    found = variants(t)
    assert found["legacy"]["exposures"] == 4
    assert found["legacy"]["total_requests"] == 4
    assert found["workflow"]["exposures"] == 4
    assert found["workflow"]["total_requests"] == 3
    assert found["workflow"]["success_rate"] == 1.0
    assert found["workflow"]["window"]["exposures"] == 4


async def test_a_failed_variant_counts_as_failed_even_when_its_fallback_served() -> None:
    t = make(fail=["workflow"])

    replies = [await t.run(FLAG, "hi", context=RoutingContext(key)) for key in WORKFLOW_KEYS[:3]]
    await t.run(FLAG, "hi", context=RoutingContext(LEGACY_KEYS[0]))

    assert replies == ["legacy:hi"] * 3
    found = variants(t)
    assert found["workflow"]["total_requests"] == 3
    assert found["workflow"]["success_rate"] == 0.0
    assert found["workflow"]["errors"] == {"ConnectionError": 3}
    assert found["legacy"]["total_requests"] == 1
    assert found["legacy"]["success_rate"] == 1.0
    # Not double-counted under the fallback's variant.
    assert found["legacy"]["exposures"] == 1
    engines = components(t)
    assert engines["engine.workflow"]["errors"] == {"ConnectionError": 3}
    assert engines["engine.workflow"]["success_rate"] == 0.0
    assert engines["engine.legacy"]["total_requests"] == 4
    assert engines["engine.legacy"]["success_rate"] == 1.0
    assert t.failures.count("engine.workflow") == 3


async def test_a_failure_without_fallback_is_counted_and_raised() -> None:
    t = make(fail=["legacy"])

    with pytest.raises(ConnectionError):
        await t.run(FLAG, "hi", context=RoutingContext(LEGACY_KEYS[0]))

    assert components(t)["engine.legacy"]["errors"] == {"ConnectionError": 1}
    assert variants(t)["legacy"]["errors"] == {"ConnectionError": 1}


async def test_an_engine_timeout_is_counted_under_its_error_type() -> None:
    t = Turnout({**config(), "engines": {"legacy": {}, "workflow": {"fallback": "legacy", "timeout_ms": 20}}})
    never = asyncio.Event()

    async def workflow(message: str) -> str:
        await never.wait()
        return message

    t.add_engine("workflow", workflow)
    t.add_engine("legacy", lambda message: f"legacy:{message}")

    assert await t.run(FLAG, "hi", context=RoutingContext(WORKFLOW_KEYS[0])) == "legacy:hi"

    assert components(t)["engine.workflow"]["errors"] == {"EngineTimeoutError": 1}
    assert variants(t)["workflow"]["errors"] == {"EngineTimeoutError": 1}


# -- measure -----------------------------------------------------------------------------------


def test_measure_as_a_context_manager() -> None:
    t = make()

    with t.measure("db.query"):
        pass
    with pytest.raises(KeyError), t.measure("db.query"):
        raise KeyError("row")

    stats = components(t)["db.query"]
    assert stats["total_requests"] == 2
    assert stats["success_rate"] == 0.5
    assert stats["errors"] == {"KeyError": 1}


async def test_measure_as_an_async_context_manager_and_as_decorators() -> None:
    t = make()

    @t.measure("x")
    def sync_call(n: int) -> int:
        if n < 0:
            raise ValueError(n)
        return n * 2

    @t.measure("x")
    async def async_call(n: int) -> int:
        await asyncio.sleep(0)
        return n + 1

    async with t.measure("block"):
        await asyncio.sleep(0)

    assert sync_call(2) == 4
    assert await async_call(2) == 3
    with pytest.raises(ValueError):
        sync_call(-1)

    found = components(t)
    assert found["x"]["total_requests"] == 3
    assert found["x"]["errors"] == {"ValueError": 1}
    assert found["block"]["total_requests"] == 1
    assert sync_call.__name__ == "sync_call"


async def test_measure_inside_an_engine_and_nested() -> None:
    t = make()
    outer = t.measure("outer")

    async def workflow(message: str) -> str:
        with outer, t.measure("inner"), outer:
            return message

    t.add_engine("workflow", workflow)
    await t.run(FLAG, "hi", context=RoutingContext(WORKFLOW_KEYS[0]))

    found = components(t)
    assert found["outer"]["total_requests"] == 2
    assert found["inner"]["total_requests"] == 1


# -- threads -----------------------------------------------------------------------------------


async def test_sync_engines_in_worker_threads_give_exact_counts() -> None:
    # No fallback and no breaker: exactly one attempt per request.
    no_breaker = {"circuit_breaker": {"enabled": False}}
    t = Turnout({**config(), "engines": {"legacy": no_breaker, "workflow": no_breaker}})
    seen: set[str] = set()
    lock = threading.Lock()

    def engine(message: str) -> str:
        with lock:
            seen.add(threading.current_thread().name)
        with t.measure("engine.inner"):
            if message.endswith("7"):
                raise ValueError(message)
        return message

    t.add_engine("legacy", engine)
    t.add_engine("workflow", engine)
    contexts = [RoutingContext(f"user-{i}") for i in range(400)]

    results = await asyncio.gather(
        *(t.run(FLAG, f"m{i}", context=ctx) for i, ctx in enumerate(contexts)), return_exceptions=True
    )

    failed = sum(isinstance(r, ValueError) for r in results)
    assert failed == 40
    assert len(seen) > 1, "the sync engine should have run in several worker threads"
    found = components(t)
    served = {d: sum(ctx.decisions[FLAG].variant == d for ctx in contexts) for d in ("legacy", "workflow")}
    assert found["engine.legacy"]["total_requests"] == served["legacy"]
    assert found["engine.workflow"]["total_requests"] == served["workflow"]
    assert found["engine.inner"]["total_requests"] == 400
    assert found["engine.inner"]["errors"] == {"ValueError": 40}
    assert found["decide"]["total_requests"] == 400
    counted = variants(t)
    assert sum(v["total_requests"] for v in counted.values()) == 400
    assert sum(v["exposures"] for v in counted.values()) == 400
    assert sum(sum(v["errors"].values()) for v in counted.values()) == 40


def test_sync_runs_from_many_threads_give_exact_counts() -> None:
    t = Turnout(config())
    t.add_engine("legacy", lambda message: message)
    t.add_engine("workflow", lambda message: message)
    start = threading.Barrier(8)

    def worker(n: int) -> int:
        start.wait()
        for i in range(250):
            ctx = RoutingContext(f"t{n}-{i}")
            t.bind(FLAG, ctx).call_sync("hi")
        return n

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(worker, range(8))) == list(range(8))

    data = t.metrics.snapshot()
    found = data["components"]
    assert found["decide"]["total_requests"] == 2000
    assert found["engine.legacy"]["total_requests"] + found["engine.workflow"]["total_requests"] == 2000
    variants_ = data["experiments"][EXPERIMENT]["variants"]
    assert sum(v["total_requests"] for v in variants_.values()) == 2000
    assert sum(v["exposures"] for v in variants_.values()) == 2000
    assert all(v["success_rate"] == 1.0 for v in variants_.values())


async def test_a_second_call_served_by_the_fallback_still_counts_against_the_variant() -> None:
    t = make(fail=["workflow"])
    for index in range(20):
        context = RoutingContext(f"user-{index}")
        decision = t.decide(FLAG, context)
        await t.run(FLAG, "first", context=context)
        await t.run(FLAG, "second", context=context)  # reuses the request's (FALLBACK) decision
        if decision.variant == "workflow":
            assert context.decisions[FLAG].reason.value == "FALLBACK"
    stats = t.metrics.snapshot(reset_window=False)["experiments"]
    workflow = next(exp["variants"]["workflow"] for exp in stats.values() if "workflow" in exp["variants"])
    assert workflow["total_requests"] > 0
    assert workflow["success_rate"] == 0.0
