"""`FastTextClassifier`: loading, predicting, bad input, bad model files, plugins."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import turnout.intent
from turnout import RoutingContext, Turnout
from turnout.config import IntentConfig
from turnout.errors import MissingExtraError, TurnoutError
from turnout.intent import FastTextClassifier, IntentModelError, build_classifier, train
from turnout.types import Intent

DATA = Path(turnout.intent.__file__).parent / "data" / "customer_service.csv"

UNKNOWN = Intent("unknown", 0.0)


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "intent.bin"
    train(DATA, path, holdout=0.0)
    return path


@pytest.fixture(scope="module")
def classifier(model: Path) -> FastTextClassifier:
    return FastTextClassifier.load(model)


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("I want a refund", "refund"),
        ("我要退款", "refund"),
        ("transfer me to an agent", "human_agent"),
        ("转人工", "human_agent"),
        ("where is my package right now", "tracking"),
        ("thanks, bye", "goodbye"),
    ],
)
def test_predicts_english_and_chinese(classifier: FastTextClassifier, text: str, label: str) -> None:
    intent = classifier.predict(text)
    assert intent.label == label
    assert intent.raw_label == label
    assert 0.6 <= intent.confidence <= 1.0


def test_knows_its_labels(classifier: FastTextClassifier) -> None:
    assert {"greeting", "refund", "human_agent", "goodbye"} <= set(classifier.labels)
    assert not any(label.startswith("__label__") for label in classifier.labels)
    assert not classifier.quantized


def test_mixed_chinese_and_english_is_classified(classifier: FastTextClassifier) -> None:
    intent = classifier.predict("hi 我想refund这个订单")
    assert intent.raw_label in classifier.labels
    assert 0.0 < intent.confidence <= 1.0


@pytest.mark.parametrize("text", ["", "   \t\n", "😀🎉👍", "\ud800", "\udc00\ud800", "?!..."])
def test_nothing_to_classify_is_unknown_with_zero_confidence(
    classifier: FastTextClassifier, text: str
) -> None:
    assert classifier.predict(text) == UNKNOWN


def test_a_megabyte_of_text_is_cut_to_max_chars(classifier: FastTextClassifier) -> None:
    megabyte = "I want a refund " * 65_536
    assert classifier.predict(megabyte) == classifier.predict(megabyte[: classifier.max_chars])
    assert classifier.predict(megabyte).label == "refund"


def test_surrogates_inside_a_message_are_ignored(classifier: FastTextClassifier) -> None:
    assert classifier.predict("I want a \ud800refund") == classifier.predict("I want a refund")


def test_below_min_confidence_is_unknown_but_keeps_the_best_guess(model: Path) -> None:
    text = "refund or cancel? where is the parcel"  # several intents at once: no model is sure
    best = FastTextClassifier.load(model, min_confidence=0.0).predict(text)
    strict = FastTextClassifier.load(model, min_confidence=0.99, unknown_label="other")
    intent = strict.predict(text)
    assert best.label in strict.labels
    assert intent == Intent("other", best.confidence, best.label)
    assert 0.0 < intent.confidence < 0.99
    assert strict.predict("") == Intent("other", 0.0)


def test_predict_batch_matches_predict_in_order(classifier: FastTextClassifier) -> None:
    texts = ["I want a refund", "", "转人工", "😀", "where is my order", "\ud800"]
    batch = classifier.predict_batch(texts)
    assert [i.label for i in batch] == [classifier.predict(t).label for t in texts]
    assert [i.confidence for i in batch] == pytest.approx([classifier.predict(t).confidence for t in texts])
    assert classifier.predict_batch([]) == []
    assert classifier.predict_batch(["", "  "]) == [UNKNOWN, UNKNOWN]


def test_top_lists_the_most_likely_labels(classifier: FastTextClassifier) -> None:
    top = classifier.top("I want a refund", k=3)
    assert top[0][0] == "refund"
    assert len(top) == 3
    assert [p for _, p in top] == sorted((p for _, p in top), reverse=True)
    assert classifier.top("") == []


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_min_confidence_must_be_a_probability(model: Path, value: float) -> None:
    with pytest.raises(ValueError, match="min_confidence"):
        FastTextClassifier.load(model, min_confidence=value)


# -- bad model files ---------------------------------------------------------------------


def test_missing_model_names_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.ftz"
    with pytest.raises(IntentModelError, match=r"nope\.ftz: no such file") as caught:
        FastTextClassifier.load(missing)
    assert caught.value.path == str(missing)
    with pytest.raises(IntentModelError, match="not a file"):
        FastTextClassifier.load(tmp_path)


@pytest.mark.parametrize("content", [b"", b"not a model at all", bytes(range(256)) * 8])
def test_corrupt_model_names_the_path(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.bin"
    bad.write_bytes(content)
    with pytest.raises(IntentModelError, match=r"bad\.bin: cannot be loaded"):
        FastTextClassifier.load(bad)


def test_truncated_model_without_a_card_is_refused(tmp_path: Path, model: Path) -> None:
    cut = tmp_path / "cut.bin"
    cut.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    with pytest.raises(IntentModelError, match=r"cut\.bin: is truncated"):
        FastTextClassifier.load(cut)


def test_model_that_does_not_match_its_card_is_refused(tmp_path: Path, model: Path) -> None:
    copy = tmp_path / "copy.bin"
    copy.write_bytes(model.read_bytes())
    card = Path(f"{model}.card.json")
    Path(f"{copy}.card.json").write_text(card.read_text().replace('"model_bytes": ', '"model_bytes": 1'))
    with pytest.raises(IntentModelError, match=r"copy\.bin: does not match its card"):
        FastTextClassifier.load(copy)


def test_word_vector_model_is_not_a_classifier(tmp_path: Path) -> None:
    import fasttext

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the parcel is late\nthe refund is late\n" * 20)
    vectors = fasttext.train_unsupervised(str(corpus), dim=8, epoch=1, minCount=1, thread=1, verbose=0)
    vectors.save_model(str(tmp_path / "vectors.bin"))
    with pytest.raises(IntentModelError, match="not a text classifier"):
        FastTextClassifier.load(tmp_path / "vectors.bin")


def test_missing_fasttext_names_the_extra(monkeypatch: pytest.MonkeyPatch, model: Path) -> None:
    monkeypatch.setitem(sys.modules, "fasttext", None)
    with pytest.raises(MissingExtraError, match=r"turnout\[intent\]") as caught:
        FastTextClassifier.load(model)
    assert "fasttext-numpy2" in str(caught.value)


def test_importing_turnout_loads_neither_fasttext_nor_numpy() -> None:
    code = "import sys, turnout, turnout.intent; print(sorted({'fasttext', 'numpy'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- building from config, plugins, routing ------------------------------------------------


def test_build_classifier_loads_fasttext_with_the_configured_settings(model: Path) -> None:
    built = build_classifier(IntentConfig(model=str(model), min_confidence=0.9, unknown_label="other"))
    assert isinstance(built, FastTextClassifier)
    assert (built.min_confidence, built.unknown_label, built.max_chars) == (0.9, "other", 2000)


def test_build_classifier_without_a_model_uses_the_built_in_one() -> None:
    built = build_classifier(IntentConfig(min_confidence=0.3))
    assert isinstance(built, FastTextClassifier)
    assert built.predict("我要退款").label == "refund"
    assert Path(turnout.intent.default_model()).is_file()  # trained once, into the cache dir
    with pytest.raises(TurnoutError, match="takes no options"):
        build_classifier(IntentConfig(model="m.ftz", options={"k": 2}))


class _EntryPoint:
    def __init__(self, name: str, factory: Any) -> None:
        self.name, self.value, self.dist = name, f"tests:{name}", None
        self.factory = factory

    def load(self) -> Any:
        return self.factory


class _Keywords:
    def __init__(self, model: str | None, keywords: dict[str, str]) -> None:
        self.model = model
        self.keywords = keywords

    def predict(self, text: str) -> Intent:
        label = next((label for word, label in self.keywords.items() if word in text), None)
        return Intent(label or "none", 0.9 if label else 0.1)


@pytest.fixture
def fake_classifiers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from turnout import plugins

    installed = [_EntryPoint("keywords", _Keywords), _EntryPoint("broken", lambda model: object())]
    monkeypatch.setattr(
        plugins, "entry_points", lambda *, group: installed if group == "turnout.classifiers" else []
    )
    monkeypatch.delenv("TURNOUT_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    plugins.clear_cache()
    yield
    plugins.clear_cache()


@pytest.mark.usefixtures("fake_classifiers")
def test_build_classifier_loads_a_plugin_with_model_and_options() -> None:
    config = IntentConfig(
        classifier="keywords", model="rules.json", options={"keywords": {"money": "refund"}}
    )
    built = build_classifier(config)
    assert built.predict("give my money back") == Intent("refund", 0.9)
    # The configured floor applies to plugins too; the best guess is kept.
    assert built.predict("hello") == Intent("unknown", 0.1, "none")


@pytest.mark.usefixtures("fake_classifiers")
def test_plugin_errors_name_the_plugin() -> None:
    with pytest.raises(TurnoutError, match=r"no plugin 'missing' in entry-point group 'turnout\.classifiers"):
        build_classifier(IntentConfig(classifier="missing"))
    with pytest.raises(TurnoutError, match=r"'keywords' \(turnout.classifiers\) rejected"):
        build_classifier(IntentConfig(classifier="keywords", options={"colour": "red"}))
    with pytest.raises(TurnoutError, match="'broken' returned object"):
        build_classifier(IntentConfig(classifier="broken"))


def test_rules_route_on_the_classified_intent(classifier: FastTextClassifier, model: Path) -> None:
    config = {
        "intent": {"enabled": True, "model": str(model)},
        "flags": {
            "coordinator": {
                "variants": ["legacy", "workflow"],
                "default": "legacy",
                "rules": [{"name": "refunds", "when": {"intent": "refund"}, "serve": "workflow"}],
            }
        },
    }
    router = Turnout(config, classifier=classifier)
    refund = router.decide("coordinator", RoutingContext("u1", text="我要退款"))
    hello = router.decide("coordinator", RoutingContext("u2", text="hello there"))
    assert (refund.variant, hello.variant) == ("workflow", "legacy")
