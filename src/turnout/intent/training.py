"""Training an intent model: labelled rows in, a fastText model and its JSON card out."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Literal

from turnout.errors import TurnoutError
from turnout.intent.classifier import (
    FastTextClassifier,
    card_path,
    file_sha256,
    import_fasttext,
    zeroed_allocations,
)
from turnout.intent.evaluation import (
    Evaluation,
    Example,
    evaluate,
    read_examples,
    rows_to_examples,
    split_stratified,
)
from turnout.intent.normalize import normalize

Progress = Callable[[str], None]
Loss = Literal["softmax", "hs", "ova"]


@dataclass(frozen=True, slots=True)
class TrainSettings:
    """fastText settings; the defaults suit short messages (intents, not documents)."""

    epochs: int = 50
    lr: float = 0.5
    word_ngrams: int = 2
    minn: int = 3
    maxn: int = 5
    dim: int = 50
    bucket: int = 200_000
    loss: Loss = "softmax"
    quantize: bool = False
    cutoff: int = 50_000
    seed: int = 0
    threads: int = 1
    holdout: float = 0.1
    refit: bool = True


DEFAULTS = TrainSettings()


@dataclass(frozen=True, slots=True)
class ModelCard:
    """What a model is and how well it did, written next to it as `<model>.card.json`."""

    model: str
    labels: list[str]
    label_counts: dict[str, int]
    rows: int
    skipped_rows: int
    data_sha256: str
    settings: dict[str, Any]
    evaluation: dict[str, Any] | None
    trained_on: str
    quantized: bool
    model_bytes: int
    model_sha256: str
    created: str
    fasttext_version: str

    @classmethod
    def read(cls, model: str | Path) -> ModelCard:
        """The card of `model` (raises `FileNotFoundError` if it has none)."""
        return cls(**json.loads(card_path(model).read_text(encoding="utf-8")))

    def write(self, model: str | Path) -> Path:
        """Write this card next to `model`; returns its path."""
        path = card_path(model)
        _replace_atomically(path, lambda tmp: tmp.write_text(json.dumps(asdict(self), indent=2) + "\n"))
        return path


def train(
    data: str | Path | Iterable[tuple[str, str]],
    output: str | Path,
    *,
    epochs: int = DEFAULTS.epochs,
    lr: float = DEFAULTS.lr,
    word_ngrams: int = DEFAULTS.word_ngrams,
    minn: int = DEFAULTS.minn,
    maxn: int = DEFAULTS.maxn,
    dim: int = DEFAULTS.dim,
    bucket: int = DEFAULTS.bucket,
    loss: Loss = DEFAULTS.loss,
    quantize: bool = DEFAULTS.quantize,
    cutoff: int = DEFAULTS.cutoff,
    seed: int = DEFAULTS.seed,
    threads: int = DEFAULTS.threads,
    holdout: float = DEFAULTS.holdout,
    refit: bool = DEFAULTS.refit,
    autotune_validation: str | Path | None = None,
    autotune_duration: int = 300,
    progress: Progress | None = None,
) -> ModelCard:
    """Train a model from CSV / fastText data (or `(text, label)` rows), save it and its card.

    With `holdout` > 0 a stratified share of the rows is kept out to measure the card's
    accuracy; with `refit` (the default) the saved model is then retrained on all rows.
    With `autotune_validation`, fastText searches the settings for `autotune_duration`
    seconds and the card measures that validation file instead.
    """
    settings = TrainSettings(
        epochs=epochs,
        lr=lr,
        word_ngrams=word_ngrams,
        minn=minn,
        maxn=maxn,
        dim=dim,
        bucket=bucket,
        loss=loss,
        quantize=quantize,
        cutoff=cutoff,
        seed=seed,
        threads=threads,
        holdout=holdout,
        refit=refit,
    )
    if not 0.0 <= holdout < 1.0:
        raise ValueError(f"holdout must be in [0, 1), got {holdout!r}")
    say = progress or _quiet
    if isinstance(data, str | Path):
        say(f"reading {data}")
        examples, digest = read_examples(data), file_sha256(Path(data))
    else:
        examples = rows_to_examples(data)
        digest = hashlib.sha256("".join(f"{e.text}\t{e.label}\n" for e in examples).encode()).hexdigest()
    usable = [Example(words, e.label) for e in examples if (words := normalize(e.text))]
    counts = dict(sorted(Counter(e.label for e in usable).items()))
    if len(counts) < 2:
        raise TurnoutError(f"training needs at least two labels with usable text, found {sorted(counts)}")
    say(f"{len(usable):,} rows, {len(counts)} labels ({len(examples) - len(usable)} without usable text)")
    runner = _Runner(settings, verbose=2 if progress else 0, say=say)
    out = Path(output)
    scores: Evaluation | None
    with tempfile.TemporaryDirectory(prefix="turnout-intent-") as tmp:
        if autotune_validation is not None:
            validation = read_examples(autotune_validation)
            model = runner.autotune(usable, validation, Path(tmp), autotune_duration)
            scores = evaluate(FastTextClassifier(model, min_confidence=0.0), validation)
            trained_on = "all rows"
        else:
            model, scores, trained_on = runner.fit_and_measure(usable, Path(tmp))
        out.parent.mkdir(parents=True, exist_ok=True)
        _replace_atomically(out, lambda path: model.save_model(str(path)))
    source = f"autotune validation file {autotune_validation}" if autotune_validation else "held-out split"
    card = ModelCard(
        model=out.name,
        labels=list(counts),
        label_counts=counts,
        rows=len(usable),
        skipped_rows=len(examples) - len(usable),
        data_sha256=digest,
        settings=_actual_settings(model, settings, autotuned=autotune_validation is not None),
        evaluation=None if scores is None else {"source": source, **scores.summary()},
        trained_on=trained_on,
        quantized=bool(model.f.isQuant()),
        model_bytes=out.stat().st_size,
        model_sha256=file_sha256(out),
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        fasttext_version=_fasttext_version(),
    )
    say(f"wrote {out} ({card.model_bytes / 1e6:.2f} MB) and {card.write(out).name}")
    return card


class _Runner:
    def __init__(self, settings: TrainSettings, *, verbose: int, say: Progress) -> None:
        self.settings, self.verbose, self.say = settings, verbose, say
        self.fasttext = import_fasttext()

    def fit_and_measure(self, examples: Sequence[Example], work: Path) -> tuple[Any, Evaluation | None, str]:
        """(model, held-out scores, what it was trained on) as the settings ask."""
        s = self.settings
        if s.holdout == 0:
            return self.fit(examples, work), None, "all rows"
        kept, held = split_stratified(examples, s.holdout, s.seed)
        self.say(f"holding out {len(held):,} rows ({s.holdout:.0%}, stratified) to measure accuracy")
        model = self.fit(kept, work)
        scores = evaluate(FastTextClassifier(model, min_confidence=0.0), held)
        self.say(f"held-out accuracy {scores.accuracy:.4f}, macro-F1 {scores.macro_f1:.4f}")
        if not s.refit:
            return model, scores, f"{1 - s.holdout:.0%} of rows (the rest held out)"
        self.say("retraining on all rows")
        return self.fit(examples, work), scores, "all rows"

    def fit(self, examples: Sequence[Example], work: Path) -> Any:
        s = self.settings
        path = self._training_file(examples, work)
        self.say(f"training: {s.epochs} epochs, lr {s.lr}, word n-grams {s.word_ngrams}, dim {s.dim}")
        with zeroed_allocations():
            model = self.fasttext.train_supervised(
                input=str(path),
                epoch=s.epochs,
                lr=s.lr,
                wordNgrams=s.word_ngrams,
                minn=s.minn,
                maxn=s.maxn,
                dim=s.dim,
                bucket=s.bucket,
                loss=s.loss,
                minCount=1,
                thread=s.threads,
                seed=s.seed,
                verbose=self.verbose,
            )
            if s.quantize:
                # Rows that no training text reaches only cost size and quantization time
                # (k-means runs over every kept row), so never keep more than can be used.
                cutoff = min(s.cutoff, feature_count(examples, s.minn, s.maxn, s.word_ngrams))
                self.say(f"quantizing (keeping the {cutoff:,} strongest rows, retraining)")
                model.quantize(input=str(path), retrain=True, qnorm=True, cutoff=cutoff, thread=s.threads)
        return model

    def autotune(
        self, examples: Sequence[Example], validation: Sequence[Example], work: Path, duration: int
    ) -> Any:
        path = self._training_file(examples, work)
        valid = _write_fasttext([Example(normalize(e.text), e.label) for e in validation], work / "valid.txt")
        self.say(f"autotuning for {duration} s against {len(validation):,} validation rows")
        with zeroed_allocations():
            return self.fasttext.train_supervised(
                input=str(path),
                autotuneValidationFile=str(valid),
                autotuneDuration=duration,
                autotuneModelSize="5M" if self.settings.quantize else "",
                thread=self.settings.threads,
                seed=self.settings.seed,
                verbose=self.verbose,
            )

    def _training_file(self, examples: Sequence[Example], work: Path) -> Path:
        # fastText reads the file in order and does not shuffle: rows grouped by label (as
        # most datasets come) would make SGD drift from one label to the next.
        rows = list(examples)
        random.Random(self.settings.seed).shuffle(rows)
        return _write_fasttext(rows, work / "train.txt")


def feature_count(examples: Iterable[Example], minn: int, maxn: int, word_ngrams: int) -> int:
    """How many input rows the examples can use at most: words, character n-grams, word n-grams."""
    words: set[str] = set()
    phrases: set[tuple[str, ...]] = set()
    for example in examples:
        tokens = [*example.text.split(), "</s>"]
        words.update(tokens)
        for n in range(2, word_ngrams + 1):
            phrases.update(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))
    grams: set[str] = set()
    if minn > 0:
        for word in words:
            wrapped = f"<{word}>"
            for n in range(minn, maxn + 1):
                grams.update(wrapped[i : i + n] for i in range(len(wrapped) - n + 1))
    return len(words) + len(grams) + len(phrases)


BUILTIN = "builtin"
"""The name that stands for the shipped data (`turnout intent train builtin`) or its model."""


@contextlib.contextmanager
def builtin_data() -> Iterator[Path]:
    """The path of the customer-service data shipped in the package, for the `with` block."""
    source = resources.files("turnout.intent") / "data" / "customer_service.csv"
    with resources.as_file(source) as data:
        yield Path(data)


def cache_dir() -> Path:
    """Where the built-in model is trained to once: `$TURNOUT_CACHE_DIR`, else the user cache."""
    explicit = os.environ.get("TURNOUT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "turnout"


_BUILTIN_BUCKET = 20_000  # 550 short messages need few n-gram buckets: a 4 MB model in 0.3 s


def default_model(cache_dir: Path | None = None) -> Path:
    """A model trained from the shipped customer-service data, cached by data hash and settings.

    Trained once into `cache_dir` (default: `cache_dir()`) in well under a second, so an app
    can train it when it starts; its card's accuracy is measured on a held-out 10% of the
    data that this model never saw.
    """
    with builtin_data() as data:
        settings = f"{DEFAULTS} bucket={_BUILTIN_BUCKET}"
        key = hashlib.sha256(f"{file_sha256(data)} {settings}".encode()).hexdigest()[:12]
        folder = Path(cache_dir if cache_dir is not None else _default_cache())
        target = folder / f"customer_service-{key}.bin"
        if not target.is_file():
            # One training, not two: the shipped model is the one its card measured.
            train(data, target, bucket=_BUILTIN_BUCKET, quantize=False, refit=False)
    return target


_default_cache = cache_dir  # `default_model`'s parameter shadows the function's name


def _write_fasttext(examples: Iterable[Example], path: Path) -> Path:
    with path.open("w", encoding="utf-8") as out:
        out.writelines(f"__label__{e.label} {e.text}\n" for e in examples)
    return path


def _actual_settings(model: Any, settings: TrainSettings, *, autotuned: bool) -> dict[str, Any]:
    args = model.f.getArgs()
    found = {
        "epochs": args.epoch,
        "lr": args.lr,
        "word_ngrams": args.wordNgrams,
        "minn": args.minn,
        "maxn": args.maxn,
        "dim": args.dim,
        "bucket": args.bucket,
        "loss": args.loss.name,
    }
    return {**asdict(settings), **found, "autotuned": autotuned}


def _quiet(message: str) -> None:
    pass


def _fasttext_version() -> str:
    try:
        return version("fasttext-numpy2")
    except PackageNotFoundError:
        return "unknown"


def _replace_atomically(path: Path, write: Callable[[Path], object]) -> None:
    # A process watching the model (or loading it right now) never sees half a file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
