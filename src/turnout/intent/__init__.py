"""Message intent as a routing signal: a fastText classifier, its training and evaluation.

Nothing here imports fastText or NumPy until a model is loaded or trained, so
`import turnout` works without the `intent` extra.
"""

from __future__ import annotations

from collections.abc import Iterable

from turnout.config import IntentConfig
from turnout.errors import TurnoutError
from turnout.intent.classifier import FastTextClassifier, IntentModelError
from turnout.intent.evaluation import Evaluation, Example, IntentDataError, evaluate, read_examples
from turnout.intent.normalize import normalize
from turnout.intent.training import (
    BUILTIN,
    ModelCard,
    TrainSettings,
    builtin_data,
    cache_dir,
    default_model,
    train,
)
from turnout.types import Classifier, Intent

BUILTIN_MODEL = BUILTIN

__all__ = [
    "BUILTIN_MODEL",
    "Evaluation",
    "Example",
    "FastTextClassifier",
    "IntentDataError",
    "IntentModelError",
    "ModelCard",
    "TrainSettings",
    "build_classifier",
    "builtin_data",
    "cache_dir",
    "default_model",
    "evaluate",
    "normalize",
    "read_examples",
    "train",
]


def build_classifier(config: IntentConfig, *, block: Iterable[str] = (), autoload: bool = True) -> Classifier:
    """The classifier `config` names: the built-in `fasttext`, or a `turnout.classifiers` plugin.

    A plugin (an entry-point name, or a `package.module:attribute` factory) is called as
    `factory(model=config.model, **config.options)`; `min_confidence` and `unknown_label`
    are applied to what it returns. `block`/`autoload` are the `[plugins]` settings.
    """
    if config.classifier == "fasttext":
        if config.options:
            raise TurnoutError(f"the fasttext classifier takes no options, got {sorted(config.options)}")
        model = config.model or BUILTIN_MODEL
        if model == BUILTIN_MODEL:
            # No model configured: the one trained (once, cached) from the data shipped with turnout.
            model = str(default_model())
        return FastTextClassifier.load(
            model,
            min_confidence=config.min_confidence,
            unknown_label=config.unknown_label,
            max_chars=config.max_chars,
        )
    from turnout.plugins import PluginError, build_plugin

    options = {"model": config.model, **config.options}
    built = build_plugin("turnout.classifiers", config.classifier, options, block=block, autoload=autoload)
    if not isinstance(built, Classifier):
        raise PluginError(
            f"classifier plugin {config.classifier!r} returned {type(built).__name__}, which has no predict()"
        )
    return _Thresholded(built, config.min_confidence, config.unknown_label)


class _Thresholded:
    """A plugin's classifier with the configured confidence floor applied."""

    def __init__(self, inner: Classifier, min_confidence: float, unknown_label: str) -> None:
        self.inner = inner
        self._min = min_confidence
        self._unknown = unknown_label

    def predict(self, text: str) -> Intent:
        intent = self.inner.predict(text)
        if intent.confidence < self._min and intent.label != self._unknown:
            return Intent(self._unknown, intent.confidence, intent.raw_label or intent.label)
        return intent

    def predict_batch(self, texts: list[str]) -> list[Intent]:
        return [self.predict(text) for text in texts]
