"""The configuration reference, generated from the pydantic models so it cannot drift.

    python -m turnout.config_reference            # rewrite docs/config-reference.md
    python -m turnout.config_reference --check    # exit 1 if the file is out of date

Every key's meaning is the docstring written under its field in `turnout.config`.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from turnout.config import TurnoutConfig, parse_duration

DEFAULT_PATH = Path("docs/config-reference.md")

_HEADER = """# Configuration reference

Every key of a turnout configuration (TOML, JSON, or a dict given to `Turnout({...})`), its
default and what it means. Generated from the configuration models by
`python -m turnout.config_reference` (`make docs`); do not edit by hand. Durations take a
number of seconds or a string: `"500ms"`, `"10s"`, `"5m"`, `"2h"`, `"1d"`, `"1w"`. Any key can
also be set from the environment as `TURNOUT_<SECTION>__<KEY>` (see
[configuration.md](configuration.md)).
"""


class MissingMeaning(ValueError):
    """A configuration key has no docstring to explain it."""


def render() -> str:
    """The whole reference as Markdown; `MissingMeaning` if a key has no docstring."""
    missing = keys_without_meaning()
    if missing:
        raise MissingMeaning(f"keys without a meaning (a docstring under the field): {', '.join(missing)}")
    parts = [_HEADER]
    for title, model in _sections(TurnoutConfig, ""):
        parts.append(_table(title, model))
    return "\n".join(parts)


def keys_without_meaning(model: type[BaseModel] = TurnoutConfig) -> list[str]:
    """Dotted paths of the keys of `model` (nested models included) that have no docstring."""
    return [path for path, field in _fields(model, "") if not (field.description or "").strip()]


def _fields(model: type[BaseModel], prefix: str) -> Iterator[tuple[str, FieldInfo]]:
    """Every field of `model` and of the models inside it, with its dotted path."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{name}"
        yield path, field
        inner = _model_in(field.annotation)
        if inner is not None:
            yield from _fields(inner, f"{path}.")


def _sections(
    model: type[BaseModel], prefix: str, array: str | None = None
) -> Iterator[tuple[str, type[BaseModel]]]:
    """(title, model) for every table, depth first, in declaration order.

    Titles are TOML headers (`[engines.NAME]`, `[[flags.KEY.rules]]`); a table inside an
    array of tables is written inline in TOML, so it is titled as a key of that array.
    """
    for name, field in model.model_fields.items():
        inner = _model_in(field.annotation)
        if inner is None:
            continue
        origin = get_origin(_optional_inner(field.annotation))
        path = f"{prefix}{name}"
        if array is not None:
            title, inside = f"`{name}` in `[[{array}]]`", array
        elif origin is list:
            title, inside = f"`[[{path}]]`", path
        else:
            path = f"{path}.{_placeholder(name)}" if origin is dict else path
            title, inside = f"`[{path}]`", None
        yield title, inner
        yield from _sections(inner, f"{path}.", inside)


def _placeholder(name: str) -> str:
    return {"flags": "KEY", "components": "COMPONENT"}.get(name, "NAME")


def _table(title: str, model: type[BaseModel]) -> str:
    lines = [f"## {title}", ""]
    if model.__doc__:
        lines += [model.__doc__.strip().splitlines()[0], ""]
    lines += ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        if _model_in(field.annotation) is not None and get_origin(_optional_inner(field.annotation)) in (
            dict,
            list,
        ):
            kind = "tables" if get_origin(_optional_inner(field.annotation)) is dict else "array of tables"
            default = "`{}`" if kind == "tables" else "`[]`"
            meaning = f"{field.description} See below."
            lines.append(f"| `{name}` | {kind} | {default} | {meaning} |")
            continue
        if _model_in(field.annotation) is not None:
            default = "none" if field.default is None else ""
            lines.append(f"| `{name}` | table | {default} | {field.description} See below. |")
            continue
        lines.append(f"| `{name}` | {_type(field)} | {_default(field)} | {field.description} |")
    return "\n".join(lines) + "\n"


def _type(field: FieldInfo) -> str:
    if any(getattr(m, "func", None) is parse_duration for m in field.metadata):
        return "duration"
    return _type_name(_optional_inner(field.annotation)).replace("|", "\\|")


def _type_name(annotation: Any) -> str:
    origin = get_origin(annotation)
    if origin is Literal:
        return " | ".join(f'`"{value}"`' for value in get_args(annotation))
    if origin in (list, dict):
        args = get_args(annotation)
        inner = _type_name(args[-1]) if args else "any"
        if origin is list:
            return "list" if inner == "any" else f"list of {inner}"
        if inner == "any":
            return "table"
        return "table of tables" if inner.startswith("table") else f"table of {inner}"
    if origin is Annotated:
        return _type_name(get_args(annotation)[0])
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(arg) for arg in get_args(annotation) if arg is not type(None))
    names = {str: "string", int: "integer", float: "number", bool: "boolean"}
    if annotation in names:
        return names[annotation]
    if getattr(annotation, "__name__", "") == "datetime":
        return "date-time"
    return "any"


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default  # type: ignore[call-arg]
    if value is None or value is PydanticUndefined:
        return "none"
    if isinstance(value, BaseModel):
        return ""
    if _type(field) == "duration":
        return f"`{_duration(float(value))}`"
    return f"`{_toml(value)}`"


def _duration(seconds: float) -> str:
    """`"10s"`, `"365d"`: the largest unit that divides the duration evenly."""
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f'"{seconds / size:g}{unit}"'
    return f'"{seconds * 1000:g}ms"'


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {_toml(item)}" for key, item in value.items()) + "}"
    return str(value)


def _optional_inner(annotation: Any) -> Any:
    """`X` from `X | None`; anything else as it is."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds: itself, or inside `dict[str, Model]` / `list[Model]`."""
    annotation = _optional_inner(annotation)
    if get_origin(annotation) in (dict, list):
        annotation = get_args(annotation)[-1]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Write the reference, or with `--check` compare it with the file; the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m turnout.config_reference", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the models")
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH, help="the file (%(default)s)")
    args = parser.parse_args(argv)
    try:
        text = render()
    except MissingMeaning as exc:
        print(f"config reference: {exc}", file=sys.stderr)
        return 1
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.is_file() else ""
        if current != text:
            print(f"{args.output} is out of date: run `python -m turnout.config_reference`", file=sys.stderr)
            return 1
        return 0
    args.output.write_text(text, encoding="utf-8")
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
