"""The SQL ledger of a gateway instance without Redis, in the store's own database.

Several workers of one instance share their store (a SQLite file or PostgreSQL) and nothing
else, so that is where their budgets and limits are kept exactly (`SqlLedger`: one transaction
per operation). The store opens after the gateway starts (and may be retried in the background),
so this ledger reaches it through the `StoreLink` at each call: until the store is open, or
while its database cannot be reached, admissions fail closed (`LedgerUnavailable`, a 503), or,
with ``store.fail_open``, are admitted against this process's own `MemoryLedger`.

An end (settle or release) that meets an outage is kept and sent again until the database
answers (ending a ticket twice charges it once), so that no charge is lost to a short outage;
what is still kept at shutdown is tried once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque

from turnout.gateway.store_link import StoreLink
from turnout.governance.ledger import (
    Ask,
    Budget,
    BudgetState,
    LedgerUnavailable,
    MemoryLedger,
    Ticket,
)
from turnout.governance.sql.ledger import SqlLedger
from turnout.governance.sql.store import SqlGovernanceStore

logger = logging.getLogger("turnout.governance")

#: Ends kept for a database that is away, at most (beyond it the oldest are dropped, counted).
KEPT_ENDS = 100_000
#: Seconds between attempts to send the kept ends.
RETRY_EVERY = 1.0


class StoreLedger:
    """A `Ledger` over the store link's database; see the module's docstring."""

    def __init__(self, link: StoreLink, *, hold_seconds: float, fail_open: bool) -> None:
        self._link = link
        self._hold_seconds = hold_seconds
        self.fail_open = fail_open
        self._sql: SqlLedger | None = None
        #: Where requests are admitted while the database is away, with `fail_open`.
        self.local = MemoryLedger(hold_seconds=hold_seconds)
        self._local_tickets: set[str] = set()
        #: Ends that met an outage: (ticket, cost, tokens), cost None for a release.
        self._kept: deque[tuple[Ticket, int | None, int]] = deque(maxlen=KEPT_ENDS)
        self._retrying: asyncio.Task[None] | None = None

    def _ledger(self) -> SqlLedger:
        if self._sql is None:
            store = self._link.store
            if not isinstance(store, SqlGovernanceStore):
                raise LedgerUnavailable("the store is not open")
            self._sql = SqlLedger(store.runner, hold_seconds=self._hold_seconds)
        return self._sql

    async def admit(self, ask: Ask) -> Ticket:
        try:
            return await self._ledger().admit(ask)
        except LedgerUnavailable:
            if not self.fail_open:
                raise
        ticket = await self.local.admit(ask)
        self._local_tickets.add(ticket.id)
        return ticket

    async def settle(self, ticket: Ticket, cost: int, tokens: int) -> None:
        await self._end(ticket, cost, tokens)

    async def release(self, ticket: Ticket) -> None:
        await self._end(ticket, None, 0)

    async def _end(self, ticket: Ticket, cost: int | None, tokens: int) -> None:
        if ticket.id in self._local_tickets:
            self._local_tickets.discard(ticket.id)
            if cost is None:
                await self.local.release(ticket)
            else:
                await self.local.settle(ticket, cost, tokens)
            return
        try:
            await self._send(ticket, cost, tokens)
        except LedgerUnavailable:
            self._keep(ticket, cost, tokens)

    async def _send(self, ticket: Ticket, cost: int | None, tokens: int) -> None:
        ledger = self._ledger()
        if cost is None:
            await ledger.release(ticket)
        else:
            await ledger.settle(ticket, cost, tokens)

    def _keep(self, ticket: Ticket, cost: int | None, tokens: int) -> None:
        if len(self._kept) == self._kept.maxlen:
            logger.error("governance: the oldest kept end was dropped (%d kept)", KEPT_ENDS)
        if not self._kept:
            logger.warning("governance: the store is unreachable; request ends kept for it")
        self._kept.append((ticket, cost, tokens))
        if self._retrying is None or self._retrying.done():
            self._retrying = asyncio.get_running_loop().create_task(self._retry())

    async def _retry(self) -> None:
        while self._kept:
            await asyncio.sleep(RETRY_EVERY)
            await self._send_kept()

    async def _send_kept(self) -> None:
        while self._kept:
            ticket, cost, tokens = self._kept[0]
            try:
                await self._send(ticket, cost, tokens)
            except LedgerUnavailable:
                return
            self._kept.popleft()
        logger.info("governance: the store answers again; kept request ends sent")

    async def renew(self, ticket: Ticket) -> bool:
        if ticket.id in self._local_tickets:
            return await self.local.renew(ticket)
        return await self._ledger().renew(ticket)

    async def budget(self, budget: Budget, partition: str = "") -> BudgetState:
        return await self._ledger().budget(budget, partition)

    async def aclose(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        if self._kept:
            with contextlib.suppress(Exception):
                await self._send_kept()
            if self._kept:
                logger.error(
                    "governance: %d request ends could not reach the store by shutdown",
                    len(self._kept),
                )
        await self.local.aclose()
