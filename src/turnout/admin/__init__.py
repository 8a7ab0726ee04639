"""The admin HTTP API: read and change flags, splits, rollouts and the engine registry over HTTP.

`admin_app(turnout)` is a Starlette app to mount under any path of your app
(`app.mount("/admin", admin_app(turnout))`) or to serve alone (`turnout serve CONFIG`).
`docs/admin.md` explains tokens and roles, overlays and replicas, and the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from turnout.admin.auth import Caller, token_digest
from turnout.errors import TurnoutError

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from turnout.router import Turnout

__all__ = ["Caller", "admin_app", "token_digest"]


def admin_app(
    turnout: Turnout,
    *,
    tokens: Mapping[str, str] | None = None,
    insecure_local_only: bool | None = None,
    env: Mapping[str, str] | None = None,
) -> Starlette:
    """The admin API of `turnout` as a Starlette app.

    Tokens come from `[admin] tokens` (or `tokens`, SHA-256 hex digest → role) and
    `TURNOUT_ADMIN_TOKEN` in `env` (`os.environ` by default). With neither, this raises
    unless `insecure_local_only` is true, which serves loopback clients only.
    """
    try:
        from turnout.admin.app import build_admin_app
    except ImportError as exc:
        if exc.name is None or not exc.name.startswith("starlette"):
            raise
        raise TurnoutError('the admin API needs Starlette: pip install "turnout[cli]"') from None
    return build_admin_app(turnout, tokens=tokens, insecure_local_only=insecure_local_only, env=env)
