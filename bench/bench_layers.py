"""What each layer of turnout adds to the end-to-end route, in function calls and CPU per request.

The FastAPI apps of `bench_e2e.py`, layer by layer — bare; behind `TurnoutMiddleware`; with the
`@experiment` decision; with the engine run through turnout; with an exposure per request
written to SQLite — driven in process by a raw ASGI loop, every request a new user id. Two
figures per layer:

- **calls per request**: the Python function calls and the calls of built-in (C) functions
  that cProfile counts on the event loop's thread. They do not depend on the machine's load,
  so they show a change of a few per cent that timings on a busy machine cannot;
- **CPU µs per request**: `time.process_time()` of the whole process (the SQLite writer's
  thread included) over passes of N requests, the GC running as in production, with the
  exposures flushed before each pass ends; the layers interleaved, the best pass kept.

    .venv/bin/python bench/bench_layers.py            # 5 passes of 5,000 requests per layer
    .venv/bin/python bench/bench_layers.py --quick    # 3 passes of 2,000
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import _common
import _e2e_app
from fastapi import FastAPI

from turnout import Turnout

BODY = b'{"message": "where is my refund"}'
PROFILED = 2_000
"""Requests per layer whose calls are counted (amortised work, such as folding metrics, included)."""


@dataclass
class Layer:
    """One app of the table and what it adds over the line before it."""

    name: str
    adds: str
    factory: Callable[[], FastAPI]
    app: FastAPI | None = None
    state: dict[str, Any] = field(default_factory=dict)
    lifespan: tuple[asyncio.Queue[dict[str, Any]], asyncio.Queue[dict[str, Any]]] | None = None
    task: asyncio.Task[None] | None = None
    python_calls: float = 0.0
    builtin_calls: float = 0.0
    cpu_us: list[float] = field(default_factory=list)

    async def start(self) -> None:
        """Build the app and run its lifespan startup (turnout's background tasks start)."""
        self.app = self.factory()
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        await inbox.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self.state}
        self.task = asyncio.create_task(self.app(scope, inbox.get, outbox.put))  # type: ignore[arg-type]
        started = await outbox.get()
        if started["type"] != "lifespan.startup.complete":
            sys.exit(f"{self.name}: startup failed: {started}")
        self.lifespan = (inbox, outbox)
        sent: list[dict[str, Any]] = []

        async def keep(message: dict[str, Any]) -> None:
            sent.append(message)

        await self.app(self.requests(-1, 1)[0], _receive, keep)  # type: ignore[arg-type]
        if sent[0]["status"] != 200:  # the sanity check: every layer answers the route
            sys.exit(f"{self.name}: HTTP {sent[0]['status']}: {sent[1:]}")

    async def stop(self) -> None:
        """Run the lifespan shutdown (events delivered, exporters flushed)."""
        if self.lifespan is not None:
            inbox, outbox = self.lifespan
            await inbox.put({"type": "lifespan.shutdown"})
            await outbox.get()
        if self.task is not None:
            await self.task

    def requests(self, first: int, count: int) -> list[dict[str, Any]]:
        """`count` POST /chat scopes from users never seen before (built before any timing)."""
        people = [
            (f"{self.name}-{i}", "premium" if i % 5 == 0 else "free") for i in range(first, first + count)
        ]
        scopes = _common.http_scopes(people, method="POST", body=BODY)
        for scope in scopes:
            scope["state"] = dict(self.state)  # as uvicorn copies the lifespan state into every request
        return scopes

    async def serve(self, scopes: list[dict[str, Any]]) -> None:
        """Serve the requests, yielding to the loop every 100; end with the exposures delivered."""
        app = self.app
        assert app is not None
        for index, scope in enumerate(scopes):
            await app(scope, _receive, _common.discard)  # type: ignore[arg-type]
            if index % 100 == 0:
                await asyncio.sleep(0)  # the events flusher and the writer's callbacks run here
        turnout = self.state.get("turnout")
        if isinstance(turnout, Turnout):
            await turnout.events.aflush()


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": BODY, "more_body": False}


def layers() -> list[Layer]:
    """The route, one more part of turnout on each line."""
    return [
        Layer("bare", "the FastAPI route alone", _e2e_app.bare_app),
        Layer(
            "+ middleware", "TurnoutMiddleware reads the context (turnout started)", _e2e_app.middleware_app
        ),
        Layer("+ decision", "@experiment decides and binds the engine", _e2e_app.experiment_app),
        Layer(
            "+ engine call",
            "the engine run through turnout (breaker, metrics)",
            lambda: _e2e_app.turnout_app(events=False),
        ),
        Layer(
            "+ exposure", "one exposure per request into SQLite", lambda: _e2e_app.turnout_app(events=True)
        ),
    ]


async def count_calls(layer: Layer, first: int) -> None:
    """cProfile's count of Python and built-in calls per request on this thread."""
    scopes = layer.requests(first, PROFILED)
    profile = cProfile.Profile()
    profile.enable()
    await layer.serve(scopes)
    profile.disable()
    python = builtin = 0
    for (filename, _, _), row in pstats.Stats(profile).stats.items():  # type: ignore[attr-defined]
        if filename == "~":
            builtin += row[1]
        else:
            python += row[1]
    layer.python_calls, layer.builtin_calls = python / PROFILED, builtin / PROFILED


async def run(passes: int, requests: int) -> list[Layer]:
    """Start every layer, warm up, count calls, then time interleaved passes."""
    table = layers()
    for layer in table:
        await layer.start()
        await layer.serve(layer.requests(0, 2_000))  # warm-up: imports, caches, the SQLite file settle
        await count_calls(layer, 1_000_000)
    next_id = 2_000_000
    for rep in range(1, passes + 1):
        for layer in table:
            scopes = layer.requests(next_id, requests)
            started = time.process_time()
            await layer.serve(scopes)
            layer.cpu_us.append((time.process_time() - started) / requests * 1e6)
            next_id += requests
        _common.progress(rep, passes)
    for layer in table:
        await layer.stop()
    return table


def main() -> None:
    """Print one table: calls and CPU per request for each layer, and what each adds."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 passes of 2,000 requests")
    parser.add_argument("--passes", type=int, default=None, help="timed passes per layer (default 5)")
    parser.add_argument("--requests", type=int, default=None, help="requests per pass (default 5,000)")
    args = parser.parse_args()
    passes = args.passes or (3 if args.quick else 5)
    requests = args.requests or (2_000 if args.quick else 5_000)

    print("# The end-to-end route, layer by layer: calls and CPU per request\n")
    print(_common.machine())
    print(_common.versions(("turnout", "fastapi", "starlette")))
    print(f"in process (raw ASGI), every request a new user; {passes} passes of {requests:,} requests\n")
    with tempfile.TemporaryDirectory(prefix="turnout-layers-") as workdir:
        os.chdir(workdir)  # turnout_events.db and logs/metrics.jsonl land here
        table = asyncio.run(run(passes, requests))

    bare = table[0]
    rows = []
    previous = bare
    for layer in table:
        calls = layer.python_calls + layer.builtin_calls
        cpu = min(layer.cpu_us)
        rows.append(
            (
                layer.name,
                f"{layer.python_calls:.0f}",
                f"{layer.builtin_calls:.0f}",
                f"{calls - (previous.python_calls + previous.builtin_calls):+.0f}",
                f"{cpu:.1f}",
                f"{cpu - min(previous.cpu_us):+.1f}",
                f"{cpu / min(bare.cpu_us):.2f}",
                layer.adds,
            )
        )
        previous = layer
    headers = (
        "layer",
        "Python calls",
        "built-in calls",
        "calls added",
        "CPU µs/req (best)",
        "µs added",
        "× bare",
        "what it adds",
    )
    print(_common.table(headers, rows, right=(1, 2, 3, 4, 5, 6)))
    turnout_calls = sum(getattr(table[-1], f) - getattr(bare, f) for f in ("python_calls", "builtin_calls"))
    print(
        f"\nturnout's whole share: {turnout_calls:.0f} calls and "
        f"{min(table[-1].cpu_us) - min(bare.cpu_us):.1f} µs of CPU per request "
        f"over the bare route's {min(bare.cpu_us):.1f} µs; {_common.load()} at the end"
    )


if __name__ == "__main__":
    main()
