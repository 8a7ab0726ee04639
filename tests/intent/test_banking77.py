"""Accuracy on real third-party data: a 20-intent slice of Banking77 with the default settings.

The full measurement (77 intents, quantized model) is `bench/bench_banking77.py`; this
slice keeps the test fast while still training and scoring on text we did not write.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from turnout.intent import FastTextClassifier, evaluate, read_examples, train

BANKING77 = Path(__file__).resolve().parents[3] / "shared" / "data" / "banking77"
LABELS = 20

pytestmark = pytest.mark.skipif(
    not (BANKING77 / "train.csv").is_file(),
    reason=f"Banking77 is not available at {BANKING77} (the shared data directory next to the repo)",
)


def test_default_settings_classify_a_banking77_slice(tmp_path: Path) -> None:
    train_rows = read_examples(BANKING77 / "train.csv")
    labels = sorted({e.label for e in train_rows})[:LABELS]
    test_rows = [e for e in read_examples(BANKING77 / "test.csv") if e.label in labels]

    card = train([(e.text, e.label) for e in train_rows if e.label in labels], tmp_path / "b77.bin")

    assert card.labels == labels
    assert card.evaluation is not None
    assert card.evaluation["accuracy"] >= 0.9
    result = evaluate(FastTextClassifier.load(tmp_path / "b77.bin"), test_rows)
    assert result.rows == 40 * LABELS
    assert result.accuracy >= 0.93
    assert result.macro_f1 >= 0.93
    # Confidence is informative: the messages the model is sure about are right more often.
    assert result.sweep[7].accuracy is not None
    assert result.sweep[7].accuracy > result.accuracy
