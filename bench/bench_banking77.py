"""Banking77 with the default CLI settings: train on train.csv, evaluate on test.csv.

Runs exactly `turnout intent train train.csv --output banking77.ftz` (the `.ftz` suffix
means quantized; everything else is a default) and `turnout intent eval`, then prints
accuracy, macro-F1, the model size, the held-out figures from the card, the confidence
sweep and the most confused intents. `--seeds 0 1 2` repeats the training with other
seeds to show how much the figures move. The data (77 intents, 10,003 / 3,080 rows,
CC BY 4.0) is read from ../shared/data/banking77; nothing is downloaded.

    .venv/bin/python bench/bench_banking77.py              # ~30 s per seed
    .venv/bin/python bench/bench_banking77.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import tempfile
import time
from pathlib import Path

import _common

from turnout.cli.intent import format_report
from turnout.cli.intent import main as intent_cli
from turnout.intent import FastTextClassifier, ModelCard, evaluate, read_examples

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "banking77"
MODEL = Path(tempfile.gettempdir()) / "turnout-bench" / "banking77.ftz"
ACCURACY_BAR, STRETCH, SIZE_BAR = 0.88, 0.90, 5_000_000


def run(seed: int) -> tuple[float, float, int, float, ModelCard]:
    """Train with the defaults (and `seed`) through the CLI; (accuracy, macro-F1, bytes, s, card)."""
    MODEL.parent.mkdir(exist_ok=True)
    argv = ["train", str(DATA / "train.csv"), "--output", str(MODEL), "--quiet"]
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # its one-line summary; the table says it all
        status = intent_cli([*argv, "--seed", str(seed)] if seed else argv)
    if status != 0:
        raise SystemExit("training failed")
    seconds = time.perf_counter() - started
    result = evaluate(FastTextClassifier.load(MODEL), read_examples(DATA / "test.csv"))
    return result.accuracy, result.macro_f1, MODEL.stat().st_size, seconds, ModelCard.read(MODEL)


def main() -> None:
    """Train, evaluate, print; the last seed's model stays in $TMPDIR/turnout-bench for bench_intent.py."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds to train with (default 0)")
    args = parser.parse_args()
    if not (DATA / "train.csv").is_file():
        raise SystemExit(f"Banking77 not found at {DATA}")
    guard = _common.NetworkGuard()
    guard.install()
    print("# Banking77, default `turnout intent train` settings, quantized (.ftz)\n")
    print(_common.machine())
    print(_common.versions(("turnout", "fasttext-numpy2", "numpy")))
    rows, accuracies = [], []
    card = None
    for seed in args.seeds:
        accuracy, macro_f1, size, seconds, card = run(seed)
        accuracies.append(accuracy)
        held = card.evaluation or {}
        rows.append(
            (
                seed,
                f"{accuracy:.4f}",
                f"{macro_f1:.4f}",
                f"{size / 1e6:.2f} MB",
                f"{held.get('accuracy', float('nan')):.4f}",
                f"{seconds:.0f} s",
            )
        )
        print(f"  seed {seed} done", flush=True)
    if card is None:
        return
    print(f"\nSettings: {', '.join(f'{k}={v}' for k, v in card.settings.items())}\n")
    headers = ("seed", "test accuracy", "test macro-F1", "model", "held-out accuracy (card)", "train time")
    print(_common.table(headers, rows, right=(1, 2, 3, 4, 5)))
    mean, worst = statistics.mean(accuracies), min(accuracies)
    size_ok = MODEL.stat().st_size <= SIZE_BAR
    print(
        f"\naccuracy {mean:.4f} mean, {worst:.4f} worst: "
        f"bar {ACCURACY_BAR} {'met' if worst >= ACCURACY_BAR else 'MISSED'} by every seed, "
        f"stretch {STRETCH} {'met' if mean >= STRETCH else 'not met'} by the mean; "
        f"model ≤ 5 MB {'met' if size_ok else 'MISSED'}"
    )
    print(f"\n## Full report of the last model (seed {args.seeds[-1]})\n")
    print(format_report(evaluate(FastTextClassifier.load(MODEL), read_examples(DATA / "test.csv"))))
    print(f"\n{guard.report()}")


if __name__ == "__main__":
    main()
