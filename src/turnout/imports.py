"""One importer for every `"package.module:attribute"` a config or a plugin option names."""

from __future__ import annotations

import pkgutil
import sys
from typing import Any, Literal

from turnout.errors import TurnoutError


class ImportTargetError(TurnoutError):
    """A `package.module:attribute` string that does not name an importable object.

    `kind` says what is wrong: `"form"` (not `module:attribute`), `"attribute"` (the module
    loaded but has no such attribute) or `"import"` (the module cannot be imported).
    """

    def __init__(self, message: str, kind: Literal["form", "attribute", "import"]) -> None:
        super().__init__(message)
        self.kind = kind


def resolve(target: str) -> Any:
    """The object `target` names: `"package.module:attribute"`, dotted attributes allowed.

    Only the colon form is accepted, so a typo cannot silently pick a module. The error's
    message is the reason alone (`"no module named 'x'"`); callers say what they were loading.
    """
    module, colon, attribute = target.partition(":")
    if not (module and colon and attribute):
        raise ImportTargetError("must look like 'package.module:attribute'", "form")
    try:
        return pkgutil.resolve_name(target)
    except AttributeError as exc:
        if module in sys.modules:  # the module loaded: the attribute path is what is missing
            raise ImportTargetError(f"{module} has no attribute {attribute!r}", "attribute") from None
        raise ImportTargetError(f"AttributeError: {exc}", "import") from exc
    except Exception as exc:
        # Not only ImportError: a module that raises while importing is a config problem too.
        raise ImportTargetError(f"{type(exc).__name__}: {exc}", "import") from exc
