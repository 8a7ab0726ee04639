"""Masking secrets in anything turnout prints: errors, `validate` output, log lines.

A value is secret by the name it is stored under (`api_key`, `openai_api_key`,
`client_secret`, `token`, `password`, `authorization`…), at any depth of nested mappings,
and by its shape in text: the password of a URL's userinfo (`postgresql://app:***@db`),
`?api_key=…` query values, and `'name': 'value'` / `name=value` pairs whose name is secret.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

MASK: Final = "***"
_SECRET_NAME = re.compile(r"(?i)key|secret|token|passw|pwd|authorization|credential|cookie|signature")
_NAME = r"[\w.-]*(?:key|secret|token|passw(?:or)?d|pwd|authorization|credential)[\w.-]*"
_QUERY = re.compile(rf"(?i)([?&]{_NAME}=)[^&#\s'\"]*")
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s'\"]*:)[^@/\s'\"]+@")
_QUOTED_PAIR = re.compile(rf"""(?i)(['"]{_NAME}['"]\s*:\s*)(['"])(?:(?!\2).)*\2""")
_ASSIGNMENT = re.compile(rf"""(?i)(\b{_NAME}\s*=\s*)(['"]?)(?![\d.]+(?:[\s,;)&]|$))[^\s,;)'"&]+\2""")
_HEADER = re.compile(r"(?i)(\bauthorization\s*[:=]\s*)(?:bearer\s+|basic\s+)?[^\s,;'\"]+")
_MAX_DEPTH = 64


def is_secret_name(name: object) -> bool:
    """Whether values stored under `name` are secret (by name alone)."""
    return isinstance(name, str) and _SECRET_NAME.search(name) is not None


def redact_text(text: str) -> str:
    """`text` with credentials masked: URL passwords, secret query values, secret name/value pairs."""
    text = _URL_PASSWORD.sub(rf"\1{MASK}@", text)
    text = _QUERY.sub(rf"\1{MASK}", text)
    text = _QUOTED_PAIR.sub(rf"\1\2{MASK}\2", text)
    text = _HEADER.sub(rf"\1{MASK}", text)
    return _ASSIGNMENT.sub(rf"\1\2{MASK}\2", text)


def redact_value(value: Any, name: object = None, _depth: int = 0) -> Any:
    """A copy of `value` with secrets masked: by the name it is stored under, at any depth.

    Numbers, booleans and None stay as they are even under a secret name (a `max_key_length`
    of 8 is not a secret); strings are searched for credentials by shape.
    """
    if is_secret_name(name) and not isinstance(value, bool | int | float | type(None)):
        return MASK
    if _depth >= _MAX_DEPTH:
        return "..."
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, Mapping):
        return {key: redact_value(item, key, _depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(item, None, _depth + 1) for item in value)
    return value
