"""Targeting conditions: every operator, compile errors, and parity with GrowthBook."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Any

import pytest
from growthbook.core import evalCondition
from hypothesis import given
from hypothesis import strategies as st

from turnout.conditions import ALWAYS, CompiledCondition, compile_condition
from turnout.errors import ConditionError


def matches(spec: dict[str, Any], attributes: Any) -> bool:
    return compile_condition(spec)(attributes)


# (condition, attributes, expected): positive and negative cases for every operator.
CASES: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    # implicit equality, strict about JSON types
    ({"plan": "free"}, {"plan": "free"}, True),
    ({"plan": "free"}, {"plan": "pro"}, False),
    ({"plan": "free"}, {}, False),
    ({"n": 1}, {"n": 1.0}, True),
    ({"n": 1}, {"n": True}, False),
    ({"flag": True}, {"flag": 1}, False),
    ({"flag": False}, {"flag": False}, True),
    ({"flag": False}, {"flag": 0}, False),
    ({"x": None}, {"x": None}, True),
    ({"x": None}, {}, True),
    ({"x": None}, {"x": 0}, False),
    ({"tags": ["a", "b"]}, {"tags": ["a", "b"]}, True),
    ({"tags": ["a", "b"]}, {"tags": ["b", "a"]}, False),
    ({"tags": [1]}, {"tags": [True]}, False),
    ({"meta": {"a": [1, {"b": None}]}}, {"meta": {"a": [1, {"b": None}]}}, True),
    ({"meta": {"a": 1}}, {"meta": {"a": 1, "b": 2}}, False),
    ({"meta": {"a": 1}}, {"meta": "a"}, False),
    # implicit $and across keys
    ({"plan": "pro", "country": "FR"}, {"plan": "pro", "country": "FR"}, True),
    ({"plan": "pro", "country": "FR"}, {"plan": "pro", "country": "DE"}, False),
    ({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "c": 3}, True),
    ({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 2, "c": 4}, False),
    # $eq / $ne
    ({"plan": {"$eq": "pro"}}, {"plan": "pro"}, True),
    ({"plan": {"$eq": "pro"}}, {"plan": "free"}, False),
    ({"n": {"$eq": 1}}, {"n": True}, False),
    ({"plan": {"$ne": "pro"}}, {"plan": "free"}, True),
    ({"plan": {"$ne": "pro"}}, {"plan": "pro"}, False),
    ({"plan": {"$ne": "pro"}}, {}, True),
    # ordering
    ({"age": {"$gt": 18}}, {"age": 19}, True),
    ({"age": {"$gt": 18}}, {"age": 18}, False),
    ({"age": {"$gte": 18}}, {"age": 18}, True),
    ({"age": {"$gte": 18}}, {"age": 17.5}, False),
    ({"age": {"$lt": 18}}, {"age": 17.9}, True),
    ({"age": {"$lt": 18}}, {"age": 18}, False),
    ({"age": {"$lte": 18}}, {"age": 18}, True),
    ({"age": {"$lte": 18}}, {"age": 19}, False),
    ({"age": {"$gt": 18}}, {"age": "abc"}, False),
    ({"age": {"$gt": 18}}, {"age": "20"}, False),
    ({"age": {"$gt": 0}}, {"age": True}, False),
    ({"age": {"$lt": 18}}, {}, False),
    ({"age": {"$gt": 18}}, {"age": math.nan}, False),
    ({"age": {"$gte": 18, "$lt": 65}}, {"age": 40}, True),
    ({"age": {"$gte": 18, "$lt": 65}}, {"age": 65}, False),
    ({"name": {"$gt": "m"}}, {"name": "zoe"}, True),
    ({"name": {"$gt": "m"}}, {"name": "alice"}, False),
    ({"name": {"$lte": "b"}}, {"name": 1}, False),
    # $in / $nin
    ({"plan": {"$in": ["pro", "team"]}}, {"plan": "team"}, True),
    ({"plan": {"$in": ["pro", "team"]}}, {"plan": "free"}, False),
    ({"plan": {"$in": ["pro", "team"]}}, {}, False),
    ({"n": {"$in": [1, 2]}}, {"n": 2.0}, True),
    ({"n": {"$in": [1, 2]}}, {"n": True}, False),
    ({"n": {"$in": [True]}}, {"n": 1}, False),
    ({"n": {"$in": [True]}}, {"n": True}, True),
    ({"n": {"$in": [0]}}, {"n": False}, False),
    ({"x": {"$in": [None]}}, {}, True),
    ({"tags": {"$in": ["a", "b"]}}, {"tags": ["x", "b"]}, True),
    ({"tags": {"$in": ["a", "b"]}}, {"tags": ["x", "y"]}, False),
    ({"tags": {"$in": [1]}}, {"tags": [True, [1]]}, False),
    ({"tags": {"$in": ["a"]}}, {"tags": {"a": 1}}, False),
    ({"plan": {"$nin": ["pro", "team"]}}, {"plan": "free"}, True),
    ({"plan": {"$nin": ["pro", "team"]}}, {"plan": "pro"}, False),
    ({"plan": {"$nin": ["pro"]}}, {}, True),
    ({"tags": {"$nin": ["a"]}}, {"tags": ["b", "a"]}, False),
    # $all
    ({"tags": {"$all": ["a", "b"]}}, {"tags": ["c", "b", "a"]}, True),
    ({"tags": {"$all": ["a", "z"]}}, {"tags": ["a", "b"]}, False),
    ({"tags": {"$all": ["a"]}}, {"tags": "a"}, False),
    ({"nums": {"$all": [{"$gt": 5}, 1]}}, {"nums": [1, 7]}, True),
    ({"nums": {"$all": [{"$gt": 5}, 1]}}, {"nums": [1, 3]}, False),
    # $elemMatch, on object fields and on scalar elements
    ({"items": {"$elemMatch": {"sku": "x", "qty": {"$gt": 1}}}}, {"items": [{"sku": "x", "qty": 2}]}, True),
    (
        {"items": {"$elemMatch": {"sku": "x", "qty": {"$gt": 1}}}},
        {"items": [{"sku": "x", "qty": 1}, {"sku": "y", "qty": 5}]},
        False,
    ),
    ({"items": {"$elemMatch": {"$or": [{"a": 1}, {"b": 1}]}}}, {"items": [{"b": 1}]}, True),
    ({"items": {"$elemMatch": {"sku": "x"}}}, {"items": ["x", None, 3]}, False),
    ({"nums": {"$elemMatch": {"$gt": 10}}}, {"nums": [1, 11]}, True),
    ({"nums": {"$elemMatch": {"$gt": 10}}}, {"nums": [1, 9]}, False),
    ({"nums": {"$elemMatch": {"$gt": 10}}}, {"nums": 11}, False),
    ({"nums": {"$elemMatch": {"$exists": False}}}, {"nums": [None]}, False),
    # $size
    ({"tags": {"$size": 2}}, {"tags": ["a", "b"]}, True),
    ({"tags": {"$size": 2}}, {"tags": ["a"]}, False),
    ({"tags": {"$size": {"$gte": 2}}}, {"tags": [1, 2, 3]}, True),
    ({"tags": {"$size": {"$gte": 2}}}, {"tags": [1]}, False),
    ({"tags": {"$size": 2}}, {"tags": "ab"}, False),
    # $exists
    ({"x": {"$exists": True}}, {"x": 0}, True),
    ({"x": {"$exists": True}}, {"x": None}, False),
    ({"x": {"$exists": True}}, {}, False),
    ({"x": {"$exists": False}}, {}, True),
    ({"x": {"$exists": False}}, {"x": ""}, False),
    # $type
    ({"x": {"$type": "string"}}, {"x": "a"}, True),
    ({"x": {"$type": "string"}}, {"x": 1}, False),
    ({"x": {"$type": "number"}}, {"x": 1.5}, True),
    ({"x": {"$type": "number"}}, {"x": True}, False),
    ({"x": {"$type": "boolean"}}, {"x": False}, True),
    ({"x": {"$type": "array"}}, {"x": [1]}, True),
    ({"x": {"$type": "array"}}, {"x": {"a": 1}}, False),
    ({"x": {"$type": "object"}}, {"x": {"a": 1}}, True),
    ({"x": {"$type": "null"}}, {"x": None}, True),
    ({"x": {"$type": "null"}}, {}, False),
    ({"x": {"$type": "undefined"}}, {}, True),
    ({"x": {"$type": "undefined"}}, {"x": None}, False),
    ({"x": {"$type": "undefined", "$exists": False}}, {}, True),
    ({"x": {"$not": {"$type": "undefined"}}}, {"x": None}, True),
    # $regex
    ({"email": {"$regex": r"@example\.com$"}}, {"email": "a@example.com"}, True),
    ({"email": {"$regex": r"@example\.com$"}}, {"email": "a@example.org"}, False),
    ({"email": {"$regex": "^1"}}, {"email": 123}, False),
    ({"email": {"$regex": "a"}}, {}, False),
    # $not on a value
    ({"plan": {"$not": {"$in": ["free"]}}}, {"plan": "pro"}, True),
    ({"plan": {"$not": {"$in": ["free"]}}}, {"plan": "free"}, False),
    ({"meta": {"$not": {"a": 1}}}, {"meta": {"a": 2}}, True),
    # condition-level combinators
    ({"$or": [{"a": 1}, {"b": 2}]}, {"b": 2}, True),
    ({"$or": [{"a": 1}, {"b": 2}]}, {"a": 2, "b": 1}, False),
    ({"$or": []}, {}, True),
    ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 2}, True),
    ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1}, False),
    ({"$and": []}, {}, True),
    ({"$nor": [{"a": 1}, {"b": 2}]}, {"a": 3}, True),
    ({"$nor": [{"a": 1}, {"b": 2}]}, {"b": 2}, False),
    ({"$nor": []}, {}, False),
    ({"$not": {"a": 1}}, {"a": 2}, True),
    ({"$not": {"a": 1}}, {"a": 1}, False),
    ({"$or": [{"a": 1}], "b": 2}, {"a": 1, "b": 3}, False),
    ({"$or": [{"$and": [{"a": 1}, {"b": 1}]}, {"c": 1}]}, {"a": 1, "b": 1}, True),
    # dotted paths
    ({"user.country": "US"}, {"user": {"country": "US"}}, True),
    ({"user.country": "US"}, {"user": {"country": "FR"}}, False),
    ({"user.country": "US"}, {"user": "US"}, False),
    ({"user.country": "US"}, {}, False),
    ({"user.address.city": {"$in": ["Paris"]}}, {"user": {"address": {"city": "Paris"}}}, True),
    ({"user.country": {"$exists": False}}, {"user": None}, True),
    ({"user.country": {"$type": "undefined"}}, {"user": {}}, True),
    ({"tags.length": {"$gt": 1}}, {"tags": ["a", "b"]}, True),
    ({"items.0.id": "a"}, {"items": [{"id": "a"}]}, True),
    ({"items.1.id": "a"}, {"items": [{"id": "a"}]}, False),
    ({"items.01.id": "a"}, {"items": [{"id": "x"}, {"id": "a"}]}, False),
    # empty operator object and empty condition
    ({"x": {}}, {"x": 5}, True),
    ({}, {}, True),
]


@pytest.mark.parametrize(("spec", "attributes", "expected"), CASES)
def test_operator_semantics(spec: dict[str, Any], attributes: dict[str, Any], expected: bool) -> None:
    assert matches(spec, attributes) is expected


VERSIONS = [
    ("$veq", "1.2.3", "1.2.3", True),
    ("$veq", "v1.2.3+build.7", "1.2.3", True),
    ("$veq", "1.2.3", "1.2.4", False),
    ("$vne", "1.2.3", "1.2.4", True),
    ("$vne", "1.2.3", "1.2.3", False),
    ("$vgt", "1.10.0", "1.9.0", True),
    ("$vgt", "1.9.0", "1.10.0", False),
    ("$vgt", "1.2.3", "1.2.3-rc.1", True),
    ("$vgt", "1.2.3-rc.2", "1.2.3-rc.1", True),
    ("$vgt", "1.2.3-rc.10", "1.2.3-rc.9", True),
    ("$vgt", "1.2.3-beta", "1.2.3-alpha", True),
    ("$vgt", "1.2.3-alpha", "1.2.3-1", True),
    ("$vgt", "1.2.3-alpha.1", "1.2.3-alpha", True),
    ("$vgt", "2.0.0-alpha", "1.99.99", True),
    ("$vgte", "1.2.3", "1.2.3", True),
    ("$vgte", "1.2.2", "1.2.3", False),
    ("$vlt", "1.0.0-beta", "1.0.0", True),
    ("$vlt", "1.0.0", "1.0.0", False),
    ("$vlte", "1.0.0", "1.0.0", True),
    ("$vlte", "1.0.1", "1.0.0", False),
    ("$vlt", "v1.2", "1.2.1", True),
    ("$vgt", "123456.0.0", "99999.0.0", True),
]


@pytest.mark.parametrize(("op", "actual", "bound", "expected"), VERSIONS)
def test_semver_operators(op: str, actual: str, bound: str, expected: bool) -> None:
    assert matches({"v": {op: bound}}, {"v": actual}) is expected


@pytest.mark.parametrize("actual", ["abc", "1.2.x", "", "1.2.3-", None, 1.2, ["1.2.3"]])
def test_unreadable_or_missing_versions_fail_except_vne(actual: Any) -> None:
    for op in ("$veq", "$vgt", "$vgte", "$vlt", "$vlte"):
        assert matches({"v": {op: "1.0.0"}}, {"v": actual}) is False
    assert matches({"v": {"$vne": "1.0.0"}}, {"v": actual}) is True
    assert matches({"v": {"$vne": "1.0.0"}}, {}) is True


versions = st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=4)


@given(versions, versions)
def test_vgt_agrees_with_tuple_ordering(a: list[int], b: list[int]) -> None:
    left, right = ".".join(map(str, a)), ".".join(map(str, b))
    assert matches({"v": {"$vgt": right}}, {"v": left}) is (tuple(a) > tuple(b))
    assert matches({"v": {"$veq": right}}, {"v": left}) is (tuple(a) == tuple(b))


@given(versions, st.text("abc", min_size=1, max_size=3))
def test_prerelease_sorts_before_its_release(core: list[int], tag: str) -> None:
    release = ".".join(map(str, core))
    assert matches({"v": {"$vlt": release}}, {"v": f"{release}-{tag}"})
    assert matches({"v": {"$vgt": f"{release}-{tag}"}}, {"v": release})


def test_string_ordering_follows_javascript_utf16() -> None:
    # "😀" is U+1F600, above U+FFFD by code point, but its UTF-16 surrogates sort below it.
    assert matches({"s": {"$lt": "\ufffd"}}, {"s": "😀"})
    assert matches({"s": {"$gt": "a"}}, {"s": "é"})


def test_tuples_count_as_arrays() -> None:
    assert matches({"roles": {"$in": ["admin"]}}, {"roles": ("user", "admin")})
    assert matches({"roles": {"$size": 2}}, {"roles": ("user", "admin")})
    assert matches({"roles": ["a", "b"]}, {"roles": ("a", "b")})


def test_object_equality_ignores_key_order() -> None:
    assert matches({"meta": {"a": 1, "b": 2}}, {"meta": {"b": 2, "a": 1}})


def test_str_enum_attributes_compare_as_strings() -> None:
    from enum import StrEnum

    class Plan(StrEnum):
        PRO = "pro"

    assert matches({"plan": "pro"}, {"plan": Plan.PRO})
    assert matches({"plan": {"$in": ["pro"]}}, {"plan": Plan.PRO})


def test_attributes_may_be_any_mapping() -> None:
    frozen = MappingProxyType({"plan": "pro", "user": MappingProxyType({"country": "FR"})})
    assert matches({"plan": "pro", "user.country": "FR"}, frozen)


class Hostile:
    def __eq__(self, other: object) -> bool:
        raise RuntimeError("boom")

    def __hash__(self) -> int:
        raise RuntimeError("boom")

    def __lt__(self, other: object) -> bool:
        raise RuntimeError("boom")


@pytest.mark.parametrize("attributes", [None, 42, "plan", ["plan"], {"plan": Hostile()}])
def test_evaluation_never_raises_on_hostile_input(attributes: Any) -> None:
    for spec in ({"plan": "pro"}, {"plan": {"$in": ["pro"]}}, {"plan": {"$gt": 1}}):
        assert compile_condition(spec)(attributes) is False


def test_compiled_condition_reports_spec_and_attribute_names() -> None:
    spec = {
        "plan": "pro",
        "user.country": "FR",
        "$or": [{"intent": "refund"}, {"$not": {"beta": True}}],
        "items": {"$elemMatch": {"sku": "x"}},
    }
    condition = compile_condition(spec)
    assert isinstance(condition, CompiledCondition)
    assert condition.spec == spec
    assert condition.attributes == frozenset({"plan", "user", "intent", "beta", "items"})


def test_compiled_conditions_compare_and_hash_by_spec() -> None:
    a, b = compile_condition({"plan": "pro"}), compile_condition({"plan": "pro"})
    assert a == b
    assert hash(a) == hash(b)
    assert a != compile_condition({"plan": "free"})


def test_changing_the_spec_after_compiling_changes_nothing() -> None:
    spec: dict[str, Any] = {"meta": {"a": [1]}, "plan": {"$in": ["pro"]}}
    condition = compile_condition(spec)
    spec["meta"]["a"].append(2)
    spec["plan"]["$in"].append("free")
    assert condition({"meta": {"a": [1]}, "plan": "pro"})
    assert not condition({"meta": {"a": [1]}, "plan": "free"})


def test_always_and_empty_spec_match_everything() -> None:
    assert ALWAYS({}) and ALWAYS({"plan": "x"})
    assert ALWAYS.attributes == frozenset()
    empty = compile_condition({})
    assert empty({}) and empty({"anything": [1]})
    assert empty.attributes == frozenset()


ERRORS: list[tuple[Any, str, Any]] = [
    ({"plan": {"$foo": 1}}, "when.plan.$foo", 1),
    ({"$foo": 1}, "when.$foo", 1),
    ({"$in": ["a"]}, "when.$in", ["a"]),
    ({"plan": {"$in": "free"}}, "when.plan.$in", "free"),
    ({"plan": {"$nin": 3}}, "when.plan.$nin", 3),
    ({"tags": {"$all": "a"}}, "when.tags.$all", "a"),
    ({"plan": {"$in": ["a", {"b": 1}]}}, "when.plan.$in[1]", {"b": 1}),
    ({"$and": {"a": 1}}, "when.$and", {"a": 1}),
    ({"$or": [1]}, "when.$or", [1]),
    ({"$nor": "x"}, "when.$nor", "x"),
    ({"$or": [{"plan": {"$foo": 2}}]}, "when.$or[0].plan.$foo", 2),
    ({"plan": {"$or": [{"a": 1}]}}, "when.plan.$or", [{"a": 1}]),
    ({"plan": {"$not": "free"}}, "when.plan.$not", "free"),
    ({"$not": ["a"]}, "when.$not", ["a"]),
    ({"x": {"$exists": 1}}, "when.x.$exists", 1),
    ({"x": {"$type": "int"}}, "when.x.$type", "int"),
    ({"x": {"$regex": 5}}, "when.x.$regex", 5),
    ({"x": {"$regex": "("}}, "when.x.$regex", "("),
    ({"plan": {"$in": ["a"], "x": 1}}, "when.plan", {"$in": ["a"], "x": 1}),
    ({"x": {"$gt": [1]}}, "when.x.$gt", [1]),
    ({"x": {"$gt": True}}, "when.x.$gt", True),
    ({"x": {"$eq": [1]}}, "when.x.$eq", [1]),
    ({"x": {"$size": "2"}}, "when.x.$size", "2"),
    ({"x": {"$elemMatch": [1]}}, "when.x.$elemMatch", [1]),
    ({"x": {"$elemMatch": {"$foo": 1}}}, "when.x.$elemMatch.$foo", 1),
    ({"v": {"$vgt": "latest"}}, "when.v.$vgt", "latest"),
    ({"v": {"$veq": 2}}, "when.v.$veq", 2),
    ({"user..country": "FR"}, "when.user..country", "user..country"),
    (["plan"], "when", ["plan"]),
]


@pytest.mark.parametrize(("spec", "path", "value"), ERRORS)
def test_compile_errors_name_path_and_value(spec: Any, path: str, value: Any) -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition(spec)
    assert caught.value.path == path
    assert caught.value.value == value
    assert path in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_compile_error_path_starts_from_the_given_path() -> None:
    with pytest.raises(ConditionError) as caught:
        compile_condition({"plan": {"$bad": 1}}, path="flags.coordinator.rules[0].when")
    assert caught.value.path == "flags.coordinator.rules[0].when.plan.$bad"


# Conditions whose meaning turnout shares with GrowthBook exactly.
PARITY: list[tuple[dict[str, Any], dict[str, Any]]] = [
    ({"plan": "free"}, {"plan": "free"}),
    ({"plan": "free"}, {"plan": "pro"}),
    ({"plan": "free"}, {}),
    ({"n": 1}, {"n": True}),
    ({"n": 1}, {"n": 1.0}),
    ({"x": None}, {}),
    ({"meta": {"a": [1, 2]}}, {"meta": {"a": [1, 2]}}),
    ({"age": {"$gt": 18}}, {"age": 20}),
    ({"age": {"$gt": 18}}, {"age": "abc"}),
    ({"age": {"$gte": 18, "$lt": 65}}, {"age": 65}),
    ({"name": {"$lt": "m"}}, {"name": "alice"}),
    ({"s": {"$lt": "\ufffd"}}, {"s": "😀"}),
    ({"plan": {"$in": ["a", "b"]}}, {"plan": "b"}),
    ({"tags": {"$in": ["a", "b"]}}, {"tags": ["x", "a"]}),
    ({"n": {"$in": [1, 2]}}, {"n": True}),
    ({"x": {"$in": [None]}}, {}),
    ({"n": {"$nin": [1]}}, {}),
    ({"plan": {"$ne": "free"}}, {}),
    ({"tags": {"$all": ["a", "b"]}}, {"tags": ["a", "b", "c"]}),
    ({"tags": {"$all": ["a", "z"]}}, {"tags": ["a", "b"]}),
    ({"items": {"$elemMatch": {"price": {"$gt": 10}}}}, {"items": [{"price": 5}, {"price": 20}]}),
    ({"nums": {"$elemMatch": {"$gt": 10}}}, {"nums": [1, 11]}),
    ({"tags": {"$size": 2}}, {"tags": ["a", "b"]}),
    ({"tags": {"$size": {"$gt": 2}}}, {"tags": ["a", "b"]}),
    ({"x": {"$exists": False}}, {}),
    ({"x": {"$exists": True}}, {"x": 0}),
    ({"x": {"$type": "number"}}, {"x": 1.5}),
    ({"x": {"$type": "boolean"}}, {"x": 1}),
    ({"email": {"$regex": r"@example\.com$"}}, {"email": "a@example.com"}),
    ({"email": {"$regex": "^1"}}, {"email": 123}),
    ({"plan": {"$not": {"$in": ["free"]}}}, {"plan": "pro"}),
    ({"$or": [{"a": 1}, {"b": 2}]}, {"b": 2}),
    ({"$nor": [{"a": 1}, {"b": 2}]}, {"b": 2}),
    ({"$and": [{"a": 1}, {"b": 2}]}, {"a": 1, "b": 2}),
    ({"$not": {"a": 1}}, {"a": 2}),
    ({"$or": []}, {}),
    ({"$nor": []}, {}),
    ({"user.country": "US"}, {"user": {"country": "US"}}),
    ({"user.country": "US"}, {"user": "US"}),
    ({"tags.length": {"$gt": 1}}, {"tags": ["a", "b"]}),
    ({"items.0.id": "a"}, {"items": [{"id": "a"}]}),
    ({"v": {"$vgt": "1.2.3"}}, {"v": "1.10.0"}),
    ({"v": {"$vlt": "1.0.0"}}, {"v": "1.0.0-beta"}),
    ({"v": {"$veq": "v1.2.3+build"}}, {"v": "1.2.3"}),
    ({"v": {"$vne": "1.2.3"}}, {}),
    ({"x": {}}, {"x": 5}),
]


@pytest.mark.parametrize(("spec", "attributes"), PARITY)
def test_agrees_with_growthbook(spec: dict[str, Any], attributes: dict[str, Any]) -> None:
    assert matches(spec, attributes) is evalCondition(attributes, spec)


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
    | st.sampled_from(["pro", "free", "a", "b", "FR", "1.2.3", "2.0.0-rc.1", "x@example.com"])
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(["sku", "qty", "country", "a", "b"]), inner, max_size=3)
    ),
    max_leaves=12,
)
KEYS = ["plan", "age", "tags", "user", "items", "v", "x", "email"]
attribute_dicts = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), json_values, max_size=6)

# Semver and `$type` are left out of the random parity check: those are where turnout
# deliberately differs (unreadable versions, "undefined").
SHARED_SPECS: list[dict[str, Any]] = [
    {"plan": "pro"},
    {"plan": {"$in": ["pro", "free", 1, True, None]}},
    {"plan": {"$nin": ["pro", 0, False]}},
    {"plan": {"$ne": "pro"}, "age": {"$gte": 18}},
    {"age": {"$gt": 18, "$lte": 65.5}},
    {"email": {"$lt": "m"}},
    {"tags": {"$all": ["a", {"$gt": 3}]}},
    {"tags": {"$size": {"$lt": 3}}},
    {"tags": {"$elemMatch": {"$in": ["a", "b"]}}},
    {"items": {"$elemMatch": {"sku": "a", "qty": {"$gt": 0}}}},
    {"x": {"$exists": False}},
    {"x": [1, "a"]},
    {"email": {"$regex": "^x@"}},
    {"user.country": {"$in": ["FR"]}},
    {"$or": [{"plan": "pro"}, {"$nor": [{"age": {"$lt": 3}}]}]},
    {"$not": {"plan": {"$not": {"$exists": True}}}},
]
ALL_SPECS: list[dict[str, Any]] = [
    *SHARED_SPECS,
    {"v": {"$vgte": "1.2.0"}, "x": {"$type": "undefined"}},
    {"v": {"$vne": "2.0.0-rc.1"}},
    {"x": {"$type": "object"}},
    {},
]
SHARED = [compile_condition(s) for s in SHARED_SPECS]
ALL = [compile_condition(s) for s in ALL_SPECS]


@given(attribute_dicts)
def test_random_attributes_never_raise_and_give_bools(attributes: dict[str, Any]) -> None:
    for condition in ALL:
        assert isinstance(condition(attributes), bool)


@given(attribute_dicts)
def test_random_attributes_agree_with_growthbook(attributes: dict[str, Any]) -> None:
    for spec, condition in zip(SHARED_SPECS, SHARED, strict=True):
        assert condition(attributes) is evalCondition(attributes, spec), spec
