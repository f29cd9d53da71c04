"""Who may call the gateway.

An `Authenticator` looks at a request's headers and either returns who is calling or raises
`UnauthorizedError`. Today there is the master key (compared in constant time) or no key at all;
virtual keys with budgets slot in as another authenticator without touching the routes.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from turnout.errors import UnauthorizedError
from turnout.secrets import Secret


@dataclass(frozen=True, slots=True)
class Caller:
    """Who made a request, as far as the gateway knows."""

    name: str


ANONYMOUS = Caller("anonymous")
MASTER = Caller("master")


class Authenticator(Protocol):
    def authenticate(self, headers: Mapping[str, str]) -> Caller: ...


class OpenAccess:
    """No key configured: everyone may call."""

    def authenticate(self, headers: Mapping[str, str]) -> Caller:
        return ANONYMOUS


class MasterKey:
    """Every request must carry the master key as a bearer token (or in ``api-key``)."""

    __slots__ = ("_key",)

    def __init__(self, key: Secret) -> None:
        self._key = key.reveal().encode()

    def authenticate(self, headers: Mapping[str, str]) -> Caller:
        presented = bearer_token(headers)
        if presented is None:
            raise UnauthorizedError(
                "Missing API key: send the gateway key as `Authorization: Bearer <key>`"
            )
        if not hmac.compare_digest(presented.encode(), self._key):
            raise UnauthorizedError("Incorrect API key provided")
        return MASTER


def bearer_token(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is not None:
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        return None
    key = headers.get("api-key") or headers.get("x-api-key")
    return key.strip() if key else None


def authenticator_for(master_key: Secret | None) -> Authenticator:
    return MasterKey(master_key) if master_key else OpenAccess()
