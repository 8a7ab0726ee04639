"""GrowthBook features → turnout flags: the same value as the GrowthBook SDK for every user."""

from __future__ import annotations

import json
import random
import tomllib
from pathlib import Path
from typing import Any

import pytest

from turnout import Turnout
from turnout.cli import main
from turnout.evaluation import evaluate
from turnout.growthbook import GrowthBookImportError, import_features

FEATURES: dict[str, Any] = {
    "new-checkout": {
        "defaultValue": False,
        "rules": [
            {"id": "staff", "condition": {"email": {"$regex": "@example\\.com$"}}, "force": True},
            {
                "id": "ab",
                "key": "checkout-test",
                "variations": [False, True],
                "weights": [0.5, 0.5],
                "coverage": 0.8,
                "hashVersion": 2,
                "condition": {"country": {"$in": ["US", "CA", "DE"]}},
            },
        ],
    },
    "button-color": {
        "defaultValue": "blue",
        "rules": [
            {"variations": ["blue", "green", "red"], "hashVersion": 1},
        ],
    },
    "page-size": {
        "defaultValue": 20,
        "rules": [
            {"id": "ramp", "force": 50, "coverage": 0.3, "hashVersion": 2, "seed": "page-size-ramp"},
            {"condition": {"plan": "pro"}, "force": 100},
        ],
    },
    "pricing": {
        "defaultValue": {"tier": "standard", "discount": 0},
        "rules": [
            {
                "key": "pricing-test",
                "hashAttribute": "company",
                "variations": [{"tier": "standard", "discount": 0}, {"tier": "promo", "discount": 10}],
                "weights": [0.3333, 0.6667],
                "coverage": 0.5,
                "hashVersion": 2,
                "seed": "pricing-2026",
            }
        ],
    },
    "ratio": {
        "defaultValue": 0.25,
        "rules": [
            {"variations": [0.25, 0.5, 0.75, 1.0], "weights": [0.07, 0.13, 0.3, 0.5], "hashVersion": 2}
        ],
    },
}


def users(count: int) -> list[dict[str, Any]]:
    rng = random.Random(14)
    out = []
    for i in range(count):
        attributes: dict[str, Any] = {
            "id": f"user-{i}" if i % 7 else f"ünïcode-{i}",
            "country": rng.choice(["US", "CA", "DE", "FR", "JP"]),
            "plan": rng.choice(["free", "pro"]),
            "email": rng.choice(["a@example.com", "b@other.org"]),
        }
        if i % 5:
            attributes["company"] = rng.choice([f"co-{n}" for n in range(300)] + [123456, ""])
        out.append(attributes)
    return out


def test_every_user_gets_the_growthbook_sdks_value() -> None:
    from growthbook import GrowthBook

    turnout = Turnout(import_features({"features": FEATURES}))
    gb = GrowthBook(features=FEATURES)
    seen: dict[str, set[str]] = {key: set() for key in FEATURES}
    for attributes in users(3000):
        gb.set_attributes(attributes)
        for key in FEATURES:
            expected = gb.eval_feature(key).value
            result = evaluate(turnout, key, attributes["id"], attributes)
            assert result.value == expected, (key, attributes)
            seen[key].add(json.dumps(expected, sort_keys=True))
    gb.destroy()
    # Every rule is exercised: each feature served more than one value.
    assert all(len(values) > 1 for values in seen.values()), seen


def test_the_conversion_reads_as_turnout_config() -> None:
    flags = import_features(FEATURES)["flags"]
    assert flags["new-checkout"] == {
        "kind": "value",
        "values": {"false": False, "true": True},
        "default": "false",
        "rules": [
            {"name": "staff", "when": {"email": {"$regex": "@example\\.com$"}}, "serve": "true"},
            {
                "name": "ab",
                "experiment": "checkout-test",
                "when": {"country": {"$in": ["US", "CA", "DE"]}},
                "hash": "growthbook-v2",
                "split": {"false": 50.0, "true": 50.0},
                "coverage": 0.8,
                "seed": "checkout-test",
            },
        ],
    }
    assert import_features(FEATURES)["routing"] == {"attributes": ["company", "country", "email", "plan"]}
    assert flags["pricing"]["hash_by"] == "company"
    assert flags["pricing"]["values"] == {
        "value-1": {"tier": "standard", "discount": 0},
        "value-2": {"tier": "promo", "discount": 10},
    }
    assert flags["ratio"]["rules"][0]["split"] == {"0.25": 7.0, "0.5": 13.0, "0.75": 30.0, "1.0": 50.0}


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ({"variations": [1, 2], "namespace": ["ns", 0, 0.5]}, "features.f.rules[0].namespace"),
        ({"variations": [1, 2], "ranges": [[0, 0.5], [0.5, 1]]}, "features.f.rules[0].ranges"),
        ({"force": 2, "parentConditions": [{"id": "g"}]}, "features.f.rules[0].parentConditions"),
        (
            {"variations": [1, 2], "meta": [{}, {"passthrough": True}]},
            "features.f.rules[0].meta[1].passthrough",
        ),
        ({"variations": [1, 2], "weights": [0.5, 0.499]}, "features.f.rules[0].weights"),
        ({"variations": [1, 1]}, "features.f.rules[0].variations"),
        ({"variations": [1, 2], "hashVersion": 3}, "features.f.rules[0].hashVersion"),
    ],
)
def test_what_cannot_be_reproduced_is_an_error_naming_the_rule(rule: dict[str, Any], path: str) -> None:
    with pytest.raises(GrowthBookImportError) as caught:
        import_features({"f": {"defaultValue": 1, "rules": [rule]}})
    assert [issue.path for issue in caught.value.issues] == [path]


def test_rules_of_one_feature_must_hash_one_attribute() -> None:
    rules = [{"variations": [1, 2]}, {"variations": [1, 2], "hashAttribute": "company"}]
    with pytest.raises(GrowthBookImportError) as caught:
        import_features({"f": {"defaultValue": 1, "rules": rules}})
    assert [issue.path for issue in caught.value.issues] == ["features.f.rules[1].hashAttribute"]


def test_an_encrypted_payload_is_refused_with_a_reason() -> None:
    with pytest.raises(GrowthBookImportError) as caught:
        import_features({"status": 200, "encryptedFeatures": "abc=="})
    assert "decrypted" in str(caught.value)


def test_rules_the_sdks_skip_are_left_out() -> None:
    rules = [{"variations": [1]}, {"force": 2, "coverage": 0}, {"id": "nothing"}]
    flag = import_features({"f": {"defaultValue": 1, "rules": rules}})["flags"]["f"]
    assert "rules" not in flag


def test_cli_writes_toml_that_loads(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "features.json"
    source.write_text(json.dumps({"status": 200, "features": FEATURES}))
    out = tmp_path / "flags.toml"
    assert main(["import", "growthbook", str(source), "-o", str(out)]) == 0
    loaded = tomllib.loads(out.read_text())
    assert loaded == import_features(FEATURES)
    Turnout.from_file(out, env={})
    capsys.readouterr()
    assert main(["import", "growthbook", str(source)]) == 0
    assert tomllib.loads(capsys.readouterr().out) == loaded


def test_cli_reports_problems_and_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "features.json"
    source.write_text(
        json.dumps({"f": {"defaultValue": 1, "rules": [{"variations": [1, 2], "filters": [{}]}]}})
    )
    assert main(["import", "growthbook", str(source)]) == 1
    assert "features.f.rules[0].filters" in capsys.readouterr().err
    source.write_text("{not json")
    assert main(["import", "growthbook", str(source)]) == 1
    assert "not JSON" in capsys.readouterr().err
