"""Responses kept per caller, for ``previous_response_id`` and GET/DELETE: what a store is.

A follow-up turn names the response it continues; the gateway replays that conversation (its
input and output as chat messages) to whichever deployment serves the new turn, so the turn does
not depend on the deployment, or even the provider, that answered the one before it. For the
same reason it must not depend on the process that answered it either: a follow-up lands on any
worker of ``turnout serve --workers N``, or any instance behind a load balancer. So a store is
an interface with three backends (`turnout.gateway.responses_store_choice` picks one): memory,
for a single process (`turnout.gateway.responses_store_memory`); a SQLite file the workers of
one gateway share (`turnout.gateway.responses_store_file`); and Redis, when routing state is
there already, shared by every instance (`turnout.gateway.responses_store_redis`).

Each entry belongs to the caller that created it: another caller asking for it is told it does
not exist, exactly as for an id that never did. What is kept is the response as answered and
its conversation; the owner is a virtual key's id or the caller's name, never a key itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import msgspec

from turnout.config.server import ResponsesStoreConfig
from turnout.wire import Principal


@dataclass(frozen=True, slots=True)
class Stored:
    """One response: the object as answered, and its conversation as chat messages."""

    owner: str
    response: dict[str, Any]
    #: Every turn up to and including this one (without instructions), for the next turn.
    conversation: list[dict[str, Any]]
    #: This turn's input, as Responses items with ids (``GET .../input_items``).
    input_items: list[dict[str, Any]]
    #: Bytes it takes, as encoded (`encode`).
    size: int
    #: When it expires, on the backend's own clock (infinity: the backend keeps it, as Redis
    #: does, and returns only entries that have not expired).
    expires: float
    #: The conversation again, as the Responses items a native deployment is sent
    #: (`turnout.gateway.responses_native`).
    items: list[dict[str, Any]]


class StoreFailure(Exception):
    """The backend could not be used (Redis unreachable, the file unwritable): the request goes
    on without it (`turnout.gateway.responses_store_guard`). Its text names no secret."""


class ResponseStore(Protocol):
    """Where responses are kept: every backend answers the same, owner checks included."""

    async def put(
        self,
        principal: Principal | None,
        response: dict[str, Any],
        conversation: list[dict[str, Any]],
        input_items: list[dict[str, Any]],
        items: list[dict[str, Any]],
    ) -> None:
        """Keep a response under its ``id`` (not kept: too large, or the store keeps none)."""
        ...

    async def get(self, principal: Principal | None, response_id: str) -> Stored | None:
        """The caller's stored response (None: unknown, expired or another caller's)."""
        ...

    async def delete(self, principal: Principal | None, response_id: str) -> bool:
        """Forget the caller's response; whether there was one."""
        ...

    async def aclose(self) -> None: ...


def owner_of(principal: Principal | None) -> str:
    """Whose a stored response is: a virtual key by its id, else the caller's name (``master``
    or ``anonymous``)."""
    if principal is None:
        return "anonymous"
    return f"key:{principal.key_id}" if principal.key_id is not None else principal.name


class _Entry(msgspec.Struct, array_like=True):
    """A stored response as a shared backend keeps it (one blob, owner included)."""

    owner: str
    response: dict[str, Any]
    conversation: list[dict[str, Any]]
    input_items: list[dict[str, Any]]
    items: list[dict[str, Any]]


_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder(_Entry).decode


def encode(
    owner: str,
    response: dict[str, Any],
    conversation: list[dict[str, Any]],
    input_items: list[dict[str, Any]],
    items: list[dict[str, Any]],
) -> bytes:
    """One entry as bytes (JSON: what the response was decoded from, so it always encodes)."""
    return _ENCODE(_Entry(owner, response, conversation, input_items, items))


def to_keep(
    config: ResponsesStoreConfig,
    principal: Principal | None,
    response: dict[str, Any],
    conversation: list[dict[str, Any]],
    input_items: list[dict[str, Any]],
    items: list[dict[str, Any]],
) -> tuple[str, bytes] | None:
    """The owner and bytes of a response to keep, or None when it is not kept: the store keeps
    none (``max_responses: 0``), or it is larger than one response or the whole store may be.
    Every backend keeps by this one rule."""
    if config.max_responses == 0:
        return None
    owner = owner_of(principal)
    entry = encode(owner, response, conversation, input_items, items)
    if len(entry) > min(config.max_bytes, config.max_response_bytes):
        return None
    return owner, entry


def decode(blob: bytes, expires: float) -> Stored:
    """An entry `encode` wrote (one that does not decode is the backend failing)."""
    try:
        entry = _DECODE(blob)
    except msgspec.DecodeError:
        raise StoreFailure("a stored entry does not decode") from None
    return Stored(
        entry.owner,
        entry.response,
        entry.conversation,
        entry.input_items,
        len(blob),
        expires,
        entry.items,
    )
