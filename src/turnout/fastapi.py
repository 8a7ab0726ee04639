"""FastAPI style: `Depends(turnout.choose("coordinator"))` gives the chosen engine."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from turnout.decorators import BoundEngine, resolve
from turnout.errors import MissingExtraError

if TYPE_CHECKING:
    from turnout.router import Turnout


def choose(turnout: Turnout, flag: str) -> Callable[..., Awaitable[BoundEngine]]:
    """A dependency deciding `flag` for the request and returning the bound engine."""
    try:
        from starlette.requests import Request
    except ImportError:
        raise MissingExtraError("cli", "starlette", "turnout.choose()") from None

    async def dependency(request: Request) -> BoundEngine:
        owner, context = resolve(turnout, None, request)
        return owner.bind(flag, context)

    dependency.__name__ = f"choose_{flag}"
    # This module's annotations are strings and `Request` is imported here, not at module
    # level, so FastAPI could not resolve "Request" from our globals: hand it the real class.
    dependency.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)],
        return_annotation=BoundEngine,
    )
    return dependency
