"""A store that fails without failing the request: what the Responses routes are given.

A backend that cannot be used (Redis down, the file unwritable) is the gateway's problem, not
the caller's: the answer the caller waited for is still returned, only not kept. A follow-up
naming it, or a GET, then finds no such response, and is answered exactly as for an unknown
id. Each failure is logged as a warning, at most one line per `interval` (a count of the
others with it), so an outage does not flood the log; the failure's text names the backend
and the error's kind, never a secret. When the backend answers again, that is said once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from turnout.gateway.responses_store import ResponseStore, Stored, StoreFailure
from turnout.wire import Principal

logger = logging.getLogger("turnout.gateway")

#: Seconds between two warnings about the same store.
INTERVAL = 60.0


class GuardedStore:
    """`store`, its failures logged and turned into "not kept" or "not found"."""

    def __init__(
        self,
        store: ResponseStore,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self._interval = interval
        self._clock = clock
        self._last_warning = -float("inf")
        self._unsaid = 0
        self._failing = False
        #: Calls that failed so far.
        self.failures = 0

    async def put(
        self,
        principal: Principal | None,
        response: dict[str, Any],
        conversation: list[dict[str, Any]],
        input_items: list[dict[str, Any]],
        items: list[dict[str, Any]],
    ) -> None:
        try:
            await self.store.put(principal, response, conversation, input_items, items)
        except StoreFailure as failure:
            self._failed(failure, "not kept")
        else:
            self._answered()

    async def get(self, principal: Principal | None, response_id: str) -> Stored | None:
        try:
            found = await self.store.get(principal, response_id)
        except StoreFailure as failure:
            self._failed(failure, "not read")
            return None
        self._answered()
        return found

    async def delete(self, principal: Principal | None, response_id: str) -> bool:
        try:
            gone = await self.store.delete(principal, response_id)
        except StoreFailure as failure:
            self._failed(failure, "not deleted")
            return False
        self._answered()
        return gone

    async def aclose(self) -> None:
        await self.store.aclose()

    def _failed(self, failure: StoreFailure, what: str) -> None:
        self.failures += 1
        self._failing = True
        now = self._clock()
        if now - self._last_warning < self._interval:
            self._unsaid += 1
            return
        more = f" ({self._unsaid} more since the last warning)" if self._unsaid else ""
        logger.warning("responses store unavailable, a response %s: %s%s", what, failure, more)
        self._last_warning = now
        self._unsaid = 0

    def _answered(self) -> None:
        if self._failing:
            self._failing = False
            logger.warning("responses store answers again")
