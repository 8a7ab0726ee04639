"""What turnout keeps about users and errors: targeting keys raw, hashed or dropped; error texts cut.

One `Privacy` per configuration, shared by the parts that write spans, logs and events.
A hashed key is HMAC-SHA256 with the configured salt: the same user gets the same value in
every process and every store, so joins and per-user statistics still work, but the id
itself is not stored.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from turnout.config import PrivacyConfig
from turnout.redact import redact_text


class Privacy:
    """Applies a `PrivacyConfig` to keys and exception texts."""

    __slots__ = ("_salt", "config", "hash_keys", "keep_keys")

    def __init__(self, config: PrivacyConfig | None = None) -> None:
        self.config = config = config or PrivacyConfig()
        self.keep_keys = config.targeting_key == "raw"
        self.hash_keys = config.targeting_key == "hash"
        self._salt = (config.salt or "").encode()

    def key(self, value: str | None) -> str | None:
        """The targeting key (or a distinct/session id) as it may be stored; None when dropped."""
        if value is None or self.keep_keys:
            return value
        if self.hash_keys:
            return _hmac(self._salt, value)
        return None

    def error_text(self, error: BaseException) -> str:
        """ "Type: message" (cut, credentials masked), or the type alone."""
        message = self.error_message(error)
        return type(error).__name__ if message is None else f"{type(error).__name__}: {message}"

    def error_message(self, error: BaseException) -> str | None:
        """The exception's message as it may be stored (cut, credentials masked); None for type only."""
        if self.config.exception_text == "type":
            return None
        try:
            text = str(error)
        except Exception:  # a broken __str__ must not break the error path
            text = "<unprintable>"
        return redact_text(text)[: self.config.exception_text_length]


@lru_cache(maxsize=4096)
def _hmac(salt: bytes, value: str) -> str:
    return hmac.new(salt, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
