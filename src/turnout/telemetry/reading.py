"""Reading metrics.jsonl, tolerant and incremental: what `turnout dashboard` and the web dashboard show.

Without `since`, the newest line of each process is used (its figures are cumulative since that
process started) and the processes are added up; a process that has stopped still counts with its
last figures, so `since` is the way to see only recent traffic. With `since`, the `window` object of
every line in the time range is added up (each window covers one snapshot interval). How figures are
added up, and why merged percentiles are estimates, is told in `turnout.telemetry.figures`.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from turnout.config import TelemetryConfig, parse_duration
from turnout.telemetry.figures import Dashboard, Experiment, Figures, Latency, Reading, merge

_TIMESTAMP_PREFIX = re.compile(rb'^\s*\{\s*"timestamp"\s*:\s*"([^"]{1,64})"')
_LISTED_BAD_LINES = 5


class _Malformed(ValueError):
    pass


class MetricsReader:
    """Reads a metrics.jsonl file; each `read()` parses only the lines appended since the last one.

    `since` is a duration such as "24h" or "90s" (ValueError if it is not one); `now` is the clock.
    """

    def __init__(
        self,
        path: str,
        *,
        since: str | None = None,
        now: Callable[[], datetime] | None = None,
        telemetry: TelemetryConfig | None = None,
    ) -> None:
        self.path, self.since = path, since
        self.since_s = parse_duration(since) if since is not None else None
        self._now = now or (lambda: datetime.now(UTC))
        self._telemetry = telemetry or TelemetryConfig()
        self._identity: tuple[int, int] | None = None
        self._offset = self._line_no = self._malformed = 0
        self._bad_lines: list[int] = []
        self._newest: datetime | None = None
        self._latest: dict[str, tuple[datetime, Reading]] = {}
        self._in_range: list[Reading] = []
        # Merging a day of windows takes a while, and in watch mode most refreshes bring no new line.
        self._changes = 0
        self._merged: tuple[int, dict[str, Figures], dict[str, Experiment]] | None = None

    def read(self, *, final: bool = True) -> Dashboard:
        """Take in new lines; `final=False` leaves an unfinished last line for the next read."""
        cutoff = None if self.since_s is None else self._now() - timedelta(seconds=self.since_s)
        problem = self._consume(cutoff, final)
        if cutoff is not None:
            kept = [reading for reading in self._in_range if reading.timestamp >= cutoff]
            self._changes += len(kept) != len(self._in_range)
            chosen = self._in_range = kept
        else:
            chosen = [reading for _, reading in self._latest.values()]
        if chosen:
            problem = None  # a file rotated away keeps showing its figures until the new one appears
        elif problem is None:
            problem = self._nothing_to_show()
        if self._merged is None or self._merged[0] != self._changes:
            self._merged = (self._changes, self._merge_components(chosen), self._merge_experiments(chosen))
        _, components, experiments = self._merged
        if problem is None and not components and not experiments:
            kind = "per-interval `window` figures" if cutoff else "component or experiment figures"
            problem = f"The {len(chosen):,} snapshots used from {self.path} hold no {kind}."
        processes: dict[str, datetime] = {}
        for reading in chosen:
            processes[reading.process] = max(
                reading.timestamp, processes.get(reading.process, reading.timestamp)
            )
        return Dashboard(
            path=self.path,
            since=self.since,
            components=components,
            experiments=experiments,
            processes=dict(sorted(processes.items())),
            snapshots=len(chosen),
            malformed=self._malformed,
            malformed_lines=tuple(self._bad_lines),
            problem=problem,
            decisions=_added_up(reading.decisions for reading in chosen),
        )

    def history(self) -> list[Reading]:
        """With `since`: the lines of the time range read so far, oldest first (their `window` figures)."""
        return sorted(self._in_range, key=lambda reading: reading.timestamp)

    def _nothing_to_show(self) -> str:
        if self.since is not None and self._newest is not None:
            newest = f"{self._newest:%Y-%m-%d %H:%M:%S %Z}".strip()
            return f"No snapshot in {self.path} from the last {self.since}; the newest is from {newest}."
        if self._malformed:
            count = f"{self._malformed:,} malformed line{'s' if self._malformed != 1 else ''}"
            return f"{self.path} has no readable snapshot ({count} skipped)."
        return f"{self.path} is empty: no metrics snapshot has been written yet."

    def _consume(self, cutoff: datetime | None, final: bool) -> str | None:
        try:
            with open(self.path, "rb") as file:
                stat = os.fstat(file.fileno())
                if (stat.st_dev, stat.st_ino) != self._identity or stat.st_size < self._offset:
                    # First read, or the exporter rotated the file: start the new one from the top;
                    # figures already taken from the old file stay valid.
                    self._identity, self._offset, self._line_no = (stat.st_dev, stat.st_ino), 0, 0
                file.seek(self._offset)
                for raw in file:
                    if not self._take(raw, cutoff, final):
                        break
        except FileNotFoundError:
            return f"No metrics file at {self.path}. Is the jsonl exporter on and is this its jsonl_path?"
        except OSError as exc:
            return f"Cannot read {self.path}: {exc.strerror or exc}."
        return None

    def _take(self, raw: bytes, cutoff: datetime | None, final: bool) -> bool:
        if not raw.strip():
            self._offset += len(raw)
            self._line_no += 1
            return True
        try:
            reading = self._parse(raw, cutoff)
        except _Malformed:
            if not final and not raw.endswith(b"\n"):
                return False  # probably still being written
            reading = None
            self._malformed += 1
            if len(self._bad_lines) < _LISTED_BAD_LINES:
                self._bad_lines.append(self._line_no + 1)
        self._offset += len(raw)
        self._line_no += 1
        if reading is None:
            return True
        self._changes += 1
        if cutoff is not None:
            self._in_range.append(reading)
        elif reading.process not in self._latest or reading.timestamp >= self._latest[reading.process][0]:
            self._latest[reading.process] = (reading.timestamp, reading)
        return True

    def _parse(self, raw: bytes, cutoff: datetime | None) -> Reading | None:
        if cutoff is not None and (prefix := _TIMESTAMP_PREFIX.match(raw)):
            # Old lines are skipped without parsing the JSON, which is most of the cost (so an old
            # line that is malformed after its timestamp goes unnoticed).
            try:
                stamp = _timestamp(prefix.group(1).decode())
            except (_Malformed, UnicodeDecodeError):
                stamp = None
            if stamp is not None and stamp < cutoff:
                self._note(stamp)
                return None
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # bad JSON or UTF-8, a line cut short by a crash
            raise _Malformed(str(exc)) from exc
        if not isinstance(data, dict):
            raise _Malformed("a line must be a JSON object")
        stamp = _timestamp(data.get("timestamp"))
        self._note(stamp)
        if cutoff is not None and stamp < cutoff:
            return None
        window = cutoff is not None
        experiments: dict[str, Experiment] = {}
        for name, value in _mapping(data.get("experiments", {})).items():
            exp = _mapping(value)
            flag = exp.get("flag")
            variants = _series(exp.get("variants", {}), window)
            experiments[name] = Experiment(flag if isinstance(flag, str) else None, variants)
        process = data.get("process", "unknown")
        return Reading(
            stamp,
            process if isinstance(process, str) else str(process),
            _series(data.get("components", {}), window),
            experiments,
            _decisions(data.get("decisions", {}), window),
        )

    def _note(self, stamp: datetime) -> None:
        self._newest = stamp if self._newest is None else max(self._newest, stamp)

    def _merge_components(self, chosen: Sequence[Reading]) -> dict[str, Figures]:
        grouped: dict[str, list[Figures]] = {}
        for reading in chosen:
            for name, figures in reading.components.items():
                grouped.setdefault(name, []).append(figures)
        limits = self._telemetry.components
        default = self._telemetry.thresholds
        return {name: merge(parts, limits.get(name, default)) for name, parts in sorted(grouped.items())}

    def _merge_experiments(self, chosen: Sequence[Reading]) -> dict[str, Experiment]:
        flags: dict[str, str | None] = {}
        grouped: dict[str, dict[str, list[Figures]]] = {}
        for reading in chosen:
            for name, exp in reading.experiments.items():
                flags[name] = flags.get(name) or exp.flag
                for variant, figures in exp.variants.items():
                    grouped.setdefault(name, {}).setdefault(variant, []).append(figures)
        limits = self._telemetry.thresholds
        return {
            name: Experiment(flags[name], {v: merge(parts, limits) for v, parts in variants.items()})
            for name, variants in sorted(grouped.items())
        }


def _series(value: Any, window: bool) -> dict[str, Figures]:
    found: dict[str, Figures] = {}
    for name, entry in _mapping(value).items():
        data = _mapping(entry)
        if window:
            if "window" not in data:
                continue  # written before windows existed: no per-interval figures to add up
            data = _mapping(data["window"])
        found[name] = _figures(data)
    return found


def _added_up(parts: Iterable[Mapping[str, Mapping[str, int]]]) -> dict[str, dict[str, int]]:
    total: dict[str, dict[str, int]] = {}
    for part in parts:
        for flag, reasons in part.items():
            counts = total.setdefault(flag, {})
            for reason, n in reasons.items():
                counts[reason] = counts.get(reason, 0) + n
    return total


def _decisions(value: Any, window: bool) -> dict[str, dict[str, int]]:
    field = "window" if window else "total"
    return {
        str(flag): {
            str(reason): _count(_mapping(counts).get(field, 0))
            for reason, counts in _mapping(reasons).items()
        }
        for flag, reasons in _mapping(value).items()
    }


def _figures(data: Mapping[str, Any]) -> Figures:
    latency = _mapping(data.get("latency_ms", {}))
    status, reason = data.get("status"), data.get("status_reason") or ""
    if not (status is None or isinstance(status, str)) or not isinstance(reason, str):
        raise _Malformed("status and status_reason must be strings")
    rate = _number(data.get("success_rate"))
    if rate is not None and not 0 <= rate <= 1:
        raise _Malformed(f"success_rate {rate} is not between 0 and 1")
    return Figures(
        total_requests=_count(data.get("total_requests", 0)),
        success_rate=rate,
        latency=Latency(*(_number(latency.get(key)) for key in ("mean", "p50", "p95", "p99", "max"))),
        errors={str(kind): _count(n) for kind, n in _mapping(data.get("errors", {})).items()},
        status=status or None,
        status_reason=reason,
        exposures=None if data.get("exposures") is None else _count(data["exposures"]),
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _Malformed(f"expected a JSON object, got {type(value).__name__}")
    return value


def _count(value: Any) -> int:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Malformed(f"expected a count, got {value!r}")
    return value


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Malformed(f"expected a number, got {value!r}")
    try:
        number = float(value)
    except OverflowError as exc:  # an integer too big for a float
        raise _Malformed("number out of range") from exc
    return number if math.isfinite(number) else None


def _timestamp(value: Any) -> datetime:
    if not isinstance(value, str):
        raise _Malformed("missing timestamp")
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError as exc:
        raise _Malformed(f"bad timestamp {value!r}") from exc
    # Hand-made exporters wrote timestamps without a zone; they are UTC.
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp
