"""The SQL ledger of a gateway instance without Redis, in the store's own database.

Several workers of one instance share their store (a SQLite file or PostgreSQL) and nothing
else, so that is where their budgets and limits are kept exactly (`SqlLedger`: one transaction
per operation). The store opens after the gateway starts (and may be retried in the background),
so this ledger reaches it through the `StoreLink` at each call: until the store is open, or
while its database cannot be reached, admissions fail closed (`LedgerUnavailable`, a 503), or,
with ``store.fail_open``, are admitted against this process's own `MemoryLedger`.

As with Redis (`turnout.governance.kept_ends`), nothing consumed is forgotten: an end that meets
an outage is kept and sent again until the database answers, and the charge of a request
admitted locally while it was away is sent to it as well.
"""

from __future__ import annotations

import asyncio
import contextlib

from turnout.gateway.store_link import StoreLink
from turnout.governance.kept_ends import KeptEnds, shared_charge
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

#: Seconds between attempts to send the kept ends.
RETRY_EVERY = 1.0


class StoreLedger:
    """A `Ledger` over the store link's database; see the module's docstring."""

    def __init__(self, link: StoreLink, *, hold_seconds: float, fail_open: bool) -> None:
        self._link = link
        self._hold_seconds = hold_seconds
        self.fail_open = fail_open
        self._sql: SqlLedger | None = None
        #: Admits requests while the database is away, with `fail_open`.
        self.local = MemoryLedger(hold_seconds=hold_seconds)
        self._kept = KeptEnds("the store")
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
        return await self.local.admit(ask)

    async def settle(self, ticket: Ticket, cost: int, tokens: int) -> None:
        if not ticket.shared:
            await self.local.settle(ticket, cost, tokens)
            if cost == 0 and tokens == 0:
                return
            ticket = shared_charge(ticket)
        try:
            await self._shared_settle(ticket, cost, tokens)
        except LedgerUnavailable:
            self._kept.keep(ticket, cost, tokens)
            if self._retrying is None or self._retrying.done():
                self._retrying = asyncio.get_running_loop().create_task(self._retry())

    async def release(self, ticket: Ticket) -> None:
        await self.settle(ticket, 0, 0)

    async def _shared_settle(self, ticket: Ticket, cost: int, tokens: int) -> None:
        await self._ledger().settle(ticket, cost, tokens)

    async def _retry(self) -> None:
        while self._kept:
            await asyncio.sleep(RETRY_EVERY)
            await self._kept.send(self._shared_settle, LedgerUnavailable)

    async def renew(self, ticket: Ticket) -> bool:
        if not ticket.shared:
            return await self.local.renew(ticket)
        return await self._ledger().renew(ticket)

    async def budget(self, budget: Budget, partition: str = "") -> BudgetState:
        try:
            return await self._ledger().budget(budget, partition)
        except LedgerUnavailable:
            if not self.fail_open:
                raise
        return await self.local.budget(budget)

    async def aclose(self) -> None:
        if self._retrying is not None:
            self._retrying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retrying
        with contextlib.suppress(Exception):
            await self._kept.send(self._shared_settle, LedgerUnavailable)
        self._kept.report_unsent()
        await self.local.aclose()
