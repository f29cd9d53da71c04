"""The gateway's link to the governance store: opened at start, reopened while unreachable.

A gateway whose database is down at start still starts: the master key needs no store, so the
gateway serves it at once, and virtual keys and the management API answer 503 until the store
opens, which is tried again every few seconds in the background. An outage later is met the same
way, call by call: the store's connection pool reconnects on its own, and each call that meets
the outage is a 503 (`StoreUnavailableError`), never a 401 that would tell a client its key is
bad. Each worker process opens its own link to the same database (a SQLite file or a
PostgreSQL server), so every worker sees every key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import ClassVar, Final, TypeVar

from turnout.config.store import StoreConfig
from turnout.errors import FallbackKind, TurnoutError
from turnout.governance import GovernanceStore
from turnout.governance.records import SpendRow
from turnout.governance.sql import is_store_failure, open_store

logger = logging.getLogger("turnout.gateway")

T = TypeVar("T")

#: Seconds between attempts to open a store that could not be opened.
REOPEN_EVERY: Final = 5.0
#: Seconds an attempt to open the store may take (a host that drops packets would otherwise
#: hold the gateway's start for the driver's own connect timeout).
OPEN_WITHIN: Final = 10.0


class StoreUnavailableError(TurnoutError):
    """The store of keys and spend cannot be reached: virtual keys fail closed."""

    status = 503
    openai_type = "service_unavailable"
    openai_code = "store_unavailable"
    fallback: ClassVar[FallbackKind | None] = None

    def __init__(self) -> None:
        super().__init__(
            "The gateway's key store is unreachable, so virtual keys cannot be checked now; "
            "try again shortly (the master key still works)"
        )

    def client_wait(self) -> float | None:
        return REOPEN_EVERY


class StoreLink:
    """One process's governance store, or the reason it has none yet."""

    def __init__(
        self,
        config: StoreConfig,
        *,
        reopen_every: float = REOPEN_EVERY,
        open_within: float = OPEN_WITHIN,
    ) -> None:
        self.config = config
        self._reopen_every = reopen_every
        self._open_within = open_within
        self._store: GovernanceStore | None = None
        self._reopening: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def is_open(self) -> bool:
        return self._store is not None

    @property
    def store(self) -> GovernanceStore | None:
        """The store once open (None before): for what runs in its database besides the
        governance calls, the SQL ledger."""
        return self._store

    async def start(self) -> None:
        """Open the store (migrating it); when that fails, keep trying in the background."""
        if await self._try_open():
            return
        self._reopening = asyncio.get_running_loop().create_task(self._reopen())

    async def _try_open(self) -> bool:
        try:
            async with asyncio.timeout(self._open_within):
                self._store = await open_store(self.config)
        except Exception as error:
            if not is_store_failure(error):
                raise
            logger.warning(
                "store %s unreachable (%s): virtual keys answer 503 until it opens; retrying "
                "every %gs",
                self.config.url,
                type(error).__name__,
                self._reopen_every,
            )
            return False
        logger.info("store %s open: virtual keys and the management API are on", self.config.url)
        return True

    async def _reopen(self) -> None:
        while not self._closed:
            await asyncio.sleep(self._reopen_every)
            if await self._try_open():
                return

    async def call(
        self, work: Callable[[GovernanceStore], Awaitable[T]], *, within: float | None = None
    ) -> T:
        """`work` on the store; a 503 when there is none, it fails to reach its database, or
        (for reads only: a write cut short might still commit) it takes longer than `within`
        seconds."""
        store = self._store
        if store is None:
            raise StoreUnavailableError()
        try:
            async with asyncio.timeout(within):
                return await work(store)
        except Exception as error:
            if not is_store_failure(error):
                raise
            logger.warning("store call failed: %s", type(error).__name__)
            raise StoreUnavailableError() from None

    async def write_spend(self, rows: Sequence[SpendRow]) -> int:
        """Spend log rows to the store, for the spend-log writer: a failure is raised as it is
        and not logged here (the writer retries it and logs an outage once)."""
        store = self._store
        if store is None:
            raise StoreUnavailableError()
        return await store.write_spend(rows)

    def key_hash(self, key: str) -> str:
        """The digest `key` is stored under; a 503 before the store has opened (the pepper
        lives with the store)."""
        if self._store is None:
            raise StoreUnavailableError()
        return self._store.key_hash(key)

    async def aclose(self) -> None:
        self._closed = True
        if self._reopening is not None:
            self._reopening.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reopening
        if self._store is not None:
            await self._store.aclose()
            self._store = None
