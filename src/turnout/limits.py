"""Bounds on what a configuration document may hold, checked before anything recurses into it.

Parsers, pydantic, `repr` and the condition compiler all recurse; a document nested a few
thousand levels deep would end in `RecursionError` instead of an error naming its place.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

MAX_DEPTH: Final = 64
"""How deeply tables and lists may nest in a configuration (a real one needs fewer than 10)."""


def too_deep(value: Any, path: str, *, limit: int = MAX_DEPTH) -> str | None:
    """The path of the first table or list nested deeper than `limit` in `value`, or None.

    Iterative, so any depth is measured without recursing.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, Mapping):
            children = ((f"{where}.{key}" if where else str(key), child) for key, child in node.items())
        elif isinstance(node, list | tuple):
            children = ((f"{where}[{index}]", child) for index, child in enumerate(node))
        else:
            continue
        if depth >= limit:
            return where or "<root>"
        stack.extend((child, child_path, depth + 1) for child_path, child in children)
    return None


def depth_message(limit: int = MAX_DEPTH) -> str:
    """What a too-deep document is told."""
    return f"nested more than {limit} levels deep"
