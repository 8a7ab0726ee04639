"""`$regex` patterns from configs: refused when they can backtrack catastrophically, run on a budget.

A pattern such as `^(a+)+$` takes exponential time on a long non-matching value, and a
request's header is such a value. Two defences, because neither alone is enough:

* at load, a pattern whose shape is known to backtrack catastrophically is refused (a
  quantifier that varies nested in one that varies, or alternatives that can start with
  the same character inside a repetition), so the mistake is reported at its config path;
* at evaluation, every search runs with a time budget (the `regex` package's `timeout`);
  a search that runs past it does not match, and the caller counts it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from re import _constants as sre  # type: ignore[attr-defined]
from re import _parser  # type: ignore[attr-defined]
from typing import Any, Final

import regex

SEARCH_BUDGET_S: Final = 0.005
"""How long one `$regex` search may run before it counts as an error and does not match."""

_REPEATS = (sre.MAX_REPEAT, sre.MIN_REPEAT)
_ASCII_DIGITS = frozenset(range(ord("0"), ord("9") + 1))
_ASCII_SPACE = frozenset(map(ord, " \t\n\r\f\v"))
_MAX_RANGE = 4096


class UnsafePattern(ValueError):
    """A pattern whose shape can make a search take exponential time."""


def compile_search(pattern: str, *, budget_s: float = SEARCH_BUDGET_S) -> Callable[[str], bool]:
    """A `search(text) -> matched` for `pattern`; raises ValueError if it is invalid or unsafe.

    The search raises `TimeoutError` when it runs past `budget_s`.
    """
    try:
        parsed = _parser.parse(pattern)
    except (re.error, OverflowError, RecursionError, ValueError) as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None
    ignore_case = bool(parsed.state.flags & re.IGNORECASE)
    try:
        _check(list(parsed), ignore_case)
    except RecursionError:
        raise ValueError("invalid regular expression: groups nested too deeply") from None
    try:
        search = regex.compile(pattern).search
    except (regex.error, OverflowError, RecursionError, ValueError) as exc:
        raise ValueError(f"invalid regular expression: {exc}") from None

    def matches(text: str) -> bool:
        return search(text, timeout=budget_s) is not None

    return matches


def _check(items: list[tuple[Any, Any]], ignore_case: bool) -> None:
    """Refuse the known catastrophic shapes anywhere in `items`."""
    for op, av in items:
        if op in _REPEATS:
            low, high, body = av
            varies = high != low and high > 1
            if varies and _can_match_text(list(body)):
                if _only_repetitions(list(body)):
                    raise UnsafePattern(
                        "a repetition of nothing but a repetition can take exponential time on a long "
                        "value (as in '(a+)+' or '(\\w+\\s?)*'); rewrite it without the nesting, e.g. 'a+'"
                    )
                _check_alternatives(list(body), ignore_case)
            _check(list(body), ignore_case)
        elif op is sre.SUBPATTERN:
            _check(list(av[-1]), ignore_case)
        elif op is sre.BRANCH:
            for branch in av[1]:
                _check(list(branch), ignore_case)
        elif op in (sre.ASSERT, sre.ASSERT_NOT):
            _check(list(av[1]), ignore_case)
        elif op is sre.GROUPREF_EXISTS:
            for part in av[1:]:
                if part is not None:
                    _check(list(part), ignore_case)
        # POSSESSIVE_REPEAT and ATOMIC_GROUP never backtrack into their body: nothing to check.


def _check_alternatives(items: list[tuple[Any, Any]], ignore_case: bool) -> None:
    """Refuse a repeated body whose alternatives (at any group depth) can start alike."""
    for op, av in items:
        if op is sre.SUBPATTERN:
            _check_alternatives(list(av[-1]), ignore_case)
        elif op is sre.BRANCH:
            seen: set[int] = set()
            for branch in av[1]:
                first = _first(list(branch), ignore_case)
                if first is None or first & seen:
                    raise UnsafePattern(
                        "alternatives inside a repetition that can start with the same character can take "
                        "exponential time (as in '(a|aa)+'); use a character class or make them distinct"
                    )
                seen |= first


def _first(items: list[tuple[Any, Any]], ignore_case: bool) -> set[int] | None:
    """The characters a match of `items` can start with, or None if that is not simply known."""
    for op, av in items:
        if op is sre.AT:
            continue  # anchors take no character
        if op is sre.LITERAL:
            return {_fold(av, ignore_case)}
        if op is sre.IN:
            return _class(av, ignore_case)
        if op is sre.SUBPATTERN:
            return _first(list(av[-1]), ignore_case)
        if op in _REPEATS and av[0] >= 1:
            return _first(list(av[2]), ignore_case)
        return None
    return None


def _class(items: Iterable[tuple[Any, Any]], ignore_case: bool) -> set[int] | None:
    codes: set[int] = set()
    for op, av in items:
        if op is sre.LITERAL:
            codes.add(_fold(av, ignore_case))
        elif op is sre.RANGE and av[1] - av[0] <= _MAX_RANGE:
            codes.update(_fold(c, ignore_case) for c in range(av[0], av[1] + 1))
        elif op is sre.CATEGORY and av is sre.CATEGORY_DIGIT:
            codes |= _ASCII_DIGITS  # with non-ASCII digits, still a fair test of overlap
        elif op is sre.CATEGORY and av is sre.CATEGORY_SPACE:
            codes |= _ASCII_SPACE
        else:
            return None
    return codes


def _fold(code: int, ignore_case: bool) -> int:
    return ord(chr(code).lower()) if ignore_case and len(chr(code).lower()) == 1 else code


def _only_repetitions(items: list[tuple[Any, Any]]) -> bool:
    """Whether a repeated body holds a varying repetition and nothing it must always match besides.

    Then the same text splits between the inner and the outer repetition in exponentially many
    ways. A part that must match (a literal, a class, an alternation) usually fixes the split.
    """
    found = False
    for op, av in _flat(items):
        if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
            continue
        if op in _REPEATS:
            low, high, body = av
            if high != low and high > 1 and _can_match_text(list(body)):
                found = True
            elif low >= 1 and _can_match_text(list(body)):
                return False
            continue
        return False
    return found


def _flat(items: list[tuple[Any, Any]]) -> Iterable[tuple[Any, Any]]:
    for op, av in items:
        if op is sre.SUBPATTERN:
            yield from _flat(list(av[-1]))
        else:
            yield op, av


def _can_match_text(items: list[tuple[Any, Any]]) -> bool:
    """Whether `items` can match at least one character (an empty-only body cannot blow up)."""
    for op, av in items:
        if op in (sre.AT, sre.ASSERT, sre.ASSERT_NOT):
            continue
        if op in _REPEATS and av[1] == 0:
            continue
        if op is sre.SUBPATTERN and not _can_match_text(list(av[-1])):
            continue
        return True
    return False
