"""Every ```python and ```toml block of README.md and docs/*.md runs as written.

The blocks of one page run in order, in one fresh working directory, sharing one namespace:
a later block may use what an earlier one defined. A toml block whose first line is
`# file NAME` is checked as TOML and written to NAME (for a later block to load); any other
toml block must be a valid configuration on its own. A python block whose first line is `# NAME.py` is also
written to that file, so later blocks can import it. Top-level `await` is allowed, and a
comment line `# -> TEXT` in a python block claims that TEXT is part of what the block prints.
`<!-- fragment -->` on the line before a fence leaves the block out.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import io
import os
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from turnout.config import validate_config

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FRAGMENT = "<!-- fragment -->"
_FENCE = re.compile(r"^```(python|toml)\s*$")
_FILE_TOML = re.compile(r"^#\s*file\s+(\S+)")
_CLAIM = re.compile(r"^\s*#\s*->\s*(.+)$", re.MULTILINE)
_FILE_PY = re.compile(r"^#\s*([\w/.-]+\.py)\s*$")


@dataclass(frozen=True)
class Block:
    page: str
    index: int
    line: int
    language: str
    code: str


def blocks(page: Path) -> Iterator[Block]:
    """The runnable blocks of `page`, in order (fragments left out)."""
    lines = page.read_text(encoding="utf-8").splitlines()
    index, number = 0, 0
    while number < len(lines):
        match = _FENCE.match(lines[number])
        if match is None:
            number += 1
            continue
        start = number + 1
        end = start
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        fragment = number > 0 and lines[number - 1].strip() == FRAGMENT
        if not fragment:
            code = "\n".join(lines[start:end]) + "\n"
            yield Block(page.relative_to(ROOT).as_posix(), index, start, match.group(1), code)
            index += 1
        number = end + 1


ALL = [block for page in PAGES for block in blocks(page)]


def run(block: Block, namespace: dict[str, Any]) -> None:
    """Run one block in the current directory."""
    first = block.code.split("\n", 1)[0]
    if block.language == "toml":
        target = _FILE_TOML.match(first)
        if target is not None:
            tomllib.loads(block.code)  # valid TOML, whatever the file is for
            Path(target.group(1)).write_text(block.code, encoding="utf-8")
        else:
            validate_config(tomllib.loads(block.code), source=f"{block.page}:{block.line}")
        return
    module = _FILE_PY.match(first)
    if module is not None:
        Path(module.group(1)).write_text(block.code, encoding="utf-8")
    code = compile(block.code, f"{block.page}:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            asyncio.run(result)
    for claim in _CLAIM.findall(block.code):
        assert claim.strip() in printed.getvalue(), (
            f"the block claims {claim!r}; it printed {printed.getvalue()!r}"
        )


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    # The examples run with no TURNOUT_* settings, but the conftest's model cache.
    for name in [name for name in os.environ if name.startswith("TURNOUT_") and name != "TURNOUT_CACHE_DIR"]:
        monkeypatch.delenv(name)
    modules = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - modules:  # modules a page wrote must not leak into the next
        if getattr(sys.modules[name], "__file__", "") and str(tmp_path) in str(sys.modules[name].__file__):
            del sys.modules[name]


@pytest.mark.parametrize("block", ALL, ids=[f"{b.page}#{b.index}@{b.line}" for b in ALL])
def test_documentation_block_runs(block: Block, workdir: Path) -> None:
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    # The page's earlier blocks first: a block may build on them.
    for earlier in (b for b in ALL if b.page == block.page and b.index < block.index):
        run(earlier, namespace)
    run(block, namespace)


def test_every_page_is_found_and_has_its_fragments_marked() -> None:
    assert any(block.page == "README.md" for block in ALL)
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        # A fragment marker must sit right before a fence, or it marks nothing.
        for match in re.finditer(re.escape(FRAGMENT) + r"\n(.*)", text):
            assert match.group(1).startswith("```"), f"{page.name}: {FRAGMENT} not right before a fence"
