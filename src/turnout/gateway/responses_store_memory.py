"""Responses kept in this process's memory: the store of a gateway running as one process.

An LRU bounded three ways (a count, a total size and an age), dropping the least recently used
first, so memory cannot grow with traffic. A response too large for `max_response_bytes` is
not kept. Nothing here can fail, and nothing here waits.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from turnout.config.server import ResponsesStoreConfig
from turnout.gateway.responses_store import Stored, owner_of, to_keep
from turnout.wire import Principal


class MemoryResponseStore:
    """A `ResponseStore` in one process: an LRU of stored responses, bounded by count, bytes
    and age."""

    def __init__(
        self, config: ResponsesStoreConfig, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._config = config
        self._clock = clock
        self._entries: OrderedDict[str, Stored] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def put(
        self,
        principal: Principal | None,
        response: dict[str, Any],
        conversation: list[dict[str, Any]],
        input_items: list[dict[str, Any]],
        items: list[dict[str, Any]],
    ) -> None:
        config = self._config
        kept = to_keep(config, principal, response, conversation, input_items, items)
        if kept is None:
            return
        owner, size = kept[0], len(kept[1])
        key = response["id"]
        self._drop(key)
        now = self._clock()
        # Oldest-used first: an expired one there costs memory until something reads it.
        while self._entries and next(iter(self._entries.values())).expires <= now:
            self._drop(next(iter(self._entries)))
        expires = now + config.ttl
        self._entries[key] = Stored(
            owner, response, conversation, input_items, size, expires, items
        )
        self._bytes += size
        while len(self._entries) > config.max_responses or self._bytes > config.max_bytes:
            self._drop(next(iter(self._entries)))

    async def get(self, principal: Principal | None, response_id: str) -> Stored | None:
        return self._get(principal, response_id)

    async def delete(self, principal: Principal | None, response_id: str) -> bool:
        if self._get(principal, response_id) is None:
            return False
        self._drop(response_id)
        return True

    async def aclose(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def _get(self, principal: Principal | None, response_id: str) -> Stored | None:
        entry = self._entries.get(response_id)
        if entry is None or entry.owner != owner_of(principal):
            return None
        if entry.expires <= self._clock():
            self._drop(response_id)
            return None
        self._entries.move_to_end(response_id)
        return entry

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size
