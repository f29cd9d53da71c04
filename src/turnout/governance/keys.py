"""Virtual keys: how they are made, and the one-way form in which they are stored.

A key is ``sk-`` plus 32 url-safe characters from `secrets.token_urlsafe` (192 random bits, more
than LiteLLM's 128, in the shape its clients expect). The store keeps only its SHA-256 digest in
hex, LiteLLM's ``hash_token``: a key shown once at creation cannot be read back from a database
dump. A fast hash is enough for random keys of this length (slow password hashes defend
low-entropy secrets, and would cost every request a key lookup's worth of CPU). When a pepper is
configured the digest is an HMAC-SHA256 under it instead, so that a stolen database alone does
not even let keys be checked offline; the price is that digests made under one pepper do not
match under another, nor LiteLLM's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Final

from turnout.secrets import Secret

#: Every virtual key (and LiteLLM's master key) starts with it.
KEY_PREFIX: Final = "sk-"
#: Random bytes in a generated key.
KEY_BYTES: Final = 24


def generate_key() -> str:
    """A new virtual key: ``sk-`` and `KEY_BYTES` random bytes, url-safe base64."""
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def abbreviate(key: str) -> str:
    """The key's display name, as LiteLLM shows it (``sk-...sBDQ``): enough to recognise a key
    in a list, never enough to use or guess it."""
    return f"{KEY_PREFIX}...{key[-4:]}"


class KeyHasher:
    """Turns a presented key into the digest it is stored and looked up under."""

    __slots__ = ("_pepper",)

    def __init__(self, pepper: Secret | None = None) -> None:
        self._pepper = pepper.reveal().encode() if pepper else None

    @property
    def peppered(self) -> bool:
        return self._pepper is not None

    def digest(self, key: str) -> str:
        """The hex digest of `key`: SHA-256, or HMAC-SHA256 under the pepper."""
        if self._pepper is None:
            return hashlib.sha256(key.encode()).hexdigest()
        return hmac.new(self._pepper, key.encode(), hashlib.sha256).hexdigest()
