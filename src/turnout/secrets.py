"""A secret value that never shows itself by accident.

API keys travel inside config objects that get logged, printed in tracebacks and put in error
messages. `Secret` makes the safe thing the default: its `repr` and `str` are redacted, it is
excluded from equality-by-value leaks, and only `reveal()` (called by provider adapters when they
build the upstream request) returns the value.
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

_REDACTED: Final = "**********"


class Secret:
    """A string whose repr and str are redacted; `reveal()` returns the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself: for building upstream requests, nothing else."""
        return self._value

    def fingerprint(self) -> str:
        """A short one-way digest: tells two secrets apart without exposing either."""
        return hashlib.sha256(self._value.encode()).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"Secret('{_REDACTED}')"

    def __str__(self) -> str:
        return _REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)


#: Shapes of API keys that upstream error messages sometimes echo back.
_KEY_SHAPES = re.compile(
    r"(sk-[A-Za-z0-9_\-*]{6,}|gsk_[A-Za-z0-9]{8,}|AKIA[0-9A-Z]{12,}|AIza[0-9A-Za-z_\-]{20,}"
    r"|Bearer\s+[A-Za-z0-9._\-]{8,})"
)


def redact(text: str, *secrets: Secret | None) -> str:
    """`text` with the given secrets, and anything shaped like an API key, blotted out."""
    for secret in secrets:
        if secret:
            value = secret.reveal()
            if len(value) >= 4:
                text = text.replace(value, _REDACTED)
    return _KEY_SHAPES.sub(_REDACTED, text)
