"""The ledger on SQL: budgets and rate limits exact across the workers of one gateway instance,
with no Redis, in the store's own database (SQLite or PostgreSQL).

Each operation (`admit`, `settle`, `release`, `renew`, `budget`) is one transaction
(`turnout.governance.sql.ledger_rows` locks the rows it reads, in one order): admission checks
every budget and limit of the request and writes every hold, count and lease, or raises and
rolls all of it back. Several processes sharing the database therefore see each other's holds
as Redis' scripts make instances see theirs, and two of them can never both take the last of a
budget. The semantics are `turnout.governance.ledger`'s, shared by `MemoryLedger` and
`RedisLedger` and checked by one contract suite: holds are leases reclaimed lazily when they
lapse, periods roll over inside the transaction that finds them ended, a `Budget`'s `seed` is
taken only when its row is created, and a ticket ends once.

The clock is the gateway's (`now_ms`): the workers of one instance share it. Across instances,
use `RedisLedger`, whose clock is Redis' own. Each operation costs one transaction and about
four statements per scope; on SQLite every operation of every worker takes the database's one
write lock in turn, which bounds admissions per second (``benchmarks/bench_sql_ledger.py``).

A database that cannot be reached fails closed: `admit` and `budget` raise `LedgerUnavailable`.
An end (`settle`, `release`) that meets an outage raises it too: the caller keeps the ticket
and may end it again later (ending twice charges once).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from sqlalchemy import Connection

from turnout.governance.ledger import (
    MINUTE_MS,
    PARALLEL_RETRY_AFTER,
    Ask,
    Budget,
    BudgetExceeded,
    BudgetState,
    LedgerUnavailable,
    Limits,
    LimitStatus,
    RateLimited,
    Ticket,
    _amount,
    new_ticket_id,
    wall_ms,
)
from turnout.governance.sql import ledger_rows as rows
from turnout.governance.sql.failures import is_store_failure
from turnout.governance.sql.runner import Runner

T = TypeVar("T")


class SqlLedger:
    """A `Ledger` in the store's database, through the store's `Runner`. `hold_seconds`: how
    long holds last without `renew`; `now_ms`: the clock (Unix ms). Closing it closes nothing:
    the runner belongs to the store."""

    def __init__(
        self, runner: Runner, *, hold_seconds: float = 600.0, now_ms: Callable[[], int] = wall_ms
    ) -> None:
        self.runner = runner
        self._hold_ms = int(hold_seconds * 1000)
        self._now = now_ms
        #: Releases of tickets whose callers were cancelled, kept until they finish.
        self._orphans: set[asyncio.Future[Any]] = set()

    async def _write(self, work: Callable[[Connection], T]) -> T:
        with _unavailable_on_failure():
            return await self.runner.write(work)

    async def admit(self, ask: Ask) -> Ticket:
        now = self._now()
        ticket_id = new_ticket_id()
        attempt = asyncio.ensure_future(self._write(lambda c: self._admit(c, ask, ticket_id, now)))
        try:
            return await asyncio.shield(attempt)
        except asyncio.CancelledError:
            # The caller left, but the transaction may still commit (a SQLite transaction runs
            # on in its thread): its holds are then given back rather than left to lapse.
            self._orphans.add(attempt)
            attempt.add_done_callback(self._release_orphan)
            raise

    def _release_orphan(self, attempt: asyncio.Future[Ticket]) -> None:
        self._orphans.discard(attempt)
        if attempt.cancelled() or attempt.exception() is not None:
            return
        release = asyncio.ensure_future(self.release(attempt.result()))
        self._orphans.add(release)
        release.add_done_callback(self._forget_orphan)

    def _forget_orphan(self, release: asyncio.Future[Any]) -> None:
        """A release that fails leaves the holds to lapse at their expiry."""
        self._orphans.discard(release)
        if not release.cancelled():
            release.exception()

    def _admit(self, connection: Connection, ask: Ask, ticket_id: str, now: int) -> Ticket:
        window = now - now % MINUTE_MS
        reset = (window + MINUTE_MS - now) / 1000
        by_scope = {
            budget.scope: rows.lock_budget(connection, budget, now)
            for budget in sorted(ask.budgets, key=_scope)
        }
        for budget in ask.budgets:  # refused by the first budget in the ask's order
            row = by_scope[budget.scope]
            if row.spent + row.held + ask.cost > budget.max:
                ends = row.end_ms / 1000 if row.end_ms else None
                raise BudgetExceeded(budget.scope, budget.max, row.spent, row.held, ends)
        counts = {
            limit.scope: rows.lock_limit(connection, limit.scope, now)
            for limit in sorted(ask.limits, key=_scope)
        }
        taken: list[int] = []
        for limit in ask.limits:
            state = counts[limit.scope]
            if limit.rpm is not None and state.requests + 1 > limit.rpm:
                raise RateLimited(limit.scope, "requests", limit.rpm, 0, reset)
            tokens = min(ask.tokens, limit.tpm) if limit.tpm is not None else 0
            if limit.tpm is not None and state.tokens + tokens > limit.tpm:
                left = max(0, limit.tpm - state.tokens)
                raise RateLimited(limit.scope, "tokens", limit.tpm, left, reset)
            if limit.parallel is not None and state.leases >= limit.parallel:
                raise RateLimited(
                    limit.scope, "parallel_requests", limit.parallel, 0, PARALLEL_RETRY_AFTER
                )
            taken.append(tokens)
        expiry = now + self._hold_ms
        rows.hold(connection, sorted(by_scope), ticket_id, ask.cost, expiry)
        statuses: list[LimitStatus] = []
        for limit, tokens in zip(ask.limits, taken, strict=True):
            state = counts[limit.scope]
            state.requests += 1
            state.tokens += tokens
            rows.save_limit(connection, state)
            if limit.rpm is not None:
                left = limit.rpm - state.requests
                statuses.append(LimitStatus(limit.scope, "requests", limit.rpm, left, reset))
            if limit.tpm is not None:
                left = max(0, limit.tpm - state.tokens)
                statuses.append(LimitStatus(limit.scope, "tokens", limit.tpm, left, reset))
        parallel = sorted(limit.scope for limit in ask.limits if limit.parallel is not None)
        rows.lease(connection, parallel, ticket_id, expiry)
        rows.open_ticket(connection, ticket_id, now + 2 * self._hold_ms)
        return Ticket(ticket_id, ask, expiry / 1000, window, tuple(taken), tuple(statuses))

    async def settle(self, ticket: Ticket, cost: int, tokens: int) -> None:
        _amount("cost", cost)
        _amount("tokens", tokens)
        now = self._now()
        await self._write(lambda c: self._settle(c, ticket, cost, tokens, now))

    def _settle(
        self, connection: Connection, ticket: Ticket, cost: int, tokens: int, now: int
    ) -> None:
        locked = [
            rows.lock_budget(connection, budget, now)
            for budget in sorted(ticket.ask.budgets, key=_scope)
        ]
        scopes = (limit.scope for limit in ticket.ask.limits)
        held = dict(zip(scopes, ticket.held_tokens, strict=True))
        limits = [
            (limit, rows.lock_limit(connection, limit.scope, now))
            for limit in sorted(ticket.ask.limits, key=_scope)
        ]
        if not rows.end_ticket(connection, ticket.id, now + self._hold_ms):
            return  # ended before: this end charges nothing
        for row in locked:
            rows.end_hold(connection, row.scope, ticket.id)
            row.spent += cost
            rows.save_budget(connection, row)
        for limit, state in limits:
            rows.end_lease(connection, state.scope, ticket.id)
            if limit.tpm is not None and state.tokens_window == ticket.window:
                state.tokens = max(0, state.tokens + tokens - held[limit.scope])
            rows.save_limit(connection, state)
        rows.forget_stale_tickets(connection, now)

    async def release(self, ticket: Ticket) -> None:
        await self.settle(ticket, 0, 0)

    async def renew(self, ticket: Ticket) -> bool:
        now = self._now()
        return await self._write(lambda c: self._renew(c, ticket, now))

    def _renew(self, connection: Connection, ticket: Ticket, now: int) -> bool:
        expiry = now + self._hold_ms
        held = True
        for budget in sorted(ticket.ask.budgets, key=_scope):
            rows.lock_budget(connection, budget, now)
            held = rows.renew_hold(connection, budget.scope, ticket.id, expiry) and held
        for limit in sorted(ticket.ask.limits, key=_scope):
            rows.lock_limit(connection, limit.scope, now)
            if limit.parallel is not None:
                held = rows.renew_lease(connection, limit.scope, ticket.id, expiry) and held
        if not rows.renew_ticket(connection, ticket.id, now, now + 2 * self._hold_ms):
            return False
        return held

    async def budget(self, budget: Budget, partition: str = "") -> BudgetState:
        now = self._now()
        row = await self._write(lambda c: rows.lock_budget(c, budget, now))
        return BudgetState(row.spent, row.held, row.end_ms / 1000 if row.end_ms else None)

    async def aclose(self) -> None:
        """Wait for admissions whose callers left, and the releases of their tickets (the
        runner is the store's to close)."""
        while self._orphans:  # an admission ending here starts its release
            await asyncio.gather(*self._orphans, return_exceptions=True)


def _scope(item: Budget | Limits) -> str:
    return item.scope


@contextlib.contextmanager
def _unavailable_on_failure() -> Iterator[None]:
    try:
        yield
    except Exception as error:
        if is_store_failure(error):
            # The error's type only: a driver's message may name a host, user or database.
            name = type(error).__name__
            raise LedgerUnavailable(f"the ledger's database failed ({name})") from error
        raise
