"""Targeting conditions: GrowthBook's MongoDB-style operators, compiled once into closures."""

from __future__ import annotations

import contextlib
import copy
import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Final

from turnout.config import register_condition_checker
from turnout.errors import ConditionError
from turnout.limits import depth_message, too_deep
from turnout.regex_guard import compile_search

Attributes = Mapping[str, Any]
_Pred = Callable[[Any], bool]
_Cond = Callable[[Attributes], bool]


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    """A targeting condition compiled once; calling it never raises."""

    spec: Mapping[str, Any] = field(hash=False)
    attributes: frozenset[str]
    _evaluate: _Cond = field(repr=False, compare=False)
    on_error: Callable[[Exception], object] | None = field(default=None, repr=False, compare=False)
    """Told of an error while evaluating (a `$regex` past its time budget); the condition fails."""

    def __call__(self, attributes: Attributes) -> bool:
        """Whether `attributes` match; any error or type mismatch is False."""
        try:
            return self._evaluate(attributes) is True
        except Exception as exc:
            if self.on_error is not None:
                with contextlib.suppress(Exception):
                    self.on_error(exc)
            return False


# An absent attribute behaves as null everywhere except `$type`, which (like the JS SDK)
# tells "undefined" from "null"; only value conditions that use `$type` ever see this.
_MISSING: Final = object()
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})
_ARRAY = (list, tuple)
_SCALAR = (str, int, float, bool, type(None))
_COMBINERS = frozenset({"$and", "$or", "$nor"})
_TYPES = frozenset({"string", "number", "boolean", "array", "object", "null", "undefined"})
_ORDER = {"$gt": operator.gt, "$gte": operator.ge, "$lt": operator.lt, "$lte": operator.le}
_VERSION_ORDER = {
    "$veq": operator.eq,
    "$vne": operator.ne,
    "$vgt": operator.gt,
    "$vgte": operator.ge,
    "$vlt": operator.lt,
    "$vlte": operator.le,
}
_VERSION = re.compile(r"[vV]?([0-9]+(?:\.[0-9]+)*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]*)?")


def _true(_: Any) -> bool:
    return True


ALWAYS: Final = CompiledCondition(MappingProxyType({}), frozenset(), _true)


def compile_condition(
    spec: Mapping[str, Any],
    *,
    path: str = "when",
    on_error: Callable[[Exception], object] | None = None,
) -> CompiledCondition:
    """Validate `spec` and compile it; raises `ConditionError` naming the bad part.

    `on_error` is told of errors while evaluating (the condition then does not match).
    """
    deep = too_deep(spec, path)
    if deep is not None:
        raise ConditionError(deep, "...", depth_message())
    names: set[str] = set()
    evaluate = _condition(spec, path, names)
    return CompiledCondition(spec, frozenset(names), evaluate, on_error) if spec else ALWAYS


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _ARRAY):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "undefined" if value is _MISSING else "unknown"


def _json_equal(a: Any, b: Any) -> bool:
    # JSON equality: 1 != true, 1 == 1.0; object key order does not matter.
    kind = _kind(a)
    if kind != _kind(b):
        return False
    if kind == "array":
        return len(a) == len(b) and all(map(_json_equal, a, b))
    if kind == "object":
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    return bool(a == b)


def _all_of(preds: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    if not preds:
        return _true
    if len(preds) == 1:
        return preds[0]
    if len(preds) == 2:
        first, second = preds
        return lambda x: first(x) and second(x)
    frozen = tuple(preds)
    return lambda x: all(p(x) for p in frozen)


def _any_of(preds: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    if len(preds) < 2:
        # An empty $or passes, as in GrowthBook (so an empty $nor fails).
        return preds[0] if preds else _true
    frozen = tuple(preds)
    return lambda x: any(p(x) for p in frozen)


def _negate(pred: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda x: not pred(x)


def _condition(spec: Any, path: str, names: set[str]) -> _Cond:
    if not isinstance(spec, Mapping):
        raise ConditionError(path, spec, "a condition must be a mapping of attribute to test")
    preds: list[_Cond] = []
    for key, value in spec.items():
        if not isinstance(key, str):
            raise ConditionError(path, key, "condition keys must be strings")
        here = f"{path}.{key}"
        if key in _COMBINERS:
            if not isinstance(value, list) or not all(isinstance(c, Mapping) for c in value):
                raise ConditionError(here, value, f"{key} takes a list of conditions")
            subs = [_condition(c, f"{here}[{i}]", names) for i, c in enumerate(value)]
            either = _all_of(subs) if key == "$and" else _any_of(subs)
            preds.append(_negate(either) if key == "$nor" else either)
        elif key == "$not":
            if not isinstance(value, Mapping):
                raise ConditionError(here, value, "$not takes a condition")
            preds.append(_negate(_condition(value, here, names)))
        elif key.startswith("$"):
            raise ConditionError(here, value, f"{key!r} is not a condition operator ($and $or $nor $not)")
        else:
            names.add(key.split(".", 1)[0])
            preds.append(_attribute(key, value, here))
    return _all_of(preds)


def _attribute(key: str, test: Any, path: str) -> _Cond:
    segments = key.split(".")
    if not all(segments):
        raise ConditionError(path, key, "attribute path has an empty segment")
    if len(segments) == 1 and type(test) is str:
        # The commonest rule, `{"plan": "free"}`: one lookup and one compare.
        return lambda a: a.get(key) == test
    pred, sees_missing = _value(test, path)
    default: Any = _MISSING if sees_missing else None
    if len(segments) == 1:
        return lambda a: pred(a.get(key, default))
    steps = tuple((s, _index(s)) for s in segments)

    def lookup(a: Attributes) -> bool:
        current: Any = a
        for name, index in steps:
            if isinstance(current, Mapping):
                current = current.get(name, _MISSING)
            elif isinstance(current, _ARRAY) and (name == "length" or 0 <= index < len(current)):
                current = len(current) if name == "length" else current[index]
            else:
                return pred(default)
        return pred(default if current is _MISSING else current)

    return lookup


def _index(segment: str) -> int:
    # Like JS property access, only canonical indices ("0", "12", not "012") reach into lists.
    canonical = segment.isascii() and segment.isdigit() and len(segment) <= 10
    return int(segment) if canonical and (segment == "0" or segment[0] != "0") else -1


def _value(test: Any, path: str) -> tuple[_Pred, bool]:
    """Compile a value test; the flag says whether it tells a missing value from null."""
    if not isinstance(test, Mapping) or not any(_is_op(k) for k in test):
        # GrowthBook treats `{}` as an operator object without operators: it always passes.
        return (_true if isinstance(test, Mapping) and not test else _equals(test)), False
    if not all(_is_op(k) for k in test):
        raise ConditionError(path, test, "cannot mix $-operators and plain keys")
    parts = [_operator(op, operand, f"{path}.{op}") for op, operand in test.items()]
    if not any(sees for _, sees in parts):
        return _all_of([p for p, _ in parts]), False
    preds = [p if sees else _as_null(p) for p, sees in parts]
    return _all_of(preds), True


def _is_op(key: Any) -> bool:
    return isinstance(key, str) and key.startswith("$")


def _as_null(pred: _Pred) -> _Pred:
    return lambda v: pred(None if v is _MISSING else v)


def _equals(expected: Any) -> _Pred:
    if expected is None:
        return lambda v: v is None
    if isinstance(expected, bool):
        return lambda v: v is expected
    if isinstance(expected, str):
        return lambda v: v == expected
    if isinstance(expected, int | float):
        return lambda v: v == expected and v.__class__ is not bool
    frozen = copy.deepcopy(expected)
    return lambda v: _json_equal(v, frozen)


def _operator(op: str, operand: Any, path: str) -> tuple[_Pred, bool]:
    if op in ("$eq", "$ne"):
        if isinstance(operand, list | tuple | Mapping):
            raise ConditionError(path, operand, f"{op} takes a scalar; match lists by value")
        eq = _equals(operand)
        return (eq if op == "$eq" else _negate(eq)), False
    if op in _ORDER:
        return _ordered(_ORDER[op], operand, path), False
    if op in ("$in", "$nin"):
        member = _membership(operand, path)
        return (member if op == "$in" else _negate(member)), False
    if op == "$all":
        if not isinstance(operand, list):
            raise ConditionError(path, operand, "$all takes a list")
        needs = tuple(_value(t, f"{path}[{i}]")[0] for i, t in enumerate(operand))
        return lambda v: isinstance(v, _ARRAY) and all(any(map(n, v)) for n in needs), False
    if op == "$elemMatch":
        return _elem_match(operand, path), False
    if op == "$size":
        if isinstance(operand, bool) or not isinstance(operand, int | Mapping):
            raise ConditionError(path, operand, "$size takes a count or an operator condition")
        size = _value(operand, path)[0]
        return lambda v: isinstance(v, _ARRAY) and size(len(v)), False
    if op == "$exists":
        if not isinstance(operand, bool):
            raise ConditionError(path, operand, "$exists takes true or false")
        return (lambda v: v is not None) if operand else (lambda v: v is None), False
    if op == "$type":
        if not isinstance(operand, str) or operand not in _TYPES:
            raise ConditionError(path, operand, f"$type takes one of {sorted(_TYPES)}")
        return lambda v: _kind(v) == operand, True
    if op == "$regex":
        if not isinstance(operand, str):
            raise ConditionError(path, operand, "$regex takes a pattern string")
        try:
            search = compile_search(operand)
        except ValueError as exc:
            raise ConditionError(path, operand, str(exc)) from None
        # A search past its time budget raises TimeoutError: the condition counts it and fails.
        return lambda v: isinstance(v, str) and search(v), False
    if op == "$not":
        if not isinstance(operand, Mapping):
            raise ConditionError(path, operand, "$not takes a condition mapping")
        inner, sees = _value(operand, path)
        return _negate(inner), sees
    if op in _VERSION_ORDER:
        return _version_test(op, operand, path), False
    if op in _COMBINERS:
        raise ConditionError(path, operand, f"{op} combines conditions; use it at condition level")
    raise ConditionError(path, operand, f"unknown operator {op!r}")


def _ordered(compare: Callable[[Any, Any], bool], bound: Any, path: str) -> _Pred:
    if isinstance(bound, str):
        units, plain = _utf16(bound), bound.isascii()
        return lambda v: (
            isinstance(v, str) and (compare(v, bound) if plain and v.isascii() else compare(_utf16(v), units))
        )
    if isinstance(bound, bool) or not isinstance(bound, int | float) or math.isnan(bound):
        raise ConditionError(path, bound, "comparisons take a number or a string")
    # A NaN attribute compares False with everything, which is what GrowthBook answers too.
    return lambda v: isinstance(v, int | float) and v.__class__ is not bool and compare(v, bound)


def _utf16(text: str) -> Any:
    # JavaScript orders strings by UTF-16 code units; GrowthBook rules were written for that.
    return text.encode("utf-16-be", "surrogatepass")


def _membership(items: Any, path: str) -> _Pred:
    if not isinstance(items, list):
        raise ConditionError(path, items, "expected a list")
    for i, item in enumerate(items):
        if not isinstance(item, _SCALAR):
            raise ConditionError(f"{path}[{i}]", item, "list items must be scalars")
    # Separate sets keep true from matching 1 (Python hashes them alike; JSON does not).
    bools = frozenset(x for x in items if isinstance(x, bool))
    others = frozenset(x for x in items if not isinstance(x, bool))

    def one(v: Any) -> bool:
        if v.__class__ is bool:
            return v in bools
        try:
            return v in others
        except TypeError:  # unhashable: lists and objects never match, as in GrowthBook
            return False

    def member(v: Any) -> bool:
        if v.__class__ is str:
            return v in others
        if isinstance(v, _ARRAY):
            return any(map(one, v))
        return one(v)

    return member


def _elem_match(test: Any, path: str) -> _Pred:
    if not isinstance(test, Mapping):
        raise ConditionError(path, test, "$elemMatch takes a condition mapping")
    if all(_is_op(k) for k in test) and not any(k in _COMBINERS for k in test):
        on_value = _value(test, path)[0]
        return lambda v: isinstance(v, _ARRAY) and any(on_value(x) for x in v if x is not None)
    on_fields = _condition(test, path, set())
    return lambda v: (
        isinstance(v, _ARRAY)
        and any(on_fields(x if isinstance(x, Mapping) else _EMPTY) for x in v if x is not None)
    )


@lru_cache(maxsize=1024)
def _version_key(text: str) -> tuple[Any, ...] | None:
    # The length cap keeps int() away from pathological digit strings.
    match = _VERSION.fullmatch(text) if len(text) <= 256 else None
    if match is None:
        return None
    core = tuple(int(n) for n in match[1].split("."))
    tags = re.split(r"[-.]", match[2]) if match[2] else []
    # A release sorts after its prereleases, whose numeric identifiers sort numerically and
    # before alphanumeric ones (SemVer 2.0 §11).
    return (core, not tags, tuple((0, int(t), "") if t.isdigit() else (1, 0, t) for t in tags))


def _version_test(op: str, operand: Any, path: str) -> _Pred:
    compare, mismatch = _VERSION_ORDER[op], op == "$vne"
    target = _version_key(operand) if isinstance(operand, str) else None
    if target is None:
        raise ConditionError(path, operand, "expected a version string such as '1.2.3'")

    def test(v: Any) -> bool:
        key = _version_key(v) if isinstance(v, str) else None
        # Like $ne, $vne holds for a missing or unreadable version; the others fail.
        return mismatch if key is None else compare(key, target)

    return test


def _check(spec: Any, path: str) -> None:
    compile_condition(spec, path=path)


register_condition_checker(_check)
