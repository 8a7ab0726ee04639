import math
import os
import random
import subprocess
import sys
import uuid
from collections import Counter
from pathlib import Path

import pytest
from growthbook import Experiment, GrowthBook
from growthbook.core import gbhash
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from turnout import hashing
from turnout.hashing import HASH_ALGORITHMS, Splitter, bucket, weights_at_step

IDS = [f"user-{i}" for i in range(300)]
NAMES = ("legacy", "workflow", "langgraph", "react", "planner")

# Weights are percentages: zero, or at least a thousandth of a percent. Vanishingly small
# floats only test float underflow in the assertions' products, not the splitter.
weight = st.one_of(
    st.just(0.0), st.floats(min_value=0.001, max_value=100, allow_nan=False, allow_infinity=False)
)
weight_vectors = st.lists(weight, min_size=2, max_size=5).filter(lambda ws: sum(ws) > 0)
seeds = st.text(max_size=12)


def _split(weights: list[float], seed: str = "exp") -> Splitter:
    return Splitter(dict(zip(NAMES, weights, strict=False)), seed=seed)


# --- bucket ---------------------------------------------------------------------------


@given(seed=seeds, value=st.text(), algorithm=st.sampled_from(HASH_ALGORITHMS))
def test_bucket_is_a_deterministic_position_in_unit_interval(seed, value, algorithm):
    position = bucket(seed, value, algorithm)
    assert 0 <= position < 1
    assert bucket(seed, value, algorithm) == position


def test_murmur3_bucket_is_the_documented_formula_and_stable():
    assert bucket("workflow-canary", "user-0") == 0.9904959029518068
    assert bucket("workflow-canary", "user-1") == 0.7401671225670725
    assert bucket("workflow-canary", "user-2") == 0.28503780881874263


@pytest.mark.parametrize("value", ["user-1", "ü-ß", "😀x", "", "a" * 200])
@pytest.mark.parametrize("version", [1, 2])
def test_growthbook_bucket_known_vectors(value, version):
    assert bucket("exp", value, f"growthbook-v{version}") == gbhash("exp", value, version)


@given(seed=seeds, value=st.text(), version=st.sampled_from([1, 2]))
def test_growthbook_bucket_matches_sdk_hash_for_any_text(seed, value, version):
    assert bucket(seed, value, f"growthbook-v{version}") == gbhash(seed, value, version)


def test_unknown_algorithm_is_rejected():
    with pytest.raises(ValueError, match="unknown hash algorithm"):
        bucket("s", "v", "md5")  # type: ignore[arg-type]


# --- Splitter basics ------------------------------------------------------------------


def test_splitter_normalises_and_keeps_declared_order():
    split = Splitter({"workflow": 30, "legacy": 90, "off": 0}, seed="s")
    assert split.variants == ("workflow", "legacy", "off")
    assert split.weights == (0.25, 0.75, 0.0)
    assert (split.seed, split.algorithm) == ("s", "murmur3")
    assert "workflow" in repr(split)


def test_decimal_percents_normalise_to_the_decimal_fractions():
    # A float division would give 0.33299999999999996 and move GrowthBook boundaries.
    assert Splitter({"a": 33.3, "b": 33.3, "c": 33.4}, seed="s").weights == (0.333, 0.333, 0.334)


def test_assignments_are_stable_across_releases():
    split = Splitter({"legacy": 90, "workflow": 10}, seed="workflow-canary")
    in_workflow = [i for i in range(100) if split.assign(f"user-{i}")[0] == "workflow"]
    assert in_workflow == [17, 22, 23, 24, 26, 34, 43, 48, 58, 65, 74, 76, 82, 85, 94]
    three = Splitter({"legacy": 50, "workflow": 25, "langgraph": 25}, seed="coordinator")
    assert [three.assign(f"user-{i}")[0] for i in range(8)] == [
        "legacy", "legacy", "workflow", "workflow", "legacy", "langgraph", "workflow", "legacy"
    ]  # fmt: skip


def test_assignments_are_stable_across_processes():
    code = (
        "from turnout.hashing import Splitter\n"
        "s = Splitter({'a': 20, 'b': 30, 'c': 50}, seed='exp')\n"
        "print(','.join(s.assign(f'user-{i}')[0] for i in range(200)))\n"
    )
    src = str(Path(hashing.__file__).resolve().parents[1])
    outputs = set()
    for hash_seed in ("0", "1", "random"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, "PYTHONPATH": src}
        run = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        outputs.add(run.stdout.strip())
    split = Splitter({"a": 20, "b": 30, "c": 50}, seed="exp")
    assert outputs == {",".join(split.assign(f"user-{i}")[0] for i in range(200))}


@pytest.mark.parametrize("algorithm", HASH_ALGORITHMS)
def test_bucket_returned_with_the_variant(algorithm):
    split = Splitter({"a": 1, "b": 1, "c": 1}, seed="exp", algorithm=algorithm)
    for uid in IDS[:50]:
        assert split.assign(uid)[1] == bucket("exp", uid, algorithm)


@pytest.mark.parametrize("algorithm", HASH_ALGORITHMS)
def test_zero_weight_variants_are_never_chosen(algorithm):
    split = Splitter({"off": 0, "on": 5, "dark": 0}, seed="exp", algorithm=algorithm)
    assert {split.assign(uid)[0] for uid in IDS} == {"on"}
    two = Splitter({"off": 0, "a": 1, "b": 1, "dark": 0}, seed="exp", algorithm=algorithm)
    assert {two.assign(uid)[0] for uid in IDS} == {"a", "b"}


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({}, "at least one variant"),
        ({"a": 0, "b": 0}, "positive weight"),
        ({"a": -1, "b": 2}, "finite number >= 0"),
        ({"a": math.nan, "b": 2}, "finite number >= 0"),
        ({"a": math.inf, "b": 2}, "finite number >= 0"),
    ],
)
def test_invalid_weights_are_rejected(weights, message):
    with pytest.raises(ValueError, match=message):
        Splitter(weights, seed="s")


def test_unknown_splitter_algorithm_is_rejected():
    with pytest.raises(ValueError, match="unknown hash algorithm"):
        Splitter({"a": 1}, seed="s", algorithm="growthbook-v3")  # type: ignore[arg-type]


# --- accuracy -------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("ids", ["sequential", "uuid4"])
def test_million_ids_land_within_a_fifth_of_a_percent(ids):
    rng = random.Random(20260129)
    if ids == "sequential":
        values = (f"user-{i}" for i in range(1_000_000))
    else:
        values = (str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(1_000_000))
    assign = Splitter({"legacy": 90, "workflow": 10}, seed="workflow-canary").assign
    treated = sum(assign(v)[0] == "workflow" for v in values)
    assert 0.098 <= treated / 1_000_000 <= 0.102


@settings(max_examples=20, deadline=None)
@given(weights=st.lists(st.integers(1, 100), min_size=2, max_size=5), seed=seeds)
def test_rendezvous_distribution_follows_weights(weights, seed):
    split = _split([float(w) for w in weights], seed)
    counts = Counter(split.assign(f"id-{i}")[0] for i in range(20_000))
    for name, expected in zip(split.variants, split.weights, strict=True):
        assert abs(counts[name] / 20_000 - expected) < 0.02


# --- ramp monotonicity (murmur3 rendezvous) -------------------------------------------


@settings(deadline=None)
@given(old=weight_vectors, seed=seeds, data=st.data())
def test_raising_a_weight_never_moves_its_users_out(old, seed, data):
    rising = data.draw(st.integers(0, len(old) - 1))
    new = [w * data.draw(st.floats(0, 1)) for w in old]
    new[rising] = old[rising] + data.draw(st.floats(0.01, 100))
    before, after = _split(old, seed), _split(new, seed)
    for uid in IDS:
        if before.assign(uid)[0] == NAMES[rising]:
            assert after.assign(uid)[0] == NAMES[rising]


@settings(deadline=None)
@given(old=weight_vectors, seed=seeds, data=st.data())
def test_lowering_a_weight_only_moves_its_own_users(old, seed, data):
    lowered = data.draw(st.integers(0, len(old) - 1))
    new = list(old)
    new[lowered] = old[lowered] * data.draw(st.floats(0, 1, exclude_max=True))
    assume(sum(new) > 0)
    before, after = _split(old, seed), _split(new, seed)
    for uid in IDS:
        if (variant := before.assign(uid)[0]) != NAMES[lowered]:
            assert after.assign(uid)[0] == variant


@settings(deadline=None)
@given(old=weight_vectors, new=weight_vectors, seed=seeds)
def test_users_only_move_to_a_variant_that_gained_on_theirs(old, new, seed):
    size = min(len(old), len(new))
    old, new = old[:size], new[:size]
    assume(sum(old) > 0 and sum(new) > 0)
    before, after = _split(old, seed), _split(new, seed)
    index = {name: i for i, name in enumerate(NAMES)}
    for uid in IDS:
        a, b = index[before.assign(uid)[0]], index[after.assign(uid)[0]]
        if a != b:
            assert new[b] * old[a] > old[b] * new[a]


@settings(deadline=None)
@given(
    treatments=st.lists(st.integers(1, 100), min_size=1, max_size=4),
    seed=seeds,
)
def test_ramp_steps_keep_treatment_users(treatments, seed):
    base = {"legacy": 90.0, **{NAMES[i + 1]: float(w) for i, w in enumerate(treatments)}}
    assigned: dict[str, str] = {}
    for share in (0, 10, 25, 50, 100):
        split = Splitter(weights_at_step(base, "legacy", share), seed=seed)
        now = {uid: split.assign(uid)[0] for uid in IDS}
        for uid, variant in assigned.items():
            if variant != "legacy":
                assert now[uid] == variant
        assigned = now
        if share == 0:
            assert set(now.values()) == {"legacy"}
    assert "legacy" not in assigned.values()


@settings(deadline=None)
@given(old=weight_vectors, extra=st.floats(0.01, 100), seed=seeds)
def test_adding_a_variant_only_takes_users_into_it(old, extra, seed):
    assume(len(old) < len(NAMES))
    before = _split(old, seed)
    after = Splitter({"newcomer": extra, **dict(zip(NAMES, old, strict=False))}, seed=seed)
    for uid in IDS:
        assert after.assign(uid)[0] in {before.assign(uid)[0], "newcomer"}


@given(old=weight_vectors, seed=seeds)
def test_reordering_variants_changes_nothing(old, seed):
    forward = _split(old, seed)
    backward = Splitter(dict(reversed(list(zip(NAMES, old, strict=False)))), seed=seed)
    assert all(forward.assign(uid) == backward.assign(uid) for uid in IDS)


# --- GrowthBook parity ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("percents", "fractions"),
    [
        ([10, 90], [0.1, 0.9]),
        ([50, 50], [0.5, 0.5]),
        ([20, 30, 50], [0.2, 0.3, 0.5]),
        ([33.3, 33.3, 33.4], [0.333, 0.333, 0.334]),
        ([0, 40, 60], [0.0, 0.4, 0.6]),
    ],
)
@pytest.mark.parametrize("version", [1, 2])
def test_growthbook_assignment_is_identical_to_the_sdk(percents, fractions, version):
    names = list(NAMES[: len(percents)])
    split = Splitter(
        dict(zip(names, percents, strict=True)),
        seed="workflow-canary",
        algorithm=f"growthbook-v{version}",
    )
    gb = GrowthBook(attributes={})
    try:
        for i in range(2000):
            uid = f"user-{i}"
            gb.set_attributes({"id": uid})
            result = gb.run(
                Experiment(key="workflow-canary", variations=names, weights=fractions, hashVersion=version)
            )
            variant, position = split.assign(uid)
            assert result.inExperiment
            assert (result.value, result.variationId, result.bucket) == (
                variant,
                names.index(variant),
                position,
            )
    finally:
        gb.destroy()


@settings(deadline=None)
@given(uid=st.text(min_size=1, max_size=20), version=st.sampled_from([1, 2]))
def test_growthbook_parity_for_any_id(uid, version):
    names = ["a", "b", "c"]
    split = Splitter({"a": 25, "b": 25, "c": 50}, seed="k", algorithm=f"growthbook-v{version}")
    gb = GrowthBook(attributes={"id": uid})
    try:
        result = gb.run(Experiment(key="k", variations=names, weights=[0.25, 0.25, 0.5], hashVersion=version))
    finally:
        gb.destroy()
    assert result.value == split.assign(uid)[0]


# --- weights_at_step ------------------------------------------------------------------


def test_weights_at_step_gives_the_share_to_the_treatments():
    assert weights_at_step({"legacy": 90, "workflow": 10}, "legacy", 25) == {
        "legacy": 75.0,
        "workflow": 25.0,
    }
    three = weights_at_step({"workflow": 10, "legacy": 80, "langgraph": 30}, "legacy", 50)
    assert list(three) == ["workflow", "legacy", "langgraph"]
    assert three == {"workflow": 12.5, "legacy": 50.0, "langgraph": 37.5}
    assert weights_at_step({"legacy": 100, "workflow": 0}, "legacy", 0) == {
        "legacy": 100.0,
        "workflow": 0.0,
    }
    assert weights_at_step({"legacy": 0, "workflow": 1}, "legacy", 100) == {
        "legacy": 0.0,
        "workflow": 100.0,
    }


@pytest.mark.parametrize(
    ("base", "baseline", "share", "message"),
    [
        ({"legacy": 90, "workflow": 10}, "missing", 10, "not one of the variants"),
        ({"legacy": 90, "workflow": 10}, "legacy", -1, "between 0 and 100"),
        ({"legacy": 90, "workflow": 10}, "legacy", 100.5, "between 0 and 100"),
        ({"legacy": 90, "workflow": 10}, "legacy", math.nan, "between 0 and 100"),
        ({"legacy": 90, "workflow": -10}, "legacy", 10, "finite number >= 0"),
        ({"legacy": 90, "workflow": 0}, "legacy", 10, "no non-baseline variant"),
        ({"legacy": 100}, "legacy", 10, "no non-baseline variant"),
    ],
)
def test_weights_at_step_validates(base, baseline, share, message):
    with pytest.raises(ValueError, match=message):
        weights_at_step(base, baseline, share)
