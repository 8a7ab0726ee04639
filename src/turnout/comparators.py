"""Comparators: how a shadow engine's result is judged against the served one.

A comparator is any callable `(served, shadow) -> Agreement | bool | float` (or an awaitable
of one): a bool is a match or a mismatch, a float in [0, 1] a score that matches from the
shadow's `match_score` on. Built in: `exact`, `normalised` (text compared without case,
punctuation or extra whitespace) and `json` (structure and values, key order ignored).
Others come from the `turnout.comparators` entry-point group, from "package.module:attr",
or from `Turnout.add_comparator` (an LLM judge, an embedding similarity...).
"""

from __future__ import annotations

import difflib
import json
import math
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from turnout.errors import TurnoutError

Comparator = Callable[[Any, Any], Any]
"""`(served, shadow)` to an `Agreement`, a bool, a score in [0, 1], or an awaitable of one."""

GROUP = "turnout.comparators"
_MAX_SCORED_CHARS = 5000  # difflib is quadratic at worst: a score never costs more than this


@dataclass(frozen=True, slots=True)
class Agreement:
    """How far a shadow result agrees with the served one: a match or not, and a score in [0, 1]."""

    match: bool
    score: float


def exact(served: Any, shadow: Any) -> Agreement:
    """Equal results match (score 1), anything else does not (score 0)."""
    same = bool(served == shadow)
    return Agreement(same, 1.0 if same else 0.0)


def normalise_text(text: str) -> str:
    """`text` without case, punctuation or runs of whitespace (Unicode-aware)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    spaced = "".join(" " if unicodedata.category(char).startswith("P") else char for char in folded)
    return " ".join(spaced.split())


def normalised(served: Any, shadow: Any) -> Agreement:
    """Texts (also inside dicts and lists) compared after `normalise_text`; the score is their similarity."""
    a, b = _normalise_strings(served), _normalise_strings(shadow)
    if a == b:
        return Agreement(True, 1.0)
    return Agreement(False, _similarity(_as_text(a), _as_text(b)))


def json_structure(served: Any, shadow: Any) -> Agreement:
    """JSON values (or JSON text) compared leaf by leaf; the score is the share of leaves that agree."""
    a, b = dict(_leaves(_parsed(served))), dict(_leaves(_parsed(shadow)))
    paths = a.keys() | b.keys()
    if not paths:
        return Agreement(True, 1.0)
    agreeing = sum(1 for path in paths if path in a and path in b and _same_leaf(a[path], b[path]))
    return Agreement(agreeing == len(paths), agreeing / len(paths))


BUILTIN: Mapping[str, Comparator] = {
    "exact": exact,
    "normalised": normalised,
    "normalized": normalised,
    "json": json_structure,
}


def resolve_comparator(
    name: str,
    registered: Mapping[str, Comparator],
    *,
    block: Iterable[str] = (),
    autoload: bool = True,
) -> Comparator:
    """Comparator `name`: built in, given in code, "module:attr" or a `turnout.comparators` plugin."""
    found = registered.get(name) or BUILTIN.get(name)
    if found is not None:
        return found
    from turnout.plugins import load_plugin

    comparator = load_plugin(GROUP, name, block=block, autoload=autoload)
    if not callable(comparator):
        raise TurnoutError(f"comparator {name!r} is not callable (got {type(comparator).__name__})")
    return comparator  # type: ignore[no-any-return]


def agreement(value: Any, match_score: float) -> Agreement:
    """A comparator's answer as an `Agreement` (a bare score matches from `match_score` on)."""
    if isinstance(value, Agreement):
        return Agreement(bool(value.match), _score(value.score))
    if isinstance(value, bool):
        return Agreement(value, 1.0 if value else 0.0)
    if isinstance(value, int | float):
        score = _score(value)
        return Agreement(score >= match_score, score)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], bool):
        return Agreement(value[0], _score(value[1]))
    raise TypeError(f"a comparator returns an Agreement, a bool or a score, not {type(value).__name__}")


def _score(value: Any) -> float:
    score = float(value)
    if not math.isfinite(score):
        raise ValueError(f"a comparator score must be a finite number in [0, 1], got {value!r}")
    return min(1.0, max(0.0, score))


def _normalise_strings(value: Any) -> Any:
    if isinstance(value, str):
        return normalise_text(value)
    if isinstance(value, Mapping):
        return {key: _normalise_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_normalise_strings(item) for item in value]
    return value


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=repr)


def _similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a[:_MAX_SCORED_CHARS], b[:_MAX_SCORED_CHARS]).ratio()


def _parsed(value: Any) -> Any:
    if isinstance(value, str | bytes):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _leaves(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    if isinstance(value, Mapping) and value:
        for key, item in value.items():
            yield from _leaves(item, f"{path}.{key}")
    elif isinstance(value, list | tuple) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, f"{path}[{index}]")
    else:
        yield path, value


def _same_leaf(a: Any, b: Any) -> bool:
    # JSON's true is not 1, though Python's True == 1.
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    try:
        return bool(a == b)
    except Exception:
        return False
