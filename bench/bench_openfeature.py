"""What OpenFeature costs on top of `Turnout.decide()`: the provider, and OFREP in process and over HTTP.

The benchmark flag (plan in [premium, enterprise] → langgraph, else 80/10/10), per call:
`turnout.decide` (the baseline); the `openfeature-sdk` client with `TurnoutProvider`; one OFREP
single evaluation through the ASGI app driven directly (prebuilt scope and body, no server);
and one OFREP evaluation over loopback HTTP (uvicorn in a thread, an httpx keep-alive client),
which is what a Go or Java service pays per flag. Every path must give the same variants.

    .venv/bin/python bench/bench_openfeature.py            # 100k ids, 7 passes (HTTP: 2k ids)
    .venv/bin/python bench/bench_openfeature.py --quick    # 10k ids, 3 passes (HTTP: 500 ids)
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _common
from _common import TURNOUT_FLAG, User

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "plugins" / "turnout-openfeature" / "src"))

Evaluate = Callable[[str, str], str]


def _ofrep_asgi(app: Any) -> Evaluate:
    """One OFREP call through the raw ASGI app; the loop runs it to completion."""
    loop = asyncio.new_event_loop()

    def evaluate(user: str, plan: str) -> str:
        body = json.dumps({"context": {"targetingKey": user, "plan": plan}}).encode()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/ofrep/v1/evaluate/flags/coordinator",
            "raw_path": b"/ofrep/v1/evaluate/flags/coordinator",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json")],
            "server": ("bench", 80),
            "client": ("127.0.0.1", 1),
        }
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        loop.run_until_complete(app(scope, receive, send))
        return str(json.loads(sent[-1]["body"])["variant"])

    return evaluate


class _Server:
    """uvicorn on a loopback port, in a thread (no network beyond 127.0.0.1)."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def start(self) -> None:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join()


def _time(evaluate: Evaluate, people: Sequence[User], reps: int, name: str, note: str) -> _common.Result:
    batches = _common.chunks(people, 100)
    sizes = [len(b) for b in batches]
    result = _common.Result(name, note)
    for _ in range(reps):
        result.add_pass(
            _common.time_batches(lambda batch: [evaluate(u, p) for u, p in batch], batches), sizes
        )
    return result


def main() -> None:
    """Set the paths up, check they agree, time them, print the table."""
    args = _common.parse_args(__doc__.splitlines()[0])
    from openfeature import api
    from openfeature.evaluation_context import EvaluationContext
    from turnout_openfeature import TurnoutProvider

    from turnout import RoutingContext, Turnout

    people = _common.users(args.ids)
    http_people = people[: 500 if args.quick else 2000]
    print(f"# OpenFeature paths vs decide(): {args.ids:,} ids, {args.reps} passes\n")
    print(_common.machine())
    print(_common.versions(("turnout", "openfeature-sdk", "starlette", "uvicorn", "httpx")))
    turnout = Turnout(
        {
            "flags": {"coordinator": TURNOUT_FLAG},
            "events": {"enabled": False},
            "routing": {"attributes": ["plan"]},
        },
        env={},
    )
    decide = turnout.decide

    def direct(user: str, plan: str) -> str:
        return decide("coordinator", RoutingContext(user, {"plan": plan})).variant

    api.set_provider(TurnoutProvider(turnout))
    client = api.get_client()

    def provider(user: str, plan: str) -> str:
        return str(
            client.get_string_details(
                "coordinator", "legacy", EvaluationContext(user, {"plan": plan})
            ).variant
        )

    import httpx

    server = _Server(turnout.ofrep_app())
    server.start()
    http = httpx.Client(base_url=server.url)

    def over_http(user: str, plan: str) -> str:
        answer = http.post(
            "/ofrep/v1/evaluate/flags/coordinator", json={"context": {"targetingKey": user, "plan": plan}}
        )
        return str(answer.json()["variant"])

    paths = [
        ("turnout.decide()", "the baseline", direct, people),
        ("OpenFeature client + TurnoutProvider", "client.get_string_details()", provider, people),
        (
            "OFREP, ASGI app in process",
            "JSON in, JSON out, no server",
            _ofrep_asgi(turnout.ofrep_app()),
            people,
        ),
        ("OFREP over loopback HTTP", "uvicorn + httpx keep-alive", over_http, http_people),
    ]
    for name, _, evaluate, who in paths:
        wrong = sum(evaluate(u, p) != direct(u, p) for u, p in who)
        if wrong:
            raise SystemExit(f"{name}: {wrong} ids got another variant than decide()")
    counts = f"{len(people):,} ids; HTTP {len(http_people):,}"
    print(f"\nEvery path gives decide()'s variant for every id ({counts}).\n")
    results = [_time(evaluate, who, args.reps, name, note) for name, note, evaluate, who in paths]
    http.close()
    server.stop()
    api.shutdown()
    baseline = results[0].median_us
    rows = [
        (r.name, r.note, f"{r.median_us:.2f}", f"{r.best_us:.2f}", f"{r.median_us / baseline:.1f}×")
        for r in results
    ]
    print(_common.table(("path", "what", "µs/call (median)", "best", "vs decide()"), rows, right=(2, 3, 4)))


if __name__ == "__main__":
    main()
