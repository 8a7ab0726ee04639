"""Labelled messages (CSV or fastText files) and how well a classifier labels them."""

from __future__ import annotations

import csv
import io
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NamedTuple

from turnout.errors import TurnoutError
from turnout.types import Classifier, Intent

LABEL_COLUMNS = ("label", "category", "intent")
THRESHOLDS = tuple(round(0.1 * i, 1) for i in range(10))
_FASTTEXT_LABEL = "__label__"


class Example(NamedTuple):
    """One labelled message."""

    text: str
    label: str


class IntentDataError(TurnoutError, ValueError):
    """A training or evaluation file cannot be read; names the file and the line."""

    def __init__(self, source: str | Path, line: int | None, message: str) -> None:
        self.source, self.line = str(source), line
        super().__init__(f"{source}{f' line {line}' if line else ''}: {message}")


def read_examples(path: str | Path) -> list[Example]:
    """Rows of a CSV with a `text` and a `label` (or `category`) column, or of fastText lines."""
    try:
        content = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise IntentDataError(path, None, "no such file") from None
    except UnicodeDecodeError as exc:
        raise IntentDataError(path, None, f"is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if not content.strip():
        raise IntentDataError(
            path, None, "is empty: expected a `text,label` CSV or fastText `__label__` lines"
        )
    if content.lstrip().startswith(_FASTTEXT_LABEL):
        return _read_fasttext(path, content)
    return _read_csv(path, content)


def _read_csv(path: str | Path, content: str) -> list[Example]:
    reader = csv.reader(io.StringIO(content, newline=""))
    try:
        header = [name.strip().lower() for name in next(reader)]
        if "text" not in header:
            raise IntentDataError(path, reader.line_num, f"the header has no 'text' column: {header}")
        label_name = next((name for name in LABEL_COLUMNS if name in header), None)
        if label_name is None:
            wanted = " or ".join(repr(n) for n in LABEL_COLUMNS)
            raise IntentDataError(
                path, reader.line_num, f"the header has no label column ({wanted}): {header}"
            )
        text_at, label_at = header.index("text"), header.index(label_name)
        examples = []
        for row in reader:
            if not row:
                continue
            if len(row) <= max(text_at, label_at):
                missing = "label" if len(row) <= label_at else "text"
                raise IntentDataError(path, reader.line_num, f"the row has no {missing} ({len(row)} fields)")
            examples.append(Example(row[text_at], _label(path, reader.line_num, row[label_at])))
    except csv.Error as exc:
        raise IntentDataError(path, reader.line_num, f"bad CSV: {exc}") from None
    if not examples:
        raise IntentDataError(path, None, "has a header but no rows")
    return examples


def _read_fasttext(path: str | Path, content: str) -> list[Example]:
    examples = []
    for number, line in enumerate(content.splitlines(), 1):
        words = line.split()
        if not words:
            continue
        labels = [w for w in words if w.startswith(_FASTTEXT_LABEL)]
        if len(labels) != 1 or not words[0].startswith(_FASTTEXT_LABEL):
            problem = (
                "no label" if not labels else "more than one label" if len(labels) > 1 else "a late label"
            )
            raise IntentDataError(path, number, f"{problem}: each line must start with one __label__<name>")
        text = " ".join(words[1:])
        examples.append(Example(text, _label(path, number, labels[0].removeprefix(_FASTTEXT_LABEL))))
    return examples


def rows_to_examples(rows: Iterable[tuple[str, str]]) -> list[Example]:
    """`(text, label)` pairs checked as a file's rows are ("row N" stands for the line)."""
    return [
        Example(str(text), _label("rows", number, str(label))) for number, (text, label) in enumerate(rows, 1)
    ]


def split_stratified(
    examples: Sequence[Example], share: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """(kept, held out): about `share` of each label held out, chosen by a seeded shuffle."""
    by_label: dict[str, list[Example]] = defaultdict(list)
    for example in examples:
        by_label[example.label].append(example)
    rng = random.Random(seed)
    kept: list[Example] = []
    held: list[Example] = []
    for label in sorted(by_label):
        group = by_label[label]
        rng.shuffle(group)
        # Every label with two or more rows is measured; none is held out entirely.
        count = min(len(group) - 1, max(1, round(len(group) * share)))
        held.extend(group[:count])
        kept.extend(group[count:])
    return kept, held


def _label(source: str | Path, line: int, label: str) -> str:
    label = label.strip()
    if not label:
        raise IntentDataError(source, line, "the label is empty")
    if any(c.isspace() for c in label):
        raise IntentDataError(source, line, f"the label {label!r} contains whitespace")
    return label


@dataclass(frozen=True, slots=True)
class LabelScore:
    """Precision, recall and F1 of one label, and how many rows carry it."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True, slots=True)
class SweepPoint:
    """At `threshold`: the share of messages kept (the rest go to `unknown`) and their accuracy."""

    threshold: float
    kept: float
    unknown: float
    accuracy: float | None


@dataclass(frozen=True, slots=True)
class Evaluation:
    """How a classifier did on labelled rows (on its best guess, before any threshold)."""

    rows: int
    accuracy: float
    macro_f1: float
    labels: tuple[LabelScore, ...]
    confused: tuple[tuple[str, str, int], ...]
    sweep: tuple[SweepPoint, ...]

    def summary(self) -> dict[str, Any]:
        """The headline figures."""
        return {"rows": self.rows, "accuracy": round(self.accuracy, 4), "macro_f1": round(self.macro_f1, 4)}

    def to_dict(self) -> dict[str, Any]:
        """Everything, as JSON-ready data."""
        data = asdict(self)
        data["confused"] = [{"true": t, "predicted": p, "count": n} for t, p, n in self.confused]
        return data


def evaluate(
    classifier: Classifier,
    examples: Sequence[Example],
    *,
    thresholds: Sequence[float] = THRESHOLDS,
    top: int = 10,
) -> Evaluation:
    """Score `classifier` on `examples`: accuracy, macro-F1, per label, confusions, threshold sweep."""
    if not examples:
        raise ValueError("evaluation needs at least one labelled row")
    texts = [e.text for e in examples]
    batch = getattr(classifier, "predict_batch", None)
    intents: list[Intent] = batch(texts) if batch is not None else [classifier.predict(t) for t in texts]
    guesses = [i.raw_label if i.raw_label is not None else i.label for i in intents]
    return score([e.label for e in examples], guesses, [i.confidence for i in intents], thresholds, top)


def score(
    gold: Sequence[str],
    guesses: Sequence[str],
    confidences: Sequence[float],
    thresholds: Sequence[float] = THRESHOLDS,
    top: int = 10,
) -> Evaluation:
    """`Evaluation` of best guesses and their confidences against the gold labels."""
    right = [g == p for g, p in zip(gold, guesses, strict=True)]
    gold_counts, guess_counts = Counter(gold), Counter(guesses)
    hits = Counter(g for g, ok in zip(gold, right, strict=True) if ok)
    labels = []
    for label in sorted(gold_counts.keys() | guess_counts.keys()):
        precision = hits[label] / guess_counts[label] if guess_counts[label] else 0.0
        recall = hits[label] / gold_counts[label] if gold_counts[label] else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        labels.append(LabelScore(label, precision, recall, f1, gold_counts[label]))
    confused = Counter((g, p) for g, p, ok in zip(gold, guesses, right, strict=True) if not ok)
    sweep = []
    for threshold in thresholds:
        kept = [ok for ok, c in zip(right, confidences, strict=True) if c >= threshold]
        accuracy = sum(kept) / len(kept) if kept else None
        sweep.append(SweepPoint(threshold, len(kept) / len(gold), 1 - len(kept) / len(gold), accuracy))
    return Evaluation(
        rows=len(gold),
        accuracy=sum(right) / len(gold),
        macro_f1=sum(s.f1 for s in labels) / len(labels),
        labels=tuple(labels),
        confused=tuple((g, p, n) for (g, p), n in confused.most_common(top)),
        sweep=tuple(sweep),
    )
