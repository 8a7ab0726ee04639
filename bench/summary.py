"""The five headline ratios of one `make bench` run, each against its target.

Each script writes its figure with `--json PATH` (`_common.save_ratio`); this prints them
as one table, in this order, and says which were not run:

    .venv/bin/python bench/summary.py DIRECTORY     # the directory holding decide.json, asgi.json …
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import _common

ROWS = (
    ("decide", "`decide()` vs the fastest other SDK (bench_decide)", "{:.1f}× faster", "≥ {:g}×"),
    ("asgi", "middleware + `@experiment` over a bare route (bench_asgi)", "{:+.0%}", "≤ +{:.0%}"),
    ("telemetry", "turnout's added cost / otel-asgi's (bench_telemetry)", "{:.2f}", "≤ {:.2f}"),
    (
        "events",
        "events into SQLite through the tracker / raw executemany (bench_events)",
        "{:.2f}×",
        "≥ {:g}×",
    ),
    ("e2e", "uvicorn + wrk, with turnout / bare, a new user each request (bench_e2e)", "{:.2f}×", "≥ {:g}×"),
)


def main() -> None:
    """Read DIRECTORY/<key>.json for every row and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    args = parser.parse_args()
    table = []
    met = 0
    for key, what, shown, target in ROWS:
        path = args.directory / f"{key}.json"
        if not path.exists():
            table.append((what, "not run", "", ""))
            continue
        result = json.loads(path.read_text(encoding="utf-8"))
        met += bool(result["met"])
        verdict = "met" if result["met"] else "missed"
        table.append((what, shown.format(result["value"]), target.format(result["target"]), verdict))
    print("\n# Summary: the five targets\n")
    print(_common.table(("figure", "this run", "target", ""), table, right=(1, 2)))
    print(f"\n{met} of {len(ROWS)} targets met in this run (shared machines move these figures; compare")
    print("lines of one run, and rerun a missed one alone before reading much into it).")


if __name__ == "__main__":
    main()
