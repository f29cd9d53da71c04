"""Reservations against budget counters: all or nothing, exact under any concurrency.

A reservation adds its amount to ``reserved`` on every counter it touches with one conditional
UPDATE each, ``... WHERE max_budget IS NULL OR spend + reserved + amount <= max_budget``, all in
one transaction. A counter that refuses (no row updated) rolls the whole transaction back, so no
other counter keeps a partial hold. The check and the write are one statement, which the
database makes atomic per row: there is no moment between reading the spend and writing the
hold in which another request could slip in (LiteLLM's overspend came from exactly that gap).
Counters are always locked in one order (sorted scopes), so two transactions cannot deadlock:
a scope's reset and its hold are written together, scope after scope, and per-model counters
that do not exist yet are created beforehand, in a transaction of their own.

A period that has ended is reset lazily, in the same transaction and just before the counter is
used: spend goes to zero and the next reset instant is computed from the period's length. No
job has to run for a reset to happen, and none can be missed. Holds of requests still in flight
stay across a reset (their cost lands in the new period when they settle).

Every reservation is also a row of its own, so that settling twice charges once, and a
reservation whose holder died (never settled) can be found and given back when it expires.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, delete, literal, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from turnout.governance.periods import next_reset, parse_duration
from turnout.governance.records import Budget, Scope
from turnout.governance.refusals import BudgetExceededError, NotFoundError
from turnout.governance.sql.dialect import upsert
from turnout.governance.sql.entities import budget_of
from turnout.governance.sql.schema import BUDGET_COUNTERS, RESERVATIONS

COUNTERS = BUDGET_COUNTERS


def _is(scope: Scope) -> Any:
    return and_(
        COUNTERS.c.scope_kind == scope.kind,
        COUNTERS.c.entity_id == scope.entity_id,
        COUNTERS.c.model == scope.model,
    )


def _among(scopes: Iterable[Scope]) -> Any:
    keys = COUNTERS.c.scope_kind, COUNTERS.c.entity_id, COUNTERS.c.model
    return tuple_(*keys).in_([(s.kind, s.entity_id, s.model) for s in scopes])


async def hold(
    connection: AsyncConnection, scopes: Sequence[Scope], amount: int, now: datetime
) -> None:
    """Add `amount` to ``reserved`` on every scope, or raise (and the caller rolls back).

    Per-model counters must exist already (`ensure_model_counters`, in a transaction of its
    own: inserting a row here would lock it out of the sorted order)."""
    ordered = sorted(set(scopes))
    due = await _due(connection, ordered, now)
    fits = or_(
        COUNTERS.c.max_budget.is_(None),
        COUNTERS.c.spend + COUNTERS.c.reserved + literal(amount) <= COUNTERS.c.max_budget,
    )
    for scope in ordered:
        await _reset(connection, scope, due.get(scope), now)
        result = await connection.execute(
            update(COUNTERS)
            .where(_is(scope), fits)
            .values(reserved=COUNTERS.c.reserved + literal(amount))
        )
        if result.rowcount != 1:
            row = (await connection.execute(select(COUNTERS).where(_is(scope)))).first()
            if row is None:
                raise NotFoundError(scope.kind, scope.entity_id)
            raise BudgetExceededError(
                scope, spend=row.spend, reserved=row.reserved, max_budget=row.max_budget
            )


async def record(
    connection: AsyncConnection,
    reservation_id: str,
    scopes: Sequence[Scope],
    amount: int,
    now: datetime,
    expires_at: datetime,
) -> None:
    await connection.execute(
        RESERVATIONS.insert().values(
            reservation_id=reservation_id,
            amount=amount,
            scopes=[[s.kind, s.entity_id, s.model] for s in sorted(set(scopes))],
            created_at=now,
            expires_at=expires_at,
            expired=False,
        )
    )


async def finish(
    connection: AsyncConnection, reservation_id: str, cost: int, now: datetime
) -> bool:
    """Take the reservation off its counters and add `cost` to their spend; False when it is
    already finished. An expired reservation was taken off already: only the cost is added."""
    row = (
        await connection.execute(
            delete(RESERVATIONS)
            .where(RESERVATIONS.c.reservation_id == reservation_id)
            .returning(RESERVATIONS.c.amount, RESERVATIONS.c.scopes, RESERVATIONS.c.expired)
        )
    ).first()
    if row is None:
        return False
    scopes = sorted(Scope(kind, entity_id, model) for kind, entity_id, model in row.scopes)
    held = 0 if row.expired else row.amount
    due = await _due(connection, scopes, now)
    for scope in scopes:
        await _reset(connection, scope, due.get(scope), now)
        await connection.execute(
            update(COUNTERS)
            .where(_is(scope))
            .values(
                reserved=COUNTERS.c.reserved - literal(held),
                spend=COUNTERS.c.spend + literal(cost),
            )
        )
    return True


async def expire(connection: AsyncConnection, now: datetime) -> int:
    """Give back the holds of reservations past their expiry (their rows stay, marked, so that
    a late settle still charges its cost). How many expired."""
    rows = (
        await connection.execute(
            update(RESERVATIONS)
            .where(RESERVATIONS.c.expires_at <= now, RESERVATIONS.c.expired.is_(False))
            .values(expired=True)
            .returning(RESERVATIONS.c.amount, RESERVATIONS.c.scopes)
        )
    ).all()
    released: defaultdict[Scope, int] = defaultdict(int)
    for row in rows:
        for kind, entity_id, model in row.scopes:
            released[Scope(kind, entity_id, model)] += row.amount
    for scope in sorted(released):
        await connection.execute(
            update(COUNTERS)
            .where(_is(scope))
            .values(reserved=COUNTERS.c.reserved - literal(released[scope]))
        )
    return len(rows)


async def _due(
    connection: AsyncConnection, scopes: Sequence[Scope], now: datetime
) -> dict[Scope, Any]:
    """The counters among `scopes` whose period has ended (read without locking: a reset only
    ever moves ``reset_at`` forward, and `_reset` re-checks it as it writes)."""
    rows = await connection.execute(
        select(
            COUNTERS.c.scope_kind,
            COUNTERS.c.entity_id,
            COUNTERS.c.model,
            COUNTERS.c.budget_duration,
            COUNTERS.c.reset_at,
        ).where(_among(scopes), COUNTERS.c.reset_at <= now)
    )
    return {Scope(row.scope_kind, row.entity_id, row.model): row for row in rows}


async def _reset(connection: AsyncConnection, scope: Scope, due: Any, now: datetime) -> None:
    """Start the scope's next period if `due` says its period ended (unless another
    transaction has just done so). Called in scope order, just before the scope is written,
    so that counters are always locked in one order."""
    if due is None:
        return
    await connection.execute(
        update(COUNTERS)
        .where(_is(scope), COUNTERS.c.reset_at == due.reset_at)
        .values(
            spend=0,
            period_start=now,
            reset_at=next_reset(parse_duration(due.budget_duration), now, due.reset_at),
        )
    )


async def read(connection: AsyncConnection, scope: Scope, now: datetime) -> Budget:
    row = (await connection.execute(select(COUNTERS).where(_is(scope)))).first()
    if row is None:
        raise NotFoundError(f"{scope.kind} budget", scope.describe())
    return budget_of(row, now)


async def ensure_model_counters(
    connection: AsyncConnection, scopes: Sequence[Scope], now: datetime
) -> None:
    """A per-model scope with no counter yet gets one with no budget, to count its spend."""
    models = sorted({s for s in scopes if s.model})
    if not models:
        return
    statement = upsert(connection, COUNTERS).values(
        [
            {
                "scope_kind": s.kind,
                "entity_id": s.entity_id,
                "model": s.model,
                "spend": 0,
                "reserved": 0,
                "max_budget": None,
                "budget_duration": None,
                "period_start": now,
                "reset_at": None,
            }
            for s in models
        ]
    )
    await connection.execute(statement.on_conflict_do_nothing())
