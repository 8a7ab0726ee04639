"""Engine success and latency per variant, from the metrics snapshots (logs/metrics.jsonl).

Here the unit is the request, not the user: each snapshot line holds, per experiment
variant, cumulative counts since its process started, the success rate and the latency's
mean and standard deviation. The newest line of every process is taken and the processes
are added up exactly (counts, sums and sums of squares add), as `turnout dashboard` does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.analysis.summaries import Means, Proportions

SUCCESS = "engine.success"
LATENCY = "engine.latency_ms"


@dataclass(frozen=True, slots=True)
class RequestFigures:
    """Per variant: requests and successes, and latency (None where the snapshots carry no `sd`)."""

    success: dict[str, Proportions] = field(default_factory=dict)
    latency: dict[str, Means] = field(default_factory=dict)
    problem: str | None = None


def read_requests(path: str, experiment: str) -> RequestFigures:
    """The figures of `experiment` in the metrics file at `path` (empty, with a `problem`, if none)."""
    newest: dict[str, tuple[str, Mapping[str, Any]]] = {}
    needle = json.dumps(experiment)
    try:
        with open(path, encoding="utf-8", errors="replace") as file:
            for line in file:
                if needle not in line:
                    continue  # most lines are other experiments' or none: skip the JSON parsing
                parsed = _variants(line, experiment)
                if parsed is None:
                    continue
                stamp, process, found = parsed
                if process not in newest or stamp >= newest[process][0]:
                    newest[process] = (stamp, found)
    except OSError as exc:
        return RequestFigures(problem=f"cannot read {path}: {exc.strerror or exc}")
    if not newest:
        return RequestFigures(problem=f"no snapshot in {path} mentions the experiment {experiment!r}")
    success: dict[str, Proportions] = {}
    latency: dict[str, Means] = {}
    missing_sd = False
    for _, per_variant in newest.values():
        for variant, figures in per_variant.items():
            n = _count(figures.get("total_requests"))
            rate = _number(figures.get("success_rate"))
            if n == 0 or rate is None:
                continue
            part = Proportions(n=n, successes=min(n, round(rate * n)))
            success[variant] = success[variant] + part if variant in success else part
            timing = figures.get("latency_ms")
            mean = _number(timing.get("mean")) if isinstance(timing, Mapping) else None
            sd = _number(timing.get("sd")) if isinstance(timing, Mapping) else None
            if mean is None or sd is None:
                missing_sd = True
                continue
            moments = Means(n=n, sum=n * mean, sum_squares=sd * sd * (n - 1) + n * mean * mean)
            latency[variant] = latency[variant] + moments if variant in latency else moments
    problem = "the snapshots carry no latency standard deviation (written by an older turnout)"
    return RequestFigures(success, latency, problem if missing_sd and not latency else None)


def _variants(line: str, experiment: str) -> tuple[str, str, Mapping[str, Any]] | None:
    try:
        data = json.loads(line)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    experiments = data.get("experiments")
    entry = experiments.get(experiment) if isinstance(experiments, dict) else None
    variants = entry.get("variants") if isinstance(entry, dict) else None
    if not isinstance(variants, dict):
        return None
    stamp, process = data.get("timestamp"), data.get("process", "unknown")
    found = {str(k): v for k, v in variants.items() if isinstance(v, Mapping)}
    return str(stamp), str(process), found


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
