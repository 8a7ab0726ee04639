"""Shadow series: windows add up to the cumulative figures; bounded series, error names, samples."""

from __future__ import annotations

import random

from turnout.telemetry.shadows import MAX_ERROR_TYPES, OTHER, ShadowStats

KEY = ("coordinator", "legacy", "graph", "refund")


def test_windows_add_up_to_the_cumulative_figures() -> None:
    stats = ShadowStats()
    rng = random.Random(3)
    windows = []
    for _ in range(5):
        for _ in range(rng.randint(0, 40)):
            roll = rng.random()
            if roll < 0.1:
                stats.offered(KEY, 5, skipped=True)
                continue
            stats.offered(KEY, 5, skipped=False)
            if roll < 0.2:
                stats.failed(KEY, 5, None if roll < 0.15 else "LLMError")
            else:
                score = rng.random()
                sample = {"score": score}
                stats.compared(
                    KEY,
                    5,
                    match=score > 0.5,
                    score=score,
                    served_ms=rng.uniform(1, 50),
                    shadow_ms=rng.uniform(1, 90),
                    sample=None if score > 0.5 else sample,
                )
        windows.append(stats.snapshot(reset_window=True)["coordinator"]["legacy->graph"]["intents"]["refund"])
    last = windows[-1]
    for name in ("offered", "skipped", "compared", "matches", "timeouts"):
        assert last[name] == sum(w["window"][name] for w in windows)
    assert last["errors"].get("LLMError", 0) == sum(w["window"]["errors"].get("LLMError", 0) for w in windows)
    assert sum(last["score"]["histogram"]) == last["compared"]
    total_ms = sum(w["window"]["served_latency_ms"]["sum"] for w in windows)
    assert abs(last["served_latency_ms"]["sum"] - total_ms) < 0.01 * len(windows)
    # Each line carries its own interval's worst mismatches, at most 5, lowest score first.
    for window in windows:
        scores = [m["score"] for m in window["window"]["mismatches"]]
        assert scores == sorted(scores) and len(scores) <= 5
    # Live figures keep the worst of the whole life.
    everything = sorted(m["score"] for w in windows for m in w["window"]["mismatches"])
    live = stats.snapshot(reset_window=False)["coordinator"]["legacy->graph"]["intents"]["refund"]
    assert [m["score"] for m in live["mismatches"]] == everything[:5]


def test_series_and_error_names_are_bounded() -> None:
    stats = ShadowStats(max_series=3)
    for index in range(10):
        stats.offered(("f", "a", "b", f"intent-{index}"), 0, skipped=True)
    intents = stats.snapshot()["f"]["a->b"]["intents"]
    assert len(intents) == 4  # three series, then everything else under `other`
    assert intents[OTHER]["skipped"] == 7
    for index in range(MAX_ERROR_TYPES + 10):
        stats.failed(("f", "a", "b", "intent-0"), 0, f"Error{index}")
    errors = stats.snapshot()["f"]["a->b"]["intents"]["intent-0"]["errors"]
    assert len(errors) == MAX_ERROR_TYPES + 1
    assert errors[OTHER] == 10


def test_no_samples_are_kept_when_none_are_asked_for() -> None:
    stats = ShadowStats()
    stats.compared(KEY, 0, match=False, score=0.0, served_ms=1.0, shadow_ms=2.0, sample={"score": 0.0})
    figures = stats.snapshot(reset_window=False)["coordinator"]["legacy->graph"]["intents"]["refund"]
    assert figures["mismatches"] == [] and figures["compared"] == 1
