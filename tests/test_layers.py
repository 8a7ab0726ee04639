"""The floor of the layering (config, context, decision, types, errors) imports nothing above it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "turnout"
# Leaf helpers the floor may use: they import no turnout module at all.
LEAVES = {"turnout.limits", "turnout.redact"}
FLOOR = {"turnout.config", "turnout.context", "turnout.decision", "turnout.types", "turnout.errors"}


def _turnout_imports(path: Path) -> set[str]:
    """Every turnout module a file imports, at module level, in functions and under TYPE_CHECKING."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("turnout"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("turnout"))
    return found


@pytest.mark.parametrize("module", sorted(FLOOR | LEAVES))
def test_the_floor_imports_only_the_floor(module: str) -> None:
    path = SRC / f"{module.removeprefix('turnout.')}.py"
    allowed = set() if module in LEAVES else FLOOR | LEAVES
    assert _turnout_imports(path) <= allowed


def test_importing_the_floor_loads_nothing_above_it() -> None:
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in sorted(FLOOR))
        + "print(' '.join(m for m in sys.modules if m.startswith('turnout.')))"
    )
    # The package's __init__ re-exports the public API, so the floor modules are loaded by path.
    loader = (
        "import sys, types\n"
        f"package = types.ModuleType('turnout'); package.__path__ = [{str(SRC)!r}]\n"
        "sys.modules['turnout'] = package\n"
    )
    out = subprocess.run([sys.executable, "-c", loader + code], capture_output=True, text=True, check=True)
    assert set(out.stdout.split()) <= FLOOR | LEAVES


def test_condition_errors_are_still_config_errors_with_their_path() -> None:
    from turnout.config import validate_config
    from turnout.errors import ConfigError

    flag = {
        "variants": ["a", "b"],
        "default": "a",
        "rules": [{"when": {"plan": {"$bogus": 1}}, "serve": "b"}],
    }
    with pytest.raises(ConfigError) as info:
        validate_config({"flags": {"f": flag}})
    (issue,) = info.value.issues
    assert issue.path.startswith("flags.f.rules[0].when")
