"""Who may look and who may act: the caller's role from the request's bearer token.

The dashboard takes the role from one function, `RoleOf`, so the admin app can hand it the one
its API uses; `token_roles` is the same scheme on its own (each token's SHA-256 hex digest with
its role, as in `[admin] tokens`).
"""

from __future__ import annotations

import hashlib
import hmac
import importlib
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.requests import Request

if TYPE_CHECKING:
    from turnout.router import Turnout

ROLES = ("read", "write", "admin")
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


class Denied(Exception):
    """A request the dashboard refuses: `status` 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


RoleOf = Callable[[Request], str]
"""The role (`read`, `write` or `admin`) of a request's caller; raises `Denied` otherwise."""


def may(role: str, needed: str) -> bool:
    """Whether `role` is `needed` or above."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)


def token_roles(tokens: Mapping[str, str], *, insecure_local_only: bool = False) -> RoleOf:
    """Roles from bearer tokens: `tokens` maps each token's SHA-256 hex digest to its role.

    Without tokens, `insecure_local_only=True` serves loopback clients as admin and no one else.
    """
    for digest, role in tokens.items():
        if role not in ROLES:
            raise ValueError(f"tokens[{digest[:8]}…]: role {role!r} is not one of {', '.join(ROLES)}")
    if not tokens and not insecure_local_only:
        raise ValueError(
            "the dashboard needs tokens (SHA-256 of each token, with its role) or insecure_local_only"
        )
    known = {digest.lower().encode(): role for digest, role in tokens.items()}

    def role_of(request: Request) -> str:
        if not known:
            if request.client is not None and request.client.host in _LOOPBACK:
                return "admin"
            raise Denied(403, "this dashboard has no tokens and serves loopback clients only")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Denied(401, "missing bearer token: send `Authorization: Bearer <token>`")
        presented = hashlib.sha256(token.strip().encode()).hexdigest().encode()
        found = None
        # Every digest is compared, in constant time, so timing tells nothing about which matched.
        for digest, role in known.items():
            if hmac.compare_digest(presented, digest) and found is None:
                found = role
        if found is None:
            raise Denied(401, "unknown token")
        return found

    return role_of


def admin_roles(turnout: Turnout) -> RoleOf:
    """The admin API's own check (`[admin] tokens`, `TURNOUT_ADMIN_TOKEN`), set up on first use.

    Where the admin API is not installed, or has no token configured, every request is refused
    with 403 and the reason, rather than the app failing to start.
    """
    lock = threading.Lock()
    built: list[tuple[Any, Any]] = []

    def checker() -> tuple[Any, Any]:
        with lock:
            if not built:
                module = importlib.import_module("turnout.admin.auth")
                auth = module.Auth(lambda: _admin_settings(turnout), env=os.environ)
                built.append((auth, module.AuthError))
            return built[0]

    def role_of(request: Request) -> str:
        try:
            auth, auth_error = checker()
        except Exception as exc:  # not installed, or no token configured: say so on each request
            raise Denied(403, f"the dashboard cannot check tokens: {exc}") from None
        client = request.client.host if request.client is not None else None
        try:
            return str(auth.caller(request.headers.get("authorization"), client).role)
        except auth_error as exc:
            raise Denied(int(exc.status), str(exc)) from None

    return role_of


def _admin_settings(turnout: Turnout) -> Any:
    config: Any = turnout.config  # `[admin]` belongs to the admin API, which may not be installed
    return config.admin
