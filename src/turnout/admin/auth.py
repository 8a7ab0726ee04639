"""Bearer tokens with roles for the admin API: hashed at rest, compared in constant time.

Tokens come from `[admin] tokens` (the SHA-256 hex digest of each token, with its role) and
`TURNOUT_ADMIN_TOKEN` (a plain token, role admin). A token is never logged: the audit log
names a caller by the first 8 hex digits of its digest.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import structlog

from turnout.config import AdminConfig
from turnout.errors import TurnoutError

ROLES = ("read", "write", "admin")
ENV_TOKEN = "TURNOUT_ADMIN_TOKEN"
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})
_log = structlog.get_logger("turnout")


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: their role and the name the audit log gives them."""

    role: str
    name: str

    def may(self, role: str) -> bool:
        """Whether this caller's role is `role` or above."""
        return ROLES.index(self.role) >= ROLES.index(role)


class AuthError(TurnoutError):
    """A request the admin API refuses: `status` is 401 (who are you?) or 403 (not allowed)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def token_digest(token: str) -> str:
    """The SHA-256 hex digest of a token: what `[admin] tokens` keys are."""
    return hashlib.sha256(token.encode()).hexdigest()


class Auth:
    """Checks a request's bearer token against the configured ones (read anew on every request)."""

    def __init__(
        self,
        config: Callable[[], AdminConfig],
        *,
        env: Mapping[str, str],
        tokens: Mapping[str, str] | None = None,
        insecure_local_only: bool | None = None,
    ) -> None:
        self._config = config
        self._tokens = tokens
        self._insecure = insecure_local_only
        plain = env.get(ENV_TOKEN, "")
        self._env_digest = token_digest(plain) if plain else None
        if not self.tokens() and not self.insecure_local_only():
            raise TurnoutError(
                "the admin API needs a token: set `[admin] tokens` (SHA-256 of each token, with its role) "
                f"or {ENV_TOKEN}, or `[admin] insecure_local_only = true` to serve loopback clients only"
            )

    def tokens(self) -> dict[str, str]:
        """Configured digests and their roles (the environment's token as role admin)."""
        found = dict(self._tokens if self._tokens is not None else self._config().tokens)
        if self._env_digest is not None:
            found[self._env_digest] = "admin"
        return found

    def insecure_local_only(self) -> bool:
        """Serve without tokens, to loopback clients only."""
        return self._insecure if self._insecure is not None else self._config().insecure_local_only

    def caller(self, authorization: str | None, client: str | None) -> Caller:
        """The caller a request's `Authorization` header names; AuthError (401/403) otherwise."""
        tokens = self.tokens()
        if not tokens:
            if client in _LOOPBACK:
                return Caller("admin", "local")
            raise AuthError(403, "this admin API has no tokens and serves loopback clients only")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthError(401, "missing bearer token: send `Authorization: Bearer <token>`")
        presented = token_digest(token.strip()).encode()
        found: tuple[str, str] | None = None
        # Every digest is compared, in constant time, so timing tells nothing about which matched.
        for digest, role in tokens.items():
            if hmac.compare_digest(presented, digest.encode()) and found is None:
                found = (digest, role)
        if found is None:
            _log.warning("turnout.admin_unauthorized", client=client)
            raise AuthError(401, "unknown token")
        return Caller(found[1], f"token:{found[0][:8]}")


def require(caller: Caller, role: str) -> None:
    """Raise AuthError 403 unless `caller` has `role` or above."""
    if not caller.may(role):
        raise AuthError(403, f"role {caller.role!r} cannot do this; it needs {role!r}")
