"""`turnout demo`: the chat-coordinator example app, in-process, under synthetic traffic."""

from __future__ import annotations

import asyncio
import importlib
import random
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from turnout.errors import TurnoutError

PLANS = (("free", 0.6), ("premium", 0.3), ("enterprise", 0.1))
MESSAGES = (
    "Hi there!",
    "Where is my order #4411?",
    "My package still hasn't arrived, can you track it?",
    "I want a refund for the broken blender",
    "This is the third time my delivery is late, unacceptable",
    "Does the X200 vacuum work on carpets?",
    "Can I talk to a real person please",
    "Thanks, bye!",
    "Please cancel my order",
    "My card was charged twice",
    "I can't log into my account",
    "你好",
    "我的订单到哪了？",
    "快递三天没更新了，帮我查一下物流",
    "我要退款，东西坏了",
    "你们的服务太差了，我要投诉",
    "这款耳机支持降噪吗？",
    "请帮我转人工客服",
    "谢谢，再见",
    "我想取消订单",
    "付款失败了怎么办",
    "我的账号登录不了",
)
CONCURRENCY = 64


def _example_module() -> Any:
    """Import examples.chat_coordinators.app from the checkout (cwd, or where turnout lives)."""
    here = Path(__file__).resolve()
    for root in (Path.cwd(), *here.parents):
        if (root / "examples" / "chat_coordinators" / "app.py").is_file():
            if str(root) not in sys.path:
                sys.path.insert(0, str(root))
            return importlib.import_module("examples.chat_coordinators.app")
    raise TurnoutError("turnout demo runs from a clone of the turnout repository (examples/ not found)")


def _users(count: int, rng: random.Random) -> list[tuple[str, str, list[str]]]:
    plans = [plan for plan, _ in PLANS]
    weights = [weight for _, weight in PLANS]
    users = []
    for index in range(count):
        plan = rng.choices(plans, weights)[0]
        messages = [rng.choice(MESSAGES) for _ in range(rng.choice((1, 1, 2, 3)))]
        users.append((f"user-{index:05d}", plan, messages))
    return users


async def _drive(
    app: Any, users: list[tuple[str, str, list[str]]], progress: Any
) -> Counter[tuple[str, str]]:
    import httpx

    served: Counter[tuple[str, str]] = Counter()
    queue: asyncio.Queue[tuple[str, str, str]] = asyncio.Queue()
    for user, plan, messages in users:
        for message in messages:
            queue.put_nowait((user, plan, message))
    task = progress.add_task("chatting", total=queue.qsize())
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo", timeout=30) as client:

        async def worker() -> None:
            while not queue.empty():
                user, plan, message = queue.get_nowait()
                headers = {"X-User-Id": user, "X-Plan": plan, "X-Session-Id": f"s-{user}"}
                response = await client.post("/chat", json={"message": message}, headers=headers)
                label = response.json().get("variant", "?") if response.status_code == 200 else "failed"
                served[(plan, label)] += 1
                progress.advance(task)

        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return served


class _LogCollector:
    """A structlog processor keeping the demo's log events, to summarise after the progress bar.

    The fake LLM fails on purpose: printed as they happen, those failures would read as
    problems of the demo and break up the progress display.
    """

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, logger: Any, method: str, event: Any) -> Any:
        import structlog

        self.events.append(dict(event))
        raise structlog.DropEvent


def run_demo(*, users: int = 3000, seed: int = 7, serve: bool = False, port: int = 8000) -> int:
    """Drive `users` synthetic users through the example app; print the dashboard and where files are.

    With `serve`, then keep serving the example app and its web dashboard on 127.0.0.1:`port`.
    """
    import structlog
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console()
    started = time.perf_counter()
    logs = _LogCollector()
    # The demo is the application here: it decides where turnout's log lines go.
    structlog.configure(
        processors=[structlog.processors.add_log_level, logs], cache_logger_on_first_use=False
    )
    example = _example_module()
    console.print("[bold]turnout demo[/]: the chat-coordinator example (legacy, workflow, langgraph engines)")
    with console.status("loading the config and the intent model (trained from shipped data on first run)…"):
        turnout = example.create_turnout(seed=seed)
    app = example.create_app(turnout)
    rng = random.Random(seed)
    population = _users(users, rng)

    async def main() -> Counter[tuple[str, str]]:
        await turnout.start()
        try:
            columns = (
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=console) as progress:
                return await _drive(app, population, progress)
        finally:
            await turnout.stop()  # final metrics snapshot, events flushed

    served = asyncio.run(main())
    _print_failures(console, turnout.failures.snapshot(), logs.events)
    _print_split(console, served)
    from turnout.cli.dashboard import dashboard_main

    metrics = turnout.config.telemetry.jsonl_path
    dashboard_main(metrics, None, False, console=console, telemetry=turnout.config.telemetry)
    _print_report(console, turnout.config)
    _print_shadows(console, turnout)
    sink = turnout.config.events.sink
    if sink.startswith("sqlite:///"):
        sink = str(Path(sink.removeprefix("sqlite:///")).resolve())
    console.print(f"\nFinished in {time.perf_counter() - started:.1f}s. Files:")
    console.print("  metrics (one JSON line per snapshot):", soft_wrap=True)
    console.print(f"    {Path(metrics).resolve()}", soft_wrap=True)
    console.print("  events (table analytics_events: exposures and session.* events):", soft_wrap=True)
    console.print(f"    {sink}", soft_wrap=True)
    turnout_cmd, python = _commands()
    console.print("Try next:")
    for command in (
        f"{turnout_cmd} dashboard {metrics}",
        f"{turnout_cmd} events summary",
        f"{turnout_cmd} shadow report coordinator {metrics}",
        f"{turnout_cmd} validate examples/chat_coordinators/turnout.toml",
        f"{python} -m uvicorn examples.chat_coordinators.app:app",
    ):
        console.print(f"  {command}", soft_wrap=True, highlight=False)
    console.print("  (the app answers POST /chat and GET /metrics)")
    if serve:
        return _serve(console, example, seed, port)
    return 0


def _serve(console: Any, example: Any, seed: int, port: int) -> int:
    """Serve the example app with the dashboard at /admin/ui (and the admin API) until Ctrl-C."""
    import uvicorn

    from turnout.admin.ui import ui_app

    turnout = example.create_turnout(seed=seed)  # the same files: the dashboard shows the run above
    app = example.create_app(turnout)
    # Loopback clients only, without a token: this is a demo on the user's own machine.
    app.mount("/admin/ui", ui_app(turnout, insecure_local_only=True))
    admin_app = getattr(importlib.import_module("turnout.admin"), "admin_app", None)
    if admin_app is not None:
        app.mount("/admin", admin_app(turnout, insecure_local_only=True, env={}))
    console.print(f"\nDashboard: http://127.0.0.1:{port}/admin/ui/  (Ctrl-C to stop)", soft_wrap=True)
    console.print(f"The app: POST http://127.0.0.1:{port}/chat", soft_wrap=True, highlight=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    return 0


def _commands() -> tuple[str, str]:
    """How to call `turnout` and Python here: plain names if they are on PATH, else their paths."""
    import os
    import shutil

    def shown(path: str, name: str) -> str:
        if shutil.which(name) == path:
            return name
        relative = os.path.relpath(path)
        return relative if not relative.startswith("..") else path

    script = shutil.which(sys.argv[0]) or sys.argv[0]
    return shown(os.path.abspath(script), "turnout"), shown(sys.executable, "python")


def _print_failures(console: Any, failures: dict[str, dict[str, int]], events: list[dict[str, Any]]) -> None:
    """The failures the simulation provoked, counted, and any other warning logged meanwhile."""
    rows = [
        (component, kind, n) for component, kinds in sorted(failures.items()) for kind, n in kinds.items()
    ]
    simulated = [row for row in rows if row[0].startswith("engine.")]
    for title, found in (
        ("Simulated failures (the fake LLM fails on purpose), by engine:", simulated),
        ("Other failures:", [row for row in rows if row not in simulated]),
    ):
        if found:
            console.print(title)
            width = max(len(component) for component, _, _ in found)
            for component, kind, n in found:
                console.print(f"  {component:<{width}}  {kind:<20} {n:>6,}", highlight=False)
    others = [
        event
        for event in events
        if event.get("event") != "turnout.failure" and event.get("level") in ("warning", "error", "critical")
    ]
    for event in others:
        details = ", ".join(f"{k}={v}" for k, v in event.items() if k not in ("event", "level"))
        console.print(f"{event['level']}: {event['event']} {details}", soft_wrap=True, highlight=False)


def _print_split(console: Any, served: Counter[tuple[str, str]]) -> None:
    from rich.table import Table

    console.print("Requests by plan and variant", style="bold")
    table = Table()
    variants = sorted({variant for _, variant in served} - {"failed"})
    if served[("free", "failed")] + served[("premium", "failed")] + served[("enterprise", "failed")]:
        variants.append("failed")
    table.add_column("plan")
    for variant in variants:
        table.add_column(variant, justify="right")
    for plan, _ in PLANS:
        total = sum(served[(plan, v)] for v in variants) or 1
        table.add_row(plan, *(f"{served[(plan, v)]:,} ({served[(plan, v)] / total:.0%})" for v in variants))
    console.print(table)
    premium = sum(served[("premium", v)] for v in variants)
    by_intent = served[("premium", "langgraph")]
    share = f"{by_intent:,} of {premium:,} premium requests ({by_intent / (premium or 1):.0%})"
    console.print("How they were routed (examples/chat_coordinators/turnout.toml):")
    console.print("  enterprise plan -> langgraph (rule enterprise)")
    console.print("  premium, intent human_agent or complaint -> langgraph (intent rule):")
    console.print(f"    {share}")
    console.print("  everyone else -> workflow-canary: 90% legacy, 10% workflow, sticky per user")
    if "failed" in variants:
        console.print("  failed: no engine could answer, fallbacks included; the client got a 503")


def _print_report(console: Any, config: Any) -> None:
    """The canary's experiment report: metrics against control and the verdict."""
    try:
        from turnout.analysis import report
        from turnout.analysis.render import render_text

        text = render_text(report("workflow-canary", config=config), width=console.width)
    except Exception as exc:  # the demo's traffic already ran; say why the report is missing
        console.print(f"\n(no experiment report: {type(exc).__name__}: {exc})", markup=False)
        return
    console.print("\n[bold]turnout report workflow-canary[/]")
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def _print_shadows(console: Any, turnout: Any) -> None:
    """Per intent, how the shadow engines agreed with the served ones during this run."""
    from turnout.errors import MissingExtraError

    try:
        _shadow_tables(console, turnout)
    except MissingExtraError as exc:  # the traffic already ran; say why the tables are missing
        console.print(f"\n(no shadow table: {exc})", markup=False)


def _shadow_tables(console: Any, turnout: Any) -> None:
    from rich import box
    from rich.table import Table

    from turnout.shadow_report import live_report

    for flag, shadows in turnout.telemetry.live()["shadows"].items():
        report = live_report(flag, shadows)
        for total in report.totals():
            console.print(
                f"\nShadow run: {total.shadow} beside {total.served} (flag {flag}), never served",
                style="bold",
            )
            # Narrow enough for 80 columns: failures and skipped samples go below the table.
            table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
            table.add_column("intent", no_wrap=True)
            for name in ("n", "match\n(95% CI)", "served\nms", "shadow\nms", "shadow-served ms\n(95% CI)"):
                table.add_column(name, justify="right", no_wrap=True)
            rows = [r for r in report.rows if (r.served, r.shadow) == (total.served, total.shadow)]
            for row in [*rows, total]:
                table.add_row(*_shadow_cells(row), style="bold" if row is total else None)
            console.print(table)
            console.print(
                f"  {total.failed:,} shadow calls failed or timed out; "
                f"{total.skipped:,} samples skipped for room."
            )
            console.print(f"  The worst mismatches: turnout shadow report {flag}", highlight=False)


def _shadow_cells(row: Any) -> tuple[str, ...]:
    ci, diff, diff_ci = row.match_ci, row.latency_diff_ms, row.latency_diff_ci
    match = "-" if ci is None else f"{row.match_rate:.0%} ({ci[0] * 100:.0f}-{ci[1] * 100:.0f})"
    latency = "-" if diff is None else f"{diff:+.0f}"
    if diff_ci is not None:
        latency += f" ({diff_ci[0]:+.0f}..{diff_ci[1]:+.0f})"
    served = "-" if row.served_ms is None else f"{row.served_ms:.0f}"
    shadow = "-" if row.shadow_ms is None else f"{row.shadow_ms:.0f}"
    return row.intent, f"{row.compared:,}", match, served, shadow, latency
