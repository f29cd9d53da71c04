"""Responses kept in memory, per caller, for ``previous_response_id`` and GET/DELETE.

A follow-up turn names the response it continues; the gateway replays that conversation (its
input and output as chat messages) to whichever deployment serves the new turn, so the turn does
not depend on the deployment, or even the provider, that answered the one before it. The store is
bounded three ways (a count, a total size and an age), dropping the least recently used first,
so memory cannot grow with traffic. Each entry belongs to the caller that created it: another
caller asking for it is told it does not exist, exactly as for an id that never did.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

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
    size: int
    expires: float
    #: The conversation again, as the Responses items a native deployment is sent
    #: (`turnout.gateway.responses_native`).
    items: list[dict[str, Any]]


def owner_of(principal: Principal | None) -> str:
    """Whose a stored response is: a virtual key by its id, else the caller's name (``master``
    or ``anonymous``)."""
    if principal is None:
        return "anonymous"
    return f"key:{principal.key_id}" if principal.key_id is not None else principal.name


class ResponseStore:
    """An LRU of stored responses, bounded by count, bytes and age."""

    def __init__(
        self, config: ResponsesStoreConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._clock = clock
        self._entries: OrderedDict[str, Stored] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def put(
        self,
        principal: Principal | None,
        response: dict[str, Any],
        conversation: list[dict[str, Any]],
        input_items: list[dict[str, Any]],
        items: list[dict[str, Any]] | None = None,
    ) -> None:
        config = self._config
        items = items or []
        size = len(msgspec.json.encode((response, conversation, input_items, items)))
        if config.max_responses == 0 or size > config.max_bytes:
            return
        key = response["id"]
        self._drop(key)
        now = self._clock()
        # Oldest-used first: an expired one there costs memory until something reads it.
        while self._entries and next(iter(self._entries.values())).expires <= now:
            self._drop(next(iter(self._entries)))
        expires = now + config.ttl
        owner = owner_of(principal)
        self._entries[key] = Stored(
            owner, response, conversation, input_items, size, expires, items
        )
        self._bytes += size
        while len(self._entries) > config.max_responses or self._bytes > config.max_bytes:
            self._drop(next(iter(self._entries)))

    def get(self, principal: Principal | None, response_id: str) -> Stored | None:
        """The caller's stored response (None: unknown, expired or another caller's)."""
        entry = self._entries.get(response_id)
        if entry is None or entry.owner != owner_of(principal):
            return None
        if entry.expires <= self._clock():
            self._drop(response_id)
            return None
        self._entries.move_to_end(response_id)
        return entry

    def delete(self, principal: Principal | None, response_id: str) -> bool:
        if self.get(principal, response_id) is None:
            return False
        self._drop(response_id)
        return True

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size
