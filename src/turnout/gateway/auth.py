"""Who may call the gateway.

An `Authenticator` looks at a request's headers and either returns who is calling (a
`Principal`, which the gateway puts on the router request: never the key itself) or raises
`UnauthorizedError`. Today there is the master key (compared in constant time) or no key at all,
and for /metrics also a separate token for scrapers; virtual keys with budgets slot in as another
authenticator without touching the routes. A key header whose bytes are not UTF-8 is a 401,
whatever the rule.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from typing import Protocol

from turnout.config.server import ServerConfig
from turnout.errors import UnauthorizedError
from turnout.gateway.requests import is_text
from turnout.secrets import Secret
from turnout.wire import Principal

ANONYMOUS = Principal("anonymous")
MASTER = Principal("master")
METRICS = Principal("metrics")


class Authenticator(Protocol):
    def authenticate(self, headers: Mapping[str, str]) -> Principal: ...


#: The headers a client's key may come in.
KEY_HEADERS = ("authorization", "api-key", "x-api-key")


class OpenAccess:
    """No key configured: everyone may call (with key headers that are at least text)."""

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        for name in KEY_HEADERS:
            value = headers.get(name)
            if value is not None:
                _readable(name, value)
        return ANONYMOUS


class KeyRing:
    """Every request must carry one of the keys as a bearer token (or in ``api-key``)."""

    __slots__ = ("_keys", "_principal")

    def __init__(self, keys: Sequence[Secret], principal: Principal) -> None:
        self._keys = tuple(key.reveal().encode() for key in keys)
        self._principal = principal

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        presented = bearer_token(headers)
        if presented is None:
            raise UnauthorizedError(
                "Missing API key: send the gateway key as `Authorization: Bearer <key>`"
            )
        token = presented.encode()
        # Compare against every key, so the time taken does not say which one came close.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(token, key)
        if not matched:
            raise UnauthorizedError("Incorrect API key provided")
        return self._principal


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is not None:
        scheme, _, token = _readable("authorization", value).partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    for name in ("api-key", "x-api-key"):
        key = headers.get(name)
        if key:
            return _readable(name, key).strip() or None
    return None


def _readable(name: str, value: str) -> str:
    """`value`, or a 401 when its bytes were not UTF-8 (aiohttp keeps them as surrogates)."""
    if not is_text(value):
        raise UnauthorizedError(f"The `{name}` header is not valid UTF-8 text")
    return value


def authenticator_for(master_key: Secret | None) -> Authenticator:
    return KeyRing([master_key], MASTER) if master_key else OpenAccess()


def metrics_authenticator(server: ServerConfig) -> Authenticator:
    """Who may read /metrics: anyone with `metrics_public`; else the master key or the metrics
    token, whichever are configured; anyone when neither is."""
    if server.metrics_public:
        return OpenAccess()
    keys = [key for key in (server.master_key, server.metrics_token) if key]
    return KeyRing(keys, METRICS) if keys else OpenAccess()


def presents_key(key: Secret, presented: str) -> bool:
    """Whether `presented` (as typed into a form) is `key`, compared in constant time."""
    return hmac.compare_digest(presented.encode(), key.reveal().encode())


def session_token(key: Secret, purpose: str, expires: int) -> str:
    """A token standing for a session of `purpose` that ends at `expires` (Unix seconds): the
    expiry and an HMAC-SHA256 of both keyed by `key`, never the key. It cannot be turned back
    into the key, and every such token stops matching when the key changes."""
    mac = hmac.new(key.reveal().encode(), f"{purpose}:{expires}".encode(), hashlib.sha256)
    return f"{expires}.{mac.hexdigest()}"


def session_valid(key: Secret, purpose: str, token: str | None, now: float) -> bool:
    """Whether `token` is a `session_token` of `key` for `purpose` that has not ended."""
    if not token:
        return False
    expires, _, _ = token.partition(".")
    if not expires.isdigit() or int(expires) < now:
        return False
    expected = session_token(key, purpose, int(expires))
    return hmac.compare_digest(token.encode(), expected.encode())
