"""What turnout's telemetry adds to a request, against opentelemetry-instrumentation-asgi, in one run.

Side by side, through the raw ASGI loop of bench_asgi.py (`_common.time_apps`), with the
OpenTelemetry SDK configured: a `TracerProvider` whose `BatchSpanProcessor` hands spans to
an exporter that drops them, so span creation, recording and batching are measured but
no export is.

  (a) a bare Starlette JSON route;
  (b) TurnoutMiddleware + `@experiment` + `await engine()` on a Turnout given the provider:
      the decision, a `turnout.engine` span, and the engine and variant metrics (always on);
  (c) opentelemetry-instrumentation-asgi's `OpenTelemetryMiddleware` alone around (a), same
      provider, default settings (a server span plus one span per `send`);
  (d) (c) around (b): turnout's spans are children of the server span, and the flag
      evaluation is an event on it.

Extra lines, for the explanation: (b) on a Turnout with no SDK (no span is made); (c)
with `exclude_spans=["receive", "send"]` (the server span only); and (c) with an SDK
`MeterProvider` as well, so that its HTTP server metrics are recorded (in (c) they are
no-ops: no meter provider is configured, which is the lower bound for otel-asgi). The report ends with
the cost of recording one metric observation (bench_metrics.py's measurement) and the
sketch's quantile error on heavy-tailed latencies (bench_metrics.py has the full table).

    .venv/bin/python bench/bench_telemetry.py              # 100k requests per app, 7 passes
    .venv/bin/python bench/bench_telemetry.py --quick      # 10k requests, 3 passes
    .venv/bin/python bench/bench_telemetry.py --profile    # cProfile of (b0) and (b): top functions
"""

from __future__ import annotations

import asyncio
import cProfile
import logging
import math
import pstats
import random
import sys
from collections import Counter
from collections.abc import Sequence
from typing import Any

import _common
import bench_metrics
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from turnout import BoundEngine, Turnout, experiment
from turnout.asgi import TurnoutMiddleware

TARGET = 1 / 5
"""Turnout's added cost may be at most this fraction of opentelemetry-instrumentation-asgi's."""


class DroppingExporter(SpanExporter):
    """Counts the spans it is handed and drops them; while `inspecting`, it keeps them."""

    def __init__(self) -> None:
        self.exported = 0
        self.inspecting = False
        self.kept: list[ReadableSpan] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.exported += len(spans)
        if self.inspecting:
            self.kept.extend(spans)
        return SpanExportResult.SUCCESS


class DropCounter(logging.Handler):
    """Counts the BatchSpanProcessor's "queue full, dropping" warnings (it must stay 0)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "dropping" in record.getMessage().lower():
            self.dropped += 1


async def bare(request: Request) -> JSONResponse:
    """The baseline: a plain JSON endpoint."""
    return JSONResponse({"variant": "legacy"})


@experiment("coordinator")
async def served(request: Request, engine: BoundEngine) -> JSONResponse:
    """The chosen engine run (a trivial async engine that answers with its own name)."""
    return JSONResponse({"variant": await engine("hello")})


def turnout_app(router: Turnout) -> Starlette:
    """(b) without the OpenTelemetry middleware."""
    return Starlette(
        routes=[Route("/chat", served)], middleware=[Middleware(TurnoutMiddleware, turnout=router)]
    )


def apps(provider: TracerProvider, meters: MeterProvider) -> dict[str, _common.Contender]:
    """The contenders by key; "a" is the baseline."""
    bare_app = Starlette(routes=[Route("/chat", bare)])
    with_sdk = turnout_app(_common.asgi_turnout(tracer_provider=provider))
    return {
        "a": ("(a) bare Starlette route", "JSONResponse({'variant': 'legacy'})", bare_app),
        "b0": (
            "(b0) turnout, no OTel SDK",
            "middleware + @experiment + engine; no span made",
            turnout_app(_common.asgi_turnout()),
        ),
        "b": ("(b) turnout + OTel SDK", "(b0) + turnout.engine span", with_sdk),
        "c": (
            "(c) otel-asgi",
            "OpenTelemetryMiddleware(a): server span + 2 send spans",
            OpenTelemetryMiddleware(bare_app, tracer_provider=provider),
        ),
        "c1": (
            "(c1) otel-asgi, server span only",
            'the same, exclude_spans=["receive", "send"]',
            OpenTelemetryMiddleware(bare_app, tracer_provider=provider, exclude_spans=["receive", "send"]),
        ),
        "c2": (
            "(c2) otel-asgi + SDK metrics",
            "(c) with a MeterProvider too: its HTTP metrics recorded",
            OpenTelemetryMiddleware(bare_app, tracer_provider=provider, meter_provider=meters),
        ),
        "d": (
            "(d) otel-asgi + turnout",
            "OpenTelemetryMiddleware(b)",
            OpenTelemetryMiddleware(with_sdk, tracer_provider=provider),
        ),
    }


async def inspect_spans(
    contenders: dict[str, _common.Contender],
    provider: TracerProvider,
    exporter: DroppingExporter,
    people: Sequence[_common.User],
) -> list[tuple[str, str, str]]:
    """Serve a few requests through (b), (c) and (d) and describe the spans each produced."""
    requests = _common.http_scopes(people[:100])
    rows = []
    for key in ("b", "c", "d"):
        name, _, app = contenders[key]
        provider.force_flush()  # the spans of earlier requests must not be counted here
        exporter.kept.clear()
        exporter.inspecting = True
        await _common.serve_all(name, app, requests, people[:100])
        provider.force_flush()
        exporter.inspecting = False
        spans = exporter.kept
        by_id = {span.context.span_id: span for span in spans if span.context is not None}
        names = Counter(span.name for span in spans)
        per_request = ", ".join(f"{n} × {count / len(requests):g}" for n, count in sorted(names.items()))
        parents: Counter[str] = Counter()
        events: Counter[str] = Counter()
        for span in spans:
            if span.name == "turnout.engine":
                parent = by_id.get(span.parent.span_id) if span.parent is not None else None
                parents[parent.name if parent is not None else "(root)"] += 1
            events.update(event.name for event in span.events)
        links = "; ".join(f"turnout.engine parent: {p} × {n}" for p, n in parents.items()) or "—"
        if events:
            links += "; events: " + ", ".join(f"{e} × {n}" for e, n in sorted(events.items()))
        rows.append((name, per_request, links))
    return rows


def observation_cost() -> list[tuple[str, str]]:
    """bench_metrics.py's recording measurement, on 100k lognormal latencies."""
    rng = random.Random(20260129)
    latencies = [rng.lognormvariate(math.log(40.0), 1.2) for _ in range(100_000)]
    return [(label, f"{ns:.0f}") for label, ns in bench_metrics.bench_record(latencies)]


def quantile_error(samples: int) -> list[tuple[str, str, str, str, str]]:
    """The sketch against exact quantiles, on `samples` lognormal and Pareto latencies."""
    rng = random.Random(20260129)
    rows = []
    for name, values in (
        ("lognormal(ln 40, 1.2)", [rng.lognormvariate(math.log(40.0), 1.2) for _ in range(samples)]),
        ("pareto(1.3) × 5 ms", [5.0 * rng.paretovariate(1.3) for _ in range(samples)]),
    ):
        for dist, label, exact, estimate, error in bench_metrics.accuracy(name, values):
            rows.append((dist, label, f"{exact:.3f}", f"{estimate:.3f}", f"{error:.3%}"))
    return rows


async def profile(app: _common.ASGIApp, people: Sequence[_common.User]) -> None:
    """cProfile over the requests through `app`; the top functions by own time to stdout."""
    requests = _common.http_scopes(people)
    profiler = cProfile.Profile()
    with _common.PausedGC():
        profiler.enable()
        for scope in requests:
            await app(dict(scope), _common.receive, _common.discard)
        profiler.disable()
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("tottime").print_stats(25)


async def run(args: Any, provider: TracerProvider, exporter: DroppingExporter, drops: DropCounter) -> None:
    """Check every app, time them interleaved, print the tables."""
    people = _common.users(args.ids)
    contenders = apps(provider, MeterProvider(metric_readers=[InMemoryMetricReader()]))
    if args.profile:
        for key in ("b0", "b"):
            name, _, app = contenders[key]
            await _common.serve_all(name, app, _common.http_scopes(people), people)
            print(f"\n## cProfile of {name}, {len(people):,} requests\n")
            await profile(app, people)
        return

    rows = await _common.check_apps(list(contenders.values()), people)
    print("\nVariants in the responses, % legacy / workflow / langgraph (bare routes say legacy):\n")
    print(_common.table(("app", "premium+enterprise", "free+pro", "all"), rows))
    print("\nSpans per request (100 requests, exported to memory for this check only):\n")
    print(
        _common.table(
            ("app", "spans per request", "links and events"),
            await inspect_spans(contenders, provider, exporter, people),
        )
    )

    timed = await _common.time_apps(list(contenders.values()), people, args.reps)
    results = dict(zip(contenders, timed, strict=True))
    provider.force_flush()
    bare_app = results["a"]
    print(f"\nPer request: median of {args.reps} passes over {args.ids:,} requests, the fastest pass,")
    print(f"p10–p90 of {_common.BATCH:,}-request batches; overhead over the bare route, from the")
    print("medians / from the fastest passes:\n")
    print(
        _common.table(
            _common.OVERHEAD_HEADERS,
            _common.overhead_rows(list(results.values()), bare_app),
            right=(1, 2, 3, 4, 5),
        )
    )

    def added(key: str, base: str = "a") -> tuple[float, float]:
        return (
            results[key].median_us - results[base].median_us,
            results[key].best_us - results[base].best_us,
        )

    ours, otel, lean, metered = added("b"), added("c"), added("c1"), added("c2")
    on_top = added("d", "c")
    ratio = ours[0] / otel[0], ours[1] / otel[1]
    verdict = "meets" if max(ratio) <= TARGET else "misses"
    print(
        f"\nturnout adds {ours[0]:.2f} µs (medians; {ours[1]:.2f} from the fastest passes), "
        f"otel-asgi {otel[0]:.2f} µs ({otel[1]:.2f}): turnout-added / otel-asgi-added = "
        f"{ratio[0]:.3f} ({ratio[1]:.3f}), 1/{1 / ratio[0]:.1f}; the target is ≤ 1/5, which this {verdict}."
    )
    _common.save_ratio(args.json, "telemetry", ratio[0], target=TARGET, higher_is_better=False)
    print(
        f"Against otel-asgi with its server span only (+{lean[0]:.2f} µs): {ours[0] / lean[0]:.3f}; "
        f"with SDK metrics too (+{metered[0]:.2f} µs): {ours[0] / metered[0]:.3f}. "
        f"turnout on top of otel-asgi, (d) − (c): +{on_top[0]:.2f} µs ({on_top[1]:+.2f}). "
        f"The OTel SDK span in turnout, (b) − (b0): {added('b', 'b0')[0]:+.2f} µs."
    )
    print(
        f"Spans exported (and dropped by the exporter): {exporter.exported:,}; "
        f"spans the BatchSpanProcessor dropped for a full queue: {drops.dropped}."
    )

    print("\nRecording one metric observation (bench_metrics.py; median of 300 batches of 1,000):\n")
    print(_common.table(("operation", "ns/call"), observation_cost(), right=(1,)))
    samples = 100_000 if args.quick else 1_000_000
    print(f"\nQuantile sketch vs exact quantiles, {samples:,} samples each (bench_metrics.py):\n")
    errors = quantile_error(samples)
    print(
        _common.table(("distribution", "q", "exact ms", "sketch ms", "rel. error"), errors, right=(2, 3, 4))
    )
    worst = max(float(row[4].rstrip("%")) for row in errors)
    print(f"worst relative error {worst:.3f}% (target < 1%)")


def main() -> None:
    """Parse the arguments, set the SDK up, run the benchmark in one event loop."""
    args = _common.parse_args(
        __doc__.splitlines()[0],
        lambda parser: parser.add_argument(
            "--profile", action="store_true", help="cProfile (b0) and (b) instead of timing"
        ),
    )
    guard = _common.NetworkGuard()
    guard.install()
    exporter = DroppingExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    drops = DropCounter()
    logging.getLogger("opentelemetry").addHandler(drops)
    print(f"# turnout's telemetry vs otel-asgi: {args.ids:,} requests, {args.reps} passes\n")
    print(_common.machine())
    print(
        _common.versions(("turnout", "starlette", "opentelemetry-sdk", "opentelemetry-instrumentation-asgi"))
    )
    try:
        asyncio.run(run(args, provider, exporter, drops))
    finally:
        provider.shutdown()
    print(f"{guard.report()}; {_common.load()} at the end")


if __name__ == "__main__":
    main()
