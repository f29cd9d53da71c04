"""Responses kept in Redis: one store for every worker of every instance sharing routing state.

When routing state is in Redis (``state: {backend: redis}``, `turnout.state.redis`), the
gateway already runs as several instances behind something that spreads requests: a follow-up
turn reaches any of them, so its previous response is kept where all of them read. The store
uses the state's own connection settings (`turnout.redisio.link`: plain, TLS, Sentinel or
Cluster; the password only ever given to the client) and key prefix.

One key per response, ``<prefix>:responses:<id>``, holding the entry (owner included) and
expiring with the store's TTL: Redis bounds the store by age, and its own memory policy by size;
an entry larger than `max_response_bytes` is not kept. A read checks the owner, so another
caller's id is as unknown as one never issued.

Redis down or slow: each call is bounded (by the state's timeout, but at least `MIN_TIMEOUT`:
an entry may be megabytes, where routing's commands are a few bytes), and a failure makes the
store skip Redis for the state's ``retry_interval`` instead of making every request wait for it
again; either way the call is a `StoreFailure`, and the request goes on without the store.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from turnout.config.server import ResponsesStoreConfig
from turnout.config.state import StateConfig
from turnout.gateway.responses_store import Stored, StoreFailure, decode, owner_of, to_keep
from turnout.redisio.link import connect, describe, is_redis_failure
from turnout.wire import Principal

T = TypeVar("T")

#: Least time a call may take, connecting included (seconds): an entry holds a whole
#: conversation.
MIN_TIMEOUT = 2.0


class RedisResponseStore:
    """A `ResponseStore` in Redis, shared by every instance pointed at it."""

    def __init__(self, config: ResponsesStoreConfig, state: StateConfig) -> None:
        self._config = config
        self._state = state
        self._prefix = f"{state.prefix}:responses:"
        self._timeout = max(MIN_TIMEOUT, state.timeout_ms / 1000)
        self._client: Any = None
        self._down_until = 0.0
        self.where = describe(state)

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
        entry = kept[1]
        key = self._prefix + response["id"]
        ttl = max(1, math.ceil(config.ttl * 1000))
        await self._call(lambda client: client.set(key, entry, px=ttl))

    async def get(self, principal: Principal | None, response_id: str) -> Stored | None:
        blob = await self._call(lambda client: client.get(self._prefix + response_id))
        if blob is None:
            return None
        # Redis keeps the expiry to itself: an entry it returns has not expired.
        entry = decode(blob, math.inf)
        return entry if entry.owner == owner_of(principal) else None

    async def delete(self, principal: Principal | None, response_id: str) -> bool:
        if await self.get(principal, response_id) is None:
            return False
        gone: int = await self._call(lambda client: client.delete(self._prefix + response_id))
        return gone > 0

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.aclose()
            except Exception as exc:
                if not is_redis_failure(exc):
                    raise

    async def _call(self, command: Callable[[Any], Awaitable[T]]) -> T:
        """One command, bounded; a failure skips Redis for the state's retry interval."""
        if time.monotonic() < self._down_until:
            raise StoreFailure(f"Redis at {self.where}: skipped since it last failed")
        if self._client is None:
            self._client, _ = connect(self._state, self._timeout, self._timeout)
        try:
            async with asyncio.timeout(self._timeout):
                return await command(self._client)
        except Exception as exc:
            if not is_redis_failure(exc):
                raise
            self._down_until = time.monotonic() + self._state.retry_interval
            raise StoreFailure(f"Redis at {self.where}: {type(exc).__name__}") from None
