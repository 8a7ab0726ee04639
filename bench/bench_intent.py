"""Intent classification through turnout against raw fastText `predict`, in one run.

Single messages: raw fastText (`model.predict(text)`, the Python API a user would call,
on the raw message) against `FastTextClassifier.predict` (normalisation, confidence floor,
`Intent`) and `Turnout.classify` (what a request pays: the router's guard and failure
handling too). Batches: `predict_batch` against fastText's multi-line `predict(list)`.
Messages: the shipped customer-service data (English and Chinese) and, when present,
the Banking77 test set. Models: the quantized demo model (`default_model`), a `.bin`
trained from the same data with the default settings, and any `--model` given
(for instance the Banking77 model `bench_banking77.py` writes).

    .venv/bin/python bench/bench_intent.py                      # ~1 min
    .venv/bin/python bench/bench_intent.py --quick
    .venv/bin/python bench/bench_intent.py --model /tmp/turnout-bench/banking77.ftz
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import _common

from turnout import Turnout
from turnout.intent import FastTextClassifier, default_model, read_examples, train

HERE = Path(__file__).resolve().parent
CACHE = Path(tempfile.gettempdir()) / "turnout-bench"
SHIPPED = HERE.parent / "src" / "turnout" / "intent" / "data" / "customer_service.csv"
BANKING77 = HERE.parents[1] / "shared" / "data" / "banking77" / "test.csv"


def messages() -> list[str]:
    """The shipped messages, plus Banking77's test messages when the data is there."""
    texts = [e.text for e in read_examples(SHIPPED)]
    if BANKING77.is_file():
        texts += [e.text for e in read_examples(BANKING77)]
    return texts


def models(extra: Sequence[Path]) -> list[Path]:
    """The demo .ftz, a .bin of the same data (both cached in $TMPDIR/turnout-bench), and `extra`."""
    CACHE.mkdir(exist_ok=True)
    demo_bin = CACHE / "customer_service.bin"
    train(SHIPPED, demo_bin, holdout=0.0)  # half a second; never stale when the defaults change
    return [default_model(CACHE), demo_bin, *extra]


def time_single(
    calls: Sequence[tuple[Callable[[str], Any], Sequence[str]]], reps: int
) -> list[_common.Result]:
    """Per-call time of each `(call, messages)`, interleaved pass by pass (so load hits all alike)."""
    results = [_common.Result("", "") for _ in calls]
    for _ in range(reps):
        for (call, texts), result in zip(calls, results, strict=True):
            batches = _common.chunks(texts)

            def run(batch: Sequence[str], call: Callable[[str], Any] = call) -> None:
                for text in batch:
                    call(text)

            result.add_pass(_common.time_batches(run, batches), [len(b) for b in batches])
    return results


def rate(call: Callable[[list[str]], Any], texts: list[str], reps: int) -> float:
    """Messages per second of the fastest of `reps` batch calls over all `texts`."""
    best = float("inf")
    with _common.PausedGC():
        for _ in range(reps):
            start = time.perf_counter()
            call(texts)
            best = min(best, time.perf_counter() - start)
    return len(texts) / best


def bench(path: Path, texts: list[str], reps: int) -> tuple[list[object], list[object]]:
    """One model: the single-message row and the batch row."""
    import fasttext

    classifier = FastTextClassifier.load(path)
    raw = fasttext.load_model(str(path))
    router = Turnout({"intent": {"enabled": True, "model": str(path)}}, classifier=classifier, env={})
    lines = [" ".join(t.split()) for t in texts]  # raw fastText rejects newlines inside a message
    if [i.label for i in classifier.predict_batch(texts)] != [classifier.predict(t).label for t in texts]:
        raise SystemExit(f"{path}: predict_batch and predict disagree")

    raw_single, ours, routed = time_single(
        [(raw.predict, lines), (classifier.predict, texts), (router.classify, texts)], reps
    )
    size = f"{path.stat().st_size / 1e6:.1f} MB"
    single = [
        f"{path.name} ({size})",
        f"{raw_single.median_us:.2f} / {raw_single.best_us:.2f}",
        f"{ours.median_us:.2f} / {ours.best_us:.2f}",
        f"{routed.median_us:.2f} / {routed.best_us:.2f}",
        f"{ours.best_us / raw_single.best_us:.2f}× / {routed.best_us / raw_single.best_us:.2f}×",
    ]
    raw_rate = rate(raw.predict, lines, reps)
    batch_rate = rate(classifier.predict_batch, texts, reps)
    batch = [f"{path.name}", f"{raw_rate:,.0f}", f"{batch_rate:,.0f}", f"{batch_rate / raw_rate:.2f}"]
    return single, batch


def main() -> None:
    """Time every model on every message; print the two tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, action="append", default=[], help="also time this model")
    parser.add_argument("--quick", action="store_true", help="2 passes instead of 7")
    args = parser.parse_args()
    reps = 2 if args.quick else 7
    guard = _common.NetworkGuard()
    guard.install()
    texts = messages()
    print(f"# intent classification: turnout vs raw fastText, {len(texts):,} messages, {reps} passes\n")
    print(_common.machine())
    print(_common.versions(("turnout", "fasttext-numpy2", "numpy")))
    singles, batches = [], []
    for path in models(args.model):
        single, batch = bench(path, texts, reps)
        singles.append(single)
        batches.append(batch)
        print(f"  {path.name} done", flush=True)
    print("\nOne message per call, µs: median of the passes / the fastest pass; the ratios (classifier,")
    print("Turnout.classify) over raw fastText are from the fastest passes:\n")
    headers = ("model", "raw fastText", "classifier", "Turnout.classify", "ratio vs raw")
    print(_common.table(headers, singles, right=(1, 2, 3, 4)))
    print("\nBatches, messages/s (all messages in one call, fastest of the passes):\n")
    headers = ("model", "raw fastText predict(list)", "predict_batch", "ratio")
    print(_common.table(headers, batches, right=(1, 2, 3)))
    print(f"\n{guard.report()}; {_common.load()} at the end")


if __name__ == "__main__":
    main()
