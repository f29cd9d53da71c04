"""The SQL ledger's rows: one function per step, each run inside the operation's transaction.

Every step that reads a budget's or a limit's state first locks its row: on PostgreSQL with
``SELECT ... FOR UPDATE`` (a concurrent operation on the same scope waits for this transaction
to end, then reads what it committed), on SQLite through ``BEGIN IMMEDIATE`` (one writer at a
time; SQLAlchemy leaves ``FOR UPDATE`` out of SQLite's SQL). A missing row is created first
with ``INSERT ... ON CONFLICT DO NOTHING``, so that two transactions creating one scope at once
both end up locking the one row. Rows are always locked in one order (budgets by scope, then
limits by scope, then the ticket), so two operations never wait for each other in a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import BigInteger, Connection, bindparam, case, delete, func, select, update
from sqlalchemy.sql.dml import Insert

from turnout.governance.ledger import MINUTE_MS, Budget
from turnout.governance.sql.dialect import upsert
from turnout.governance.sql.schema import (
    LEDGER_BUDGETS,
    LEDGER_HOLDS,
    LEDGER_LEASES,
    LEDGER_LIMITS,
    LEDGER_TICKETS,
)

B, H, L, P, T = (
    LEDGER_BUDGETS.c,
    LEDGER_HOLDS.c,
    LEDGER_LIMITS.c,
    LEDGER_LEASES.c,
    LEDGER_TICKETS.c,
)
#: Ended tickets whose records are dropped per end at most (the rest go at later ends).
FORGET_AT_ONCE = 100

_int = BigInteger()
_NOW = bindparam("now", type_=_int)
_LOCK_BUDGET = (
    select(B.spent, B.first_ms, B.start_ms, B.end_ms)
    .where(B.scope == bindparam("scope_"))
    .with_for_update()
)
# What a scope's live holds add up to and how many have lapsed, in one statement run after the
# lock: on PostgreSQL each statement reads what committed before it began, so this one sees
# every hold of the transactions the lock waited for. (Folded into the locking SELECT, it would
# read the snapshot taken before the wait, and miss them.) Lapsed holds are deleted only when
# there are some.
_HOLDS = select(
    func.coalesce(func.sum(case((H.expires_ms > _NOW, H.amount), else_=0)), 0).label("held"),
    func.coalesce(func.sum(case((H.expires_ms <= _NOW, 1), else_=0)), 0).label("lapsed"),
).where(H.scope == bindparam("scope_"))
_LAPSE_HOLDS = delete(LEDGER_HOLDS).where(H.scope == bindparam("scope_"), H.expires_ms <= _NOW)
_SET_BUDGET = (
    update(LEDGER_BUDGETS)
    .where(B.scope == bindparam("scope_"))
    .values(
        spent=bindparam("spent_", type_=_int),
        start_ms=bindparam("start_", type_=_int),
        end_ms=bindparam("end_", type_=_int),
    )
)
_LOCK_LIMIT = (
    select(L.requests_window, L.requests, L.tokens_window, L.tokens)
    .where(L.scope == bindparam("scope_"))
    .with_for_update()
)
_LEASES = select(
    func.coalesce(func.sum(case((P.expires_ms > _NOW, 1), else_=0)), 0).label("live"),
    func.coalesce(func.sum(case((P.expires_ms <= _NOW, 1), else_=0)), 0).label("lapsed"),
).where(P.scope == bindparam("scope_"))
_LAPSE_LEASES = delete(LEDGER_LEASES).where(P.scope == bindparam("scope_"), P.expires_ms <= _NOW)
_SET_LIMIT = (
    update(LEDGER_LIMITS)
    .where(L.scope == bindparam("scope_"))
    .values(
        requests_window=bindparam("rw", type_=_int),
        requests=bindparam("rn", type_=_int),
        tokens_window=bindparam("tw", type_=_int),
        tokens=bindparam("tn", type_=_int),
    )
)
_END_HOLD = delete(LEDGER_HOLDS).where(
    H.scope == bindparam("scope_"), H.ticket_id == bindparam("ticket_")
)
_END_LEASE = delete(LEDGER_LEASES).where(
    P.scope == bindparam("scope_"), P.ticket_id == bindparam("ticket_")
)
_RENEW_HOLD = (
    update(LEDGER_HOLDS)
    .where(H.scope == bindparam("scope_"), H.ticket_id == bindparam("ticket_"))
    .values(expires_ms=bindparam("expiry_", type_=_int))
)
_RENEW_LEASE = (
    update(LEDGER_LEASES)
    .where(P.scope == bindparam("scope_"), P.ticket_id == bindparam("ticket_"))
    .values(expires_ms=bindparam("expiry_", type_=_int))
)
_END_TICKET = (
    update(LEDGER_TICKETS)
    .where(T.ticket_id == bindparam("ticket_"), T.ended.is_(False))
    .values(ended=True, expires_ms=bindparam("expiry_", type_=_int))
)
_RENEW_TICKET = (
    update(LEDGER_TICKETS)
    .where(
        T.ticket_id == bindparam("ticket_"),
        T.ended.is_(False),
        T.expires_ms > bindparam("now", type_=_int),
    )
    .values(expires_ms=bindparam("expiry_", type_=_int))
)
_STALE_TICKETS = (
    select(T.ticket_id)
    .where(T.expires_ms <= bindparam("now", type_=_int))
    .limit(FORGET_AT_ONCE)
    .with_for_update(skip_locked=True)
)


@dataclass(slots=True)
class BudgetRow:
    """A budget's state, brought up to date and locked for the rest of the transaction."""

    scope: str
    spent: int
    start_ms: int
    end_ms: int
    held: int


@dataclass(slots=True)
class LimitRow:
    """A limit scope's counts for the current minute, and its live parallel leases."""

    scope: str
    requests_window: int
    requests: int
    tokens_window: int
    tokens: int
    leases: int


def _insert_missing(connection: Connection, statement: Insert) -> None:
    connection.execute(statement.on_conflict_do_nothing())  # type: ignore[attr-defined]


def lock_budget(connection: Connection, budget: Budget, now: int) -> BudgetRow:
    """The budget's row, locked: created from its seed on first use, its lapsed holds dropped
    and its period rolled over when the clock has passed its end (spent back to 0)."""
    scope = {"scope_": budget.scope}
    locking = {**scope, "now": now}
    row = connection.execute(_LOCK_BUDGET, locking).first()
    if row is None:
        values = {"scope": budget.scope, "spent": budget.seed, "first_ms": now}
        _insert_missing(
            connection, upsert(connection, LEDGER_BUDGETS).values(**values, start_ms=0, end_ms=0)
        )
        row = connection.execute(_LOCK_BUDGET, locking).one()
    spent, start, end = row.spent, row.start_ms, row.end_ms
    if budget.period is None:
        start = end = 0
    elif not start <= now < end:
        new_start, new_end = budget.period.bounds(now, row.first_ms)
        if end and new_start >= end:
            spent = 0  # a new period; holds stay, their requests still run
        start, end = new_start, new_end
    if (spent, start, end) != (row.spent, row.start_ms, row.end_ms):
        connection.execute(_SET_BUDGET, {**scope, "spent_": spent, "start_": start, "end_": end})
    holds = connection.execute(_HOLDS, locking).one()
    if holds.lapsed:
        connection.execute(_LAPSE_HOLDS, locking)
    return BudgetRow(budget.scope, spent, start, end, int(holds.held))


def lock_limit(connection: Connection, scope: str, now: int) -> LimitRow:
    """The limit scope's row, locked, its counts moved to the current minute, its lapsed
    leases dropped."""
    locking = {"scope_": scope, "now": now}
    row = connection.execute(_LOCK_LIMIT, locking).first()
    if row is None:
        fresh = {"requests_window": -1, "requests": 0, "tokens_window": -1, "tokens": 0}
        _insert_missing(connection, upsert(connection, LEDGER_LIMITS).values(scope=scope, **fresh))
        row = connection.execute(_LOCK_LIMIT, locking).one()
    window = now - now % MINUTE_MS
    leases = connection.execute(_LEASES, locking).one()
    state = LimitRow(
        scope, row.requests_window, row.requests, row.tokens_window, row.tokens, int(leases.live)
    )
    if state.requests_window != window:
        state.requests_window, state.requests = window, 0
    if state.tokens_window != window:
        state.tokens_window, state.tokens = window, 0
    if leases.lapsed:
        connection.execute(_LAPSE_LEASES, locking)
    return state


def save_budget(connection: Connection, row: BudgetRow) -> None:
    values = {"scope_": row.scope, "spent_": row.spent, "start_": row.start_ms, "end_": row.end_ms}
    connection.execute(_SET_BUDGET, values)


def save_limit(connection: Connection, row: LimitRow) -> None:
    connection.execute(
        _SET_LIMIT,
        {
            "scope_": row.scope,
            "rw": row.requests_window,
            "rn": row.requests,
            "tw": row.tokens_window,
            "tn": row.tokens,
        },
    )


def hold(
    connection: Connection, scopes: Sequence[str], ticket: str, amount: int, expiry: int
) -> None:
    if scopes:
        connection.execute(
            LEDGER_HOLDS.insert(),
            [
                {"scope": scope, "ticket_id": ticket, "amount": amount, "expires_ms": expiry}
                for scope in scopes
            ],
        )


def lease(connection: Connection, scopes: Sequence[str], ticket: str, expiry: int) -> None:
    if scopes:
        connection.execute(
            LEDGER_LEASES.insert(),
            [{"scope": scope, "ticket_id": ticket, "expires_ms": expiry} for scope in scopes],
        )


def open_ticket(connection: Connection, ticket: str, expiry: int) -> None:
    connection.execute(
        LEDGER_TICKETS.insert(), {"ticket_id": ticket, "ended": False, "expires_ms": expiry}
    )


def end_ticket(connection: Connection, ticket: str, expiry: int) -> bool:
    """Mark the ticket ended; False when it had ended already (its end must charge nothing).
    A ticket whose record was already forgotten (open longer than twice the hold time) counts
    as not ended, as in the other ledgers."""
    values = {"ticket_": ticket, "expiry_": expiry}
    if connection.execute(_END_TICKET, values).rowcount == 1:
        return True
    inserted = connection.execute(
        upsert(connection, LEDGER_TICKETS)
        .values(ticket_id=ticket, ended=True, expires_ms=expiry)
        .on_conflict_do_nothing()
    )
    return inserted.rowcount == 1


def end_hold(connection: Connection, scope: str, ticket: str) -> None:
    connection.execute(_END_HOLD, {"scope_": scope, "ticket_": ticket})


def end_lease(connection: Connection, scope: str, ticket: str) -> None:
    connection.execute(_END_LEASE, {"scope_": scope, "ticket_": ticket})


def renew_hold(connection: Connection, scope: str, ticket: str, expiry: int) -> bool:
    values = {"scope_": scope, "ticket_": ticket, "expiry_": expiry}
    return connection.execute(_RENEW_HOLD, values).rowcount == 1


def renew_lease(connection: Connection, scope: str, ticket: str, expiry: int) -> bool:
    values = {"scope_": scope, "ticket_": ticket, "expiry_": expiry}
    return connection.execute(_RENEW_LEASE, values).rowcount == 1


def renew_ticket(connection: Connection, ticket: str, now: int, expiry: int) -> bool:
    values = {"ticket_": ticket, "now": now, "expiry_": expiry}
    return connection.execute(_RENEW_TICKET, values).rowcount == 1


def forget_stale_tickets(connection: Connection, now: int) -> None:
    """Drop records of tickets past their keeping time, a bounded number per call; rows another
    transaction holds are skipped (PostgreSQL), not waited for."""
    stale = list(connection.scalars(_STALE_TICKETS, {"now": now}))
    if stale:
        connection.execute(delete(LEDGER_TICKETS).where(T.ticket_id.in_(stale)))
