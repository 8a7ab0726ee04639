"""An experiment's per-variant numbers in SQL: SQLite and PostgreSQL agree with plain Python.

Exposures (first per user and variant) are joined to the events each user tracked after
it; the per-variant counts, sums and sums of squares are checked against an oracle that
computes the same from the very same events.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from turnout.analysis import Means, Proportions
from turnout.analysis.data import ExperimentData, Metric
from turnout.config import MetricConfig
from turnout.events import Event, EventSink, SQLiteSink

START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
INTENTS = ("refund", "order_status", "complaint")


def experiment_events() -> list[Event]:
    rng = random.Random(12)
    events: list[Event] = []
    for n in range(240):
        user = f"u{n}"
        variant = "workflow" if n % 3 == 0 else "legacy"
        seen = START + timedelta(hours=n % 48, minutes=n)
        intent = INTENTS[n % 3 if n % 5 else 0]
        props = {"experiment": "wf-canary", "flag": "coordinator", "variant": variant, "rule": "canary"}
        if n % 7:
            props["intent"] = intent
        else:
            props["attributes"] = {"intent": intent, "plan": "pro"}
        # A second, later exposure of the same user and variant: only the first one counts.
        for offset in (0, 3600):
            events.append(Event("$exposure", user, dict(props), seen + timedelta(seconds=offset), "exposure"))
        # An event before the exposure never counts.
        events.append(Event("session.resolved", user, {"success": True}, seen - timedelta(minutes=5)))
        if rng.random() < (0.6 if variant == "workflow" else 0.45):
            events.append(Event("session.resolved", user, {"success": True}, seen + timedelta(minutes=10)))
        if rng.random() < 0.2:
            events.append(Event("session.resolved", user, {"success": False}, seen + timedelta(days=3)))
        for _ in range(rng.randrange(0, 4)):
            cost = round(rng.uniform(0.001, 0.02) * (2 if variant == "workflow" else 1), 5)
            events.append(
                Event("$record", user, {"cost_usd": cost, "variant": variant}, seen + timedelta(seconds=30))
            )
    events.append(Event("$record", "u1", {"cost_usd": 50.0}, START + timedelta(days=4)))  # an outlier
    other = {"experiment": "other", "variant": "legacy"}
    events.append(Event("$exposure", "u1", other, START, "exposure"))  # another experiment's
    return events


EVENTS = experiment_events()


# -- the oracle ---------------------------------------------------------------------------


def first_exposures(by: str | None = None) -> dict[tuple[str, str], tuple[datetime, str | None]]:
    first: dict[tuple[str, str], tuple[datetime, str | None]] = {}
    for e in EVENTS:
        if e.name != "$exposure" or e.properties.get("experiment") != "wf-canary":
            continue
        segment = None
        if by is not None:
            segment = e.properties.get(by, e.properties.get("attributes", {}).get(by))
        key = (e.distinct_id, e.properties["variant"])
        if key not in first or e.timestamp < first[key][0]:
            first[key] = (e.timestamp, segment)
    return first


def per_user_values(metric: Metric, by: str | None = None) -> dict[tuple[str, str | None], list[float]]:
    values: dict[tuple[str, str | None], list[float]] = defaultdict(list)
    for (user, variant), (seen, segment) in first_exposures(by).items():
        later = [
            e
            for e in EVENTS
            if e.distinct_id == user
            and e.name == metric.event
            and e.timestamp >= seen
            and all(e.properties.get(k) == v for k, v in metric.where.items())
            and (metric.window_s is None or e.timestamp <= seen + timedelta(seconds=metric.window_s))
        ]
        if metric.type == "proportion":
            values[variant, segment].append(1.0 if later else 0.0)
        else:
            numbers = [
                float(e.properties[metric.value or metric.name])
                for e in later
                if metric.value in e.properties
            ]
            if metric.per_user == "sum":
                values[variant, segment].append(sum(numbers))
            elif numbers:
                values[variant, segment].append(sum(numbers) / len(numbers))
    return values


def oracle(metric: Metric, by: str | None = None) -> dict[tuple[str, str | None], Any]:
    values = per_user_values(metric, by)
    if metric.capping is not None:
        everyone = sorted(v for vs in values.values() for v in vs)
        cap = everyone[int(metric.capping * (len(everyone) - 1))]
        values = {k: [min(v, cap) for v in vs] for k, vs in values.items()}
    if metric.type == "proportion":
        return {k: Proportions(len(v), int(sum(v))) for k, v in values.items()}
    return {k: Means.from_samples(v) for k, v in values.items()}


def same(found: dict[Any, Any], expected: dict[Any, Any]) -> None:
    assert found.keys() == expected.keys()
    for key, summary in expected.items():
        got = found[key]
        assert type(got) is type(summary) and got.n == summary.n
        if isinstance(summary, Means):
            assert got.sum == pytest.approx(summary.sum, rel=1e-9, abs=1e-9)
            assert got.sum_squares == pytest.approx(summary.sum_squares, rel=1e-9, abs=1e-9)
        else:
            assert got == summary


# -- the backends -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sink(request: pytest.FixtureRequest, tmp_path: Path) -> EventSink:
    sink: EventSink
    if request.param == "sqlite":
        sink = SQLiteSink(tmp_path / "events.db")
    else:
        from turnout.events.postgres import PostgresSink

        sink = PostgresSink(request.getfixturevalue("pg_url"))
    asyncio.run(write(sink, EVENTS))
    return sink


def read(sink: EventSink, *metrics: Metric, by: str | None = None) -> ExperimentData:
    return ExperimentData(sink, "wf-canary", metrics=metrics, by=by)


def summaries(sink: EventSink, metric: Metric, by: str | None = None) -> dict[Any, Any]:
    with read(sink, metric, by=by) as data:
        return data.summaries(metric.name, segmented=by is not None)


async def write(sink: EventSink, events: list[Event]) -> None:
    await sink.write(events)
    await sink.close()


def metric(name: str, **config: Any) -> Metric:
    return Metric.from_config(name, MetricConfig(**config))


def test_users_are_counted_once_per_variant(sink: EventSink) -> None:
    first = first_exposures()
    expected = {(v, None): sum(1 for _, variant in first if variant == v) for v in ("legacy", "workflow")}
    by_intent: dict[tuple[str, str | None], int] = defaultdict(int)
    for (_, variant), (_, segment) in first_exposures("intent").items():
        by_intent[variant, segment] += 1
    with read(sink, by="intent") as data:
        assert data.users() == expected
        assert data.users(segmented=True) == dict(by_intent)


def test_proportion_metric_counts_events_after_the_first_exposure(sink: EventSink) -> None:
    resolved = metric("resolved", type="proportion", event="session.resolved", where={"success": True})
    same(summaries(sink, resolved), oracle(resolved))
    any_resolved = metric("any", type="proportion", event="session.resolved")
    same(summaries(sink, any_resolved), oracle(any_resolved))


def test_proportion_metric_within_a_window(sink: EventSink) -> None:
    soon = metric("soon", type="proportion", event="session.resolved", window="1d")
    assert soon.window_s == 86400
    same(summaries(sink, soon), oracle(soon))


def test_mean_metrics_sum_or_average_per_user(sink: EventSink) -> None:
    cost = metric("cost_usd", type="mean")
    assert cost.event == "$record" and cost.value == "cost_usd"
    same(summaries(sink, cost), oracle(cost))
    average = metric("cost_usd", type="mean", per_user="mean")
    same(summaries(sink, average), oracle(average))


def test_capping_winsorises_at_the_percentile(sink: EventSink) -> None:
    capped = metric("cost_usd", type="mean", capping=0.9)
    found, uncapped = summaries(sink, capped), summaries(sink, metric("cost_usd", type="mean"))
    same(found, oracle(capped))
    assert found["legacy", None].sum < uncapped["legacy", None].sum  # the 50.0 outlier is cut


def test_every_metric_in_one_pass(sink: EventSink) -> None:
    many = [
        metric("resolved", type="proportion", event="session.resolved", where={"success": True}),
        metric("soon", type="proportion", event="session.resolved", window="1d"),
        metric("cost_usd", type="mean", capping=0.9),
        metric("average", type="mean", event="$record", value="cost_usd", per_user="mean"),
    ]
    with read(sink, *many, by="intent") as data:
        for m in many:
            same(data.summaries(m.name), oracle(m))
            same(data.summaries(m.name, segmented=True), oracle(m, by="intent"))


def test_segments_by_intent(sink: EventSink) -> None:
    resolved = metric("resolved", type="proportion", event="session.resolved", where={"success": True})
    same(summaries(sink, resolved, by="intent"), oracle(resolved, by="intent"))
    same(summaries(sink, resolved, by="plan"), oracle(resolved, by="plan"))


def test_exposures_per_day(sink: EventSink) -> None:
    days: dict[tuple[str, str], int] = defaultdict(int)
    for (_, variant), (seen, _) in first_exposures().items():
        days[seen.strftime("%Y-%m-%d"), variant] += 1
    with read(sink) as data:
        assert data.exposures_by_day() == [(d, v, n) for (d, v), n in sorted(days.items())]


def test_an_empty_database_reads_as_no_data(tmp_path: Path) -> None:
    import sqlite3

    sqlite3.connect(tmp_path / "empty.db").close()
    cost = metric("cost_usd", type="mean")
    with ExperimentData(tmp_path / "empty.db", "wf-canary", metrics=[cost]) as empty:
        assert empty.users() == {}
        assert empty.summaries("cost_usd") == {}
