"""`turnout.imports.resolve`: the one importer of `package.module:attribute` strings."""

from __future__ import annotations

import os.path
import sys
from pathlib import Path

import pytest

from turnout.imports import ImportTargetError, resolve


def test_a_module_attribute_and_a_dotted_path_resolve() -> None:
    assert resolve("os.path:join") is os.path.join
    assert resolve("os:path.join") is os.path.join


@pytest.mark.parametrize("target", ["os.path", "os.path:", ":join", ""])
def test_only_the_colon_form_is_accepted(target: str) -> None:
    with pytest.raises(ImportTargetError, match=r"must look like .package\.module:attribute.") as caught:
        resolve(target)
    assert caught.value.kind == "form"


def test_a_missing_attribute_names_the_module_and_the_attribute() -> None:
    with pytest.raises(ImportTargetError, match=r"os\.path has no attribute .nothing_here.") as caught:
        resolve("os.path:nothing_here")
    assert caught.value.kind == "attribute"


def test_a_missing_module_and_a_module_that_raises_are_import_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ImportTargetError, match="ModuleNotFoundError") as caught:
        resolve("no_such_module_anywhere:thing")
    assert caught.value.kind == "import"
    (tmp_path / "explodes_on_import.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportTargetError, match="RuntimeError: boom at import") as caught:
        resolve("explodes_on_import:anything")
    assert caught.value.kind == "import"
    assert "explodes_on_import" not in sys.modules
