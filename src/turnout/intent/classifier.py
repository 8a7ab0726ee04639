"""`FastTextClassifier`: a fastText model (.bin or quantized .ftz) as a `Classifier`."""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from turnout.errors import MissingExtraError, TurnoutError
from turnout.intent.normalize import DEFAULT_MAX_CHARS, normalize
from turnout.types import Intent

LABEL_PREFIX = "__label__"
_M_PERTURB = -6  # glibc mallopt(3)


class IntentModelError(TurnoutError):
    """An intent model file is missing, corrupt or not a text classifier."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = str(path)
        super().__init__(f"intent model {self.path}: {message}")


def import_fasttext() -> Any:
    """The `fasttext` module (from the `fasttext-numpy2` distribution), or a clear error."""
    try:
        import fasttext
    except ImportError as exc:
        raise MissingExtraError("intent", "fasttext-numpy2", "intent classification") from exc
    return fasttext


def card_path(model: str | Path) -> Path:
    """Where the JSON card of a model file lives: next to it, `<model>.card.json`."""
    model = Path(model)
    return model.with_name(model.name + ".card.json")


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while chunk := stream.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def load_fasttext_model(path: str | Path) -> Any:
    """Load a fastText model file, turning fastText's failures into `IntentModelError`."""
    fasttext = import_fasttext()
    where = Path(path)
    if not where.is_file():
        raise IntentModelError(where, "no such file" if not where.exists() else "not a file")
    _check_card(where)
    try:
        model = fasttext.load_model(str(where))
    except (ValueError, RuntimeError, MemoryError, OSError) as exc:
        raise IntentModelError(where, f"cannot be loaded ({exc}); is it a fastText .bin or .ftz?") from exc
    args = model.f.getArgs()
    if args.model != fasttext.FastText.model_name.supervised:
        raise IntentModelError(where, "is a word-vector model, not a text classifier")
    # fastText reads matrices without checking for end of file, so a truncated .bin loads
    # "fine" with garbage weights; its dense input matrix alone sets a floor on the size.
    if not model.f.isQuant():
        rows = len(model.f.getVocab("strict")[0]) + args.bucket
        if where.stat().st_size < 4 * args.dim * rows:
            raise IntentModelError(where, "is truncated (smaller than its own weight matrix)")
    return model


def _check_card(path: Path) -> None:
    card = card_path(path)
    if not card.is_file():
        return
    try:
        expected = json.loads(card.read_text(encoding="utf-8"))
        size, sha256 = expected["model_bytes"], expected["model_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # an unreadable card says nothing about the model; fastText still checks the format
    if path.stat().st_size != size or file_sha256(path) != sha256:
        raise IntentModelError(
            path,
            f"does not match its card {card.name} (truncated, corrupted or replaced); "
            "retrain it, or delete the card if the model was replaced on purpose",
        )


@contextlib.contextmanager
def zeroed_allocations() -> Iterator[None]:
    """Make glibc hand out zeroed memory while fastText trains.

    With fewer than 10 threads fastText initialises only part of its input matrix and
    leaves the rest as `malloc` returned it: fresh pages are zeros, recycled heap memory
    is garbage (1e20 weights, "Encountered NaN", models that differ run to run). glibc's
    M_PERTURB fills each allocation with the complement of the given byte (0xFF -> zeros);
    it is switched off again afterwards. Without glibc this does nothing.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):
        yield
        return
    mallopt(_M_PERTURB, 0xFF)
    try:
        yield
    finally:
        mallopt(_M_PERTURB, 0)


class FastTextClassifier:
    """Classifies messages with a fastText supervised model; low confidence means `unknown`."""

    def __init__(
        self,
        model: Any,
        *,
        path: str | Path | None = None,
        min_confidence: float = 0.6,
        unknown_label: str = "unknown",
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> None:
        if not 0.0 <= min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be between 0 and 1, got {min_confidence!r}")
        if max_chars < 1:
            raise ValueError(f"max_chars must be at least 1, got {max_chars!r}")
        self.path = Path(path) if path is not None else None
        self.min_confidence = min_confidence
        self.unknown_label = unknown_label
        self.max_chars = max_chars
        raw_labels: list[str] = model.f.getLabels("strict")[0]
        self.labels = tuple(label.removeprefix(LABEL_PREFIX) for label in raw_labels)
        self._names = dict(zip(raw_labels, self.labels, strict=True))
        self._model = model
        # The low-level binding skips the Python wrapper's per-call checks and its NumPy
        # conversion: our normalised text is one line by construction.
        self._predict = model.f.predict
        self._predict_lines = model.f.multilinePredict
        self._empty = Intent(unknown_label, 0.0)

    @classmethod
    def load(
        cls,
        path: str | Path,
        *,
        min_confidence: float = 0.6,
        unknown_label: str = "unknown",
        max_chars: int = DEFAULT_MAX_CHARS,
    ) -> FastTextClassifier:
        """Load a `.bin` or `.ftz` model; a missing or corrupt file raises `IntentModelError`."""
        model = load_fasttext_model(path)
        return cls(
            model, path=path, min_confidence=min_confidence, unknown_label=unknown_label, max_chars=max_chars
        )

    @property
    def quantized(self) -> bool:
        """Whether the model is a quantized (.ftz) one."""
        return bool(self._model.f.isQuant())

    def predict(self, text: str) -> Intent:
        """The intent of one message; text with nothing to classify is `unknown` at confidence 0."""
        words = normalize(text, self.max_chars)
        if not words:
            return self._empty
        found = self._predict(words + "\n", 1, 0.0, "strict")
        if not found:
            return self._empty
        probability, raw = found[0]
        return self._intent(self._names[raw], probability)

    def predict_batch(self, texts: Iterable[str]) -> list[Intent]:
        """`predict` for many messages, with one call into fastText for all of them."""
        cap, names, intent, empty = self.max_chars, self._names, self._intent, self._empty
        words = [normalize(text, cap) for text in texts]
        lines = [w + "\n" for w in words if w]
        if not lines:
            return [empty] * len(words)
        labels, probabilities = self._predict_lines(lines, 1, 0.0, "strict")
        found = iter(
            [
                intent(names[label[0]], probability.item()) if label else empty
                for label, probability in zip(labels, probabilities, strict=True)
            ]
        )
        return [next(found) if w else empty for w in words]

    def top(self, text: str, k: int = 3) -> list[tuple[str, float]]:
        """The `k` most likely labels of `text` with their probabilities (no threshold applied)."""
        words = normalize(text, self.max_chars)
        found: Sequence[tuple[float, str]] = self._predict(words + "\n", k, 0.0, "strict") if words else []
        return [(self._names[raw], min(p, 1.0)) for p, raw in found]

    def _intent(self, label: str, probability: float) -> Intent:
        # Softmax output can overshoot 1.0 by a rounding error.
        confidence = probability if probability < 1.0 else 1.0
        if confidence < self.min_confidence:
            return Intent(self.unknown_label, confidence, label)
        return Intent(label, confidence, label)
