"""Reading labelled data, training, the model card, evaluation and the `intent` CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

import turnout.intent
from turnout.cli.intent import main
from turnout.errors import TurnoutError
from turnout.intent import FastTextClassifier, IntentDataError, ModelCard, default_model, read_examples, train
from turnout.intent.evaluation import Example, evaluate, score, split_stratified
from turnout.types import Intent

DATA = Path(turnout.intent.__file__).parent / "data" / "customer_service.csv"


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


# -- reading data ------------------------------------------------------------------------


def test_reads_text_label_csv_with_quotes_and_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "d.csv", '\ufefftext,label\n"hi, there",greeting\n\n"two\nlines",refund\n')
    assert read_examples(path) == [Example("hi, there", "greeting"), Example("two\nlines", "refund")]


def test_reads_banking77_text_category_csv(tmp_path: Path) -> None:
    path = write(tmp_path, "b.csv", "text,category\nHow do I locate my card?,card_arrival\n")
    assert read_examples(path) == [Example("How do I locate my card?", "card_arrival")]


def test_reads_fasttext_label_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "d.txt", "__label__refund I want my money back\n\n__label__greeting  hi there\n")
    assert read_examples(path) == [Example("I want my money back", "refund"), Example("hi there", "greeting")]


def test_the_shipped_dataset_is_english_and_chinese_with_enough_rows_per_label() -> None:
    examples = read_examples(DATA)
    chinese = Counter(e.label for e in examples if any("\u4e00" <= c <= "\u9fff" for c in e.text))
    english = Counter(e.label for e in examples) - chinese
    expected = {"greeting", "order_status", "tracking", "refund", "complaint", "product_question"}
    assert expected | {"human_agent", "goodbye"} <= set(english)
    assert min(english.values()) >= 15
    assert min(chinese.values()) >= 15
    assert len({e.text for e in examples}) == len(examples)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("text,intent_name\nhello,greeting\n", r"d\.csv line 1: the header has no label column"),
        ("message,label\nhello,greeting\n", r"d\.csv line 1: the header has no 'text' column"),
        (
            'text,label\nhello,greeting\n"multi\nline",refund\nno label here\n',
            r"d\.csv line 5: the row has no label",
        ),
        ("text,label\nhello,\n", r"d\.csv line 2: the label is empty"),
        ("text,label\nhello,good bye\n", r"d\.csv line 2: the label 'good bye' contains whitespace"),
        ("text,label\n", r"d\.csv: has a header but no rows"),
        ("", r"d\.csv: is empty"),
        ("  \n\n", r"d\.csv: is empty"),
    ],
)
def test_bad_csv_names_the_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(IntentDataError, match=message):
        read_examples(write(tmp_path, "d.csv", content))


def test_bad_fasttext_lines_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "d.txt", "__label__a one\n__label__b two\nthree without label\n")
    with pytest.raises(IntentDataError, match=r"d\.txt line 3: no label"):
        read_examples(path)


def test_unreadable_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(IntentDataError, match=r"nope\.csv: no such file"):
        read_examples(tmp_path / "nope.csv")
    (tmp_path / "latin1.csv").write_bytes("text,label\ncafé,x\n".encode("latin-1"))
    with pytest.raises(IntentDataError, match=r"latin1\.csv: is not UTF-8"):
        read_examples(tmp_path / "latin1.csv")


def test_training_an_empty_file_fails_before_fasttext_runs(tmp_path: Path) -> None:
    with pytest.raises(IntentDataError, match=r"empty\.csv: is empty"):
        train(write(tmp_path, "empty.csv", ""), tmp_path / "m.bin")
    assert not (tmp_path / "m.bin").exists()


def test_training_needs_two_labels_with_usable_text(tmp_path: Path) -> None:
    with pytest.raises(TurnoutError, match="at least two labels"):
        train([("hello", "greeting"), ("hi", "greeting"), ("😀", "refund")], tmp_path / "m.bin")


# -- training ----------------------------------------------------------------------------


def test_stratified_split_holds_out_every_label_and_is_seeded() -> None:
    examples = [Example(f"{label} {i}", label) for label in "abc" for i in range(20)] + [Example("x", "d")]
    kept, held = split_stratified(examples, 0.1, seed=3)
    assert Counter(e.label for e in held) == {"a": 2, "b": 2, "c": 2}  # a lone row is never held out
    assert sorted(kept + held) == sorted(examples)
    assert split_stratified(examples, 0.1, seed=3) == (kept, held)
    assert split_stratified(examples, 0.1, seed=4) != (kept, held)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ModelCard]:
    path = tmp_path_factory.mktemp("trained") / "intent.bin"
    rows = [*((e.text, e.label) for e in read_examples(DATA)), ("🎉🎉", "greeting")]
    return path, train(rows, path, bucket=20_000)


def test_train_writes_the_model_and_its_card(trained: tuple[Path, ModelCard]) -> None:
    path, card = trained
    assert path.is_file()
    assert ModelCard.read(path) == card
    assert Path(f"{path}.card.json").is_file()
    assert card.labels == sorted(card.labels)
    assert "refund" in card.labels
    assert sum(card.label_counts.values()) == card.rows == 550
    assert card.skipped_rows == 1  # the emoji-only row
    assert card.evaluation is not None
    assert card.evaluation["rows"] == 55
    assert 0.0 < card.evaluation["accuracy"] <= 1.0
    assert card.trained_on == "all rows"
    assert card.settings["bucket"] == 20_000
    assert card.settings["epochs"] == 50
    assert not card.quantized
    assert card.model_bytes == path.stat().st_size
    assert len(card.data_sha256) == len(card.model_sha256) == 64
    assert FastTextClassifier.load(path).predict("我要退款").label == "refund"


def test_training_is_reproducible(trained: tuple[Path, ModelCard], tmp_path: Path) -> None:
    _, card = trained
    rows = [*((e.text, e.label) for e in read_examples(DATA)), ("🎉🎉", "greeting")]
    again = train(rows, tmp_path / "again.bin", bucket=20_000)
    assert (again.model_sha256, again.data_sha256) == (card.model_sha256, card.data_sha256)


def test_without_refit_the_card_describes_the_shipped_model(tmp_path: Path) -> None:
    card = train(DATA, tmp_path / "m.bin", bucket=20_000, refit=False)
    assert card.trained_on.startswith("90%")
    assert train(DATA, tmp_path / "n.bin", bucket=20_000, holdout=0).evaluation is None


def test_progress_reports_the_phases(tmp_path: Path) -> None:
    seen: list[str] = []
    train(DATA, tmp_path / "m.bin", bucket=20_000, progress=seen.append)
    text = "\n".join(seen)
    for phase in ("reading", "holding out", "held-out accuracy", "retraining on all rows", "wrote"):
        assert phase in text


def test_autotune_searches_settings_and_measures_the_validation_file(tmp_path: Path) -> None:
    examples = read_examples(DATA)
    lines = "".join(f"__label__{e.label} {' '.join(e.text.split())}\n" for e in examples[::10])
    validation = write(tmp_path, "valid.txt", lines)  # fastText format, as validation files often are
    card = train(DATA, tmp_path / "tuned.bin", autotune_validation=validation, autotune_duration=1)
    assert card.settings["autotuned"] is True
    assert card.evaluation is not None
    assert card.evaluation["source"] == f"autotune validation file {validation}"
    assert card.evaluation["rows"] == 55
    assert FastTextClassifier.load(tmp_path / "tuned.bin").labels


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return default_model(tmp_path_factory.mktemp("cache"))


def test_default_model_is_a_small_model_of_the_shipped_data_measured_on_held_out_rows(
    demo_model: Path,
) -> None:
    assert demo_model.stat().st_size <= 5_000_000
    card = ModelCard.read(demo_model)
    assert card.evaluation is not None
    assert card.evaluation["source"] == "held-out split"
    assert card.evaluation["rows"] == 55  # 10% of the 550 rows, never trained on
    assert card.trained_on.startswith("90%")
    classifier = FastTextClassifier.load(demo_model)
    assert classifier.predict("转人工").label == "human_agent"
    assert classifier.predict("I want to cancel my order").label == "cancel_order"


def test_default_model_is_cached(demo_model: Path) -> None:
    stamp = demo_model.stat().st_mtime_ns
    assert default_model(demo_model.parent) == demo_model
    assert demo_model.stat().st_mtime_ns == stamp


# -- evaluation --------------------------------------------------------------------------


def test_score_computes_accuracy_macro_f1_confusions_and_the_sweep() -> None:
    gold = ["a", "a", "b", "b"]
    result = score(gold, ["a", "b", "b", "b"], [0.9, 0.4, 0.8, 0.2], thresholds=(0.0, 0.5, 0.95))
    assert result.accuracy == 0.75
    by_label = {s.label: s for s in result.labels}
    assert (by_label["a"].precision, by_label["a"].recall, by_label["a"].support) == (1.0, 0.5, 2)
    assert by_label["b"].precision == pytest.approx(2 / 3)
    assert result.macro_f1 == pytest.approx((2 / 3 + 0.8) / 2)
    assert result.confused == (("a", "b", 1),)
    assert [(p.threshold, p.kept, p.accuracy) for p in result.sweep] == [
        (0.0, 1.0, 0.75),
        (0.5, 0.5, 1.0),
        (0.95, 0.0, None),
    ]


def test_evaluate_works_with_any_classifier() -> None:
    class Echo:
        def predict(self, text: str) -> Intent:
            return Intent("unknown", 0.3, text) if text else Intent("unknown", 0.0)

    result = evaluate(Echo(), [Example("a", "a"), Example("b", "c")])
    assert result.accuracy == 0.5
    assert result.to_dict()["confused"] == [{"true": "c", "predicted": "b", "count": 1}]


# -- the CLI -----------------------------------------------------------------------------


def test_cli_trains_and_evaluates(
    tmp_path: Path, trained: tuple[Path, ModelCard], capsys: pytest.CaptureFixture[str]
) -> None:
    data = write(tmp_path, "d.csv", "text,label\nI want a refund,refund\nhello there,greeting\n")
    assert (
        main(["train", str(data), "-o", str(tmp_path / "m.bin"), "--bucket", "1000", "--holdout", "0"]) == 0
    )
    out = capsys.readouterr()
    assert "2 labels, 2 rows" in out.out
    assert "[intent] reading" in out.err

    model, _ = trained
    assert main(["eval", str(model), str(data)]) == 0
    report = capsys.readouterr().out
    assert "accuracy 1.0000" in report
    assert "confidence sweep" in report
    assert main(["eval", str(model), str(data), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["accuracy"] == 1.0
    assert [p["threshold"] for p in result["sweep"]] == [round(0.1 * i, 1) for i in range(10)]


def test_cli_reports_bad_input_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = write(tmp_path, "d.csv", "text,label\nhello,greeting\nno label\n")
    assert main(["train", str(data), "-o", str(tmp_path / "m.ftz"), "-q"]) == 1
    assert "d.csv line 3: the row has no label" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.ftz"), str(data)]) == 1
    assert "missing.ftz: no such file" in capsys.readouterr().err


def test_default_model_without_arguments_uses_the_cache_dir(
    demo_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TURNOUT_CACHE_DIR", str(demo_model.parent))
    assert turnout.intent.cache_dir() == demo_model.parent
    assert default_model() == demo_model  # the documented call, no argument


def test_cli_trains_from_the_shipped_data_and_warns_when_evaluating_on_training_data(
    tmp_path: Path, demo_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "builtin.bin"
    assert main(["train", "builtin", "-o", str(output), "--bucket", "20000", "-q"]) == 0
    out = capsys.readouterr().out
    assert "11 labels, 550 rows" in out and "(held-out split)" in out
    assert ModelCard.read(output).data_sha256 == ModelCard.read(demo_model).data_sha256

    assert main(["eval", str(demo_model), "builtin"]) == 0
    captured = capsys.readouterr()
    assert "warning: builtin is the data" in captured.err
    assert "overstate" in captured.err

    held_out = write(tmp_path, "new.csv", "text,label\nwhere is my parcel,tracking\n")
    assert main(["eval", str(demo_model), str(held_out)]) == 0
    assert "warning" not in capsys.readouterr().err
