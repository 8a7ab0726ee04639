"""`turnout intent train|eval`: train a model from labelled data, measure one."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from turnout.errors import TurnoutError
from turnout.intent.evaluation import Evaluation
from turnout.intent.training import DEFAULTS, ModelCard


def add_intent_commands(subparsers: Any) -> None:
    """Add `train` and `eval` to `subparsers` (those of the `turnout intent` command)."""
    train = subparsers.add_parser(
        "train",
        help="train a fastText intent model from a CSV (text,label) or fastText file",
        description="Train an intent model; writes the model and <model>.card.json next to it.",
    )
    train.add_argument(
        "data",
        type=Path,
        help="CSV with text,label (or text,category) columns, or __label__ lines; "
        "`builtin` for the customer-service data shipped with turnout",
    )
    train.add_argument("--output", "-o", type=Path, required=True, help="model file (.ftz is quantized)")
    train.add_argument(
        "--epochs", type=int, default=DEFAULTS.epochs, help="passes over the data (%(default)s)"
    )
    train.add_argument("--lr", type=float, default=DEFAULTS.lr, help="learning rate (%(default)s)")
    train.add_argument(
        "--word-ngrams", type=int, default=DEFAULTS.word_ngrams, help="longest word n-gram (%(default)s)"
    )
    train.add_argument(
        "--minn", type=int, default=DEFAULTS.minn, help="shortest character subword (0: none) (%(default)s)"
    )
    train.add_argument(
        "--maxn", type=int, default=DEFAULTS.maxn, help="longest character subword (%(default)s)"
    )
    train.add_argument("--dim", type=int, default=DEFAULTS.dim, help="vector size (%(default)s)")
    train.add_argument(
        "--bucket", type=int, default=DEFAULTS.bucket, help="hash buckets for n-grams (%(default)s)"
    )
    train.add_argument(
        "--loss", choices=("softmax", "hs", "ova"), default=DEFAULTS.loss, help="loss function (%(default)s)"
    )
    train.add_argument(
        "--quantize",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="quantize with retraining (default: when the output ends in .ftz)",
    )
    train.add_argument(
        "--cutoff", type=int, default=DEFAULTS.cutoff, help="rows a quantized model keeps (%(default)s)"
    )
    train.add_argument(
        "--holdout", type=float, default=DEFAULTS.holdout, help="share held out for the card (%(default)s)"
    )
    train.add_argument(
        "--no-refit",
        dest="refit",
        action="store_false",
        help="ship the model trained without the held-out rows",
    )
    train.add_argument(
        "--seed", type=int, default=DEFAULTS.seed, help="for the split, the shuffle, fastText (%(default)s)"
    )
    train.add_argument(
        "--threads", type=int, default=DEFAULTS.threads, help="more is faster, not reproducible (%(default)s)"
    )
    train.add_argument(
        "--autotune-validation", type=Path, default=None, metavar="FILE", help="search settings against FILE"
    )
    train.add_argument(
        "--autotune-duration", type=int, default=300, metavar="S", help="seconds of search (%(default)s)"
    )
    train.add_argument("--quiet", "-q", action="store_true", help="no progress display")
    train.set_defaults(intent_command="train")

    evaluate = subparsers.add_parser(
        "eval",
        help="measure a model on labelled data",
        description="Accuracy, macro-F1, per-label scores, confused pairs and a confidence sweep.",
    )
    evaluate.add_argument("model", type=Path, help="a .bin or .ftz model")
    evaluate.add_argument(
        "data", type=Path, help="CSV (text,label) or fastText file; `builtin` for the shipped data"
    )
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of tables")
    evaluate.add_argument("--top", type=int, default=10, help="confused label pairs to show")
    evaluate.set_defaults(intent_command="eval")


def run_intent_command(args: argparse.Namespace) -> int:
    """Run the `train` or `eval` command parsed by `add_intent_commands`; the exit status."""
    try:
        if args.intent_command == "train":
            return _train(args)
        return _eval(args)
    except (TurnoutError, ValueError, RuntimeError, OSError) as exc:
        print(f"turnout intent {args.intent_command}: {exc}", file=sys.stderr)
        return 1


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m turnout.cli.intent train|eval ...` (the same as `turnout intent ...`)."""
    parser = argparse.ArgumentParser(prog="turnout intent", description=__doc__)
    add_intent_commands(parser.add_subparsers(required=True))
    return run_intent_command(parser.parse_args(argv))


def _train(args: argparse.Namespace) -> int:
    def progress(message: str) -> None:
        print(f"[intent] {message}", file=sys.stderr, flush=True)

    quantize = args.output.suffix == ".ftz" if args.quantize is None else args.quantize
    with _data(args.data) as data:
        card = _train_from(data, args, quantize, progress)
    print(f"{args.output}: {len(card.labels)} labels, {card.rows:,} rows, {card.model_bytes / 1e6:.2f} MB")
    if (scores := card.evaluation) is not None:
        print(f"accuracy {scores['accuracy']:.4f}, macro-F1 {scores['macro_f1']:.4f} ({scores['source']})")
    else:
        print("no held-out measurement (--holdout 0)")
    return 0


def _train_from(
    data: Path, args: argparse.Namespace, quantize: bool, progress: Callable[[str], None]
) -> ModelCard:
    from turnout.intent.training import train

    return train(
        data,
        args.output,
        epochs=args.epochs,
        lr=args.lr,
        word_ngrams=args.word_ngrams,
        minn=args.minn,
        maxn=args.maxn,
        dim=args.dim,
        bucket=args.bucket,
        loss=args.loss,
        quantize=quantize,
        cutoff=args.cutoff,
        seed=args.seed,
        threads=args.threads,
        holdout=args.holdout,
        refit=args.refit,
        autotune_validation=args.autotune_validation,
        autotune_duration=args.autotune_duration,
        progress=None if args.quiet else progress,
    )


def _eval(args: argparse.Namespace) -> int:
    from turnout.intent.classifier import FastTextClassifier
    from turnout.intent.evaluation import evaluate, read_examples

    classifier = FastTextClassifier.load(args.model, min_confidence=0.0)
    with _data(args.data) as data:
        if _trained_on(args.model, data):
            print(
                f"warning: {args.data} is the data {args.model} was trained on (its card has the same "
                "SHA-256): these figures overstate accuracy on new messages; evaluate on held-out "
                "data, or read the held-out figures on the model card",
                file=sys.stderr,
            )
        result = evaluate(classifier, read_examples(data), top=args.top)
    if args.json:
        print(json.dumps({"model": str(args.model), "data": str(args.data), **result.to_dict()}, indent=2))
    else:
        print(format_report(result))
    return 0


@contextlib.contextmanager
def _data(path: Path) -> Iterator[Path]:
    """`path`, or the shipped data when it is `builtin`."""
    from turnout.intent.training import BUILTIN, builtin_data

    if str(path) == BUILTIN and not path.exists():
        with builtin_data() as data:
            yield data
    else:
        yield path


def _trained_on(model: Path, data: Path) -> bool:
    """Whether the model's card says it was trained on exactly this file."""
    from turnout.intent.classifier import file_sha256
    from turnout.intent.training import ModelCard

    try:
        return ModelCard.read(model).data_sha256 == file_sha256(data)
    except (OSError, TypeError, ValueError):
        return False


def format_report(result: Evaluation) -> str:
    """The evaluation as plain-text tables."""
    width = max([5, *(len(s.label) for s in result.labels)])
    lines = [
        f"rows {result.rows:,}   accuracy {result.accuracy:.4f}   macro-F1 {result.macro_f1:.4f}",
        "",
        f"{'label':<{width}}  precision  recall      f1  support",
    ]
    lines += [
        f"{s.label:<{width}}  {s.precision:9.3f}  {s.recall:6.3f}  {s.f1:6.3f}  {s.support:7,}"
        for s in result.labels
    ]
    if result.confused:
        lines += ["", "most confused (true -> predicted)"]
        lines += [f"  {n:5,}  {true} -> {guess}" for true, guess, n in result.confused]
    lines += ["", "confidence sweep (below the threshold -> unknown)", "threshold  kept    unknown  accuracy"]
    for point in result.sweep:
        accuracy = "-" if point.accuracy is None else f"{point.accuracy:.4f}"
        lines.append(f"{point.threshold:9.1f}  {point.kept:6.1%}  {point.unknown:7.1%}  {accuracy}")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
