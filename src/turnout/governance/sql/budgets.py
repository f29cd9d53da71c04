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
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    and_,
    bindparam,
    delete,
    or_,
    select,
    tuple_,
    update,
)

from turnout.governance.periods import next_reset, parse_duration
from turnout.governance.records import Budget, Scope
from turnout.governance.refusals import BudgetExceededError, NotFoundError
from turnout.governance.sql.dialect import upsert
from turnout.governance.sql.entities import budget_of
from turnout.governance.sql.schema import BUDGET_COUNTERS, RESERVATIONS

COUNTERS = BUDGET_COUNTERS
_C = COUNTERS.c


def _is(scope: Scope) -> Any:
    return and_(
        _C.scope_kind == scope.kind, _C.entity_id == scope.entity_id, _C.model == scope.model
    )


def _key(scope: Scope) -> dict[str, str]:
    """The bound parameters of the statements below that name one counter."""
    return {"scope_kind_": scope.kind, "entity_id_": scope.entity_id, "model_": scope.model}


# The statements a reservation and a settlement run, built once: building a SQLAlchemy
# statement costs ten times what executing a built one does.
_ONE = and_(
    _C.scope_kind == bindparam("scope_kind_"),
    _C.entity_id == bindparam("entity_id_"),
    _C.model == bindparam("model_"),
)
_HOLD = (
    update(COUNTERS)
    .where(
        _ONE,
        or_(
            _C.max_budget.is_(None),
            _C.spend + _C.reserved + bindparam("amount", type_=BigInteger) <= _C.max_budget,
        ),
    )
    .values(reserved=_C.reserved + bindparam("amount", type_=BigInteger))
)
_CHARGE = (
    update(COUNTERS)
    .where(_ONE)
    .values(
        reserved=_C.reserved - bindparam("held", type_=BigInteger),
        spend=_C.spend + bindparam("cost", type_=BigInteger),
    )
)
_RESET = (
    update(COUNTERS)
    .where(_ONE, _C.reset_at == bindparam("old_reset_at"))
    .values(spend=0, period_start=bindparam("now_"), reset_at=bindparam("new_reset_at"))
)
_DUE = select(_C.scope_kind, _C.entity_id, _C.model, _C.budget_duration, _C.reset_at).where(
    tuple_(_C.scope_kind, _C.entity_id, _C.model).in_(bindparam("scopes", expanding=True)),
    _C.reset_at <= bindparam("now_"),
)
_RECORD = RESERVATIONS.insert()
_FINISH = (
    delete(RESERVATIONS)
    .where(RESERVATIONS.c.reservation_id == bindparam("reservation_id"))
    .returning(RESERVATIONS.c.amount, RESERVATIONS.c.scopes, RESERVATIONS.c.expired)
)


def hold(connection: Connection, scopes: Sequence[Scope], amount: int, now: datetime) -> None:
    """Add `amount` to ``reserved`` on every scope, or raise (and the caller rolls back).

    Per-model counters must exist already (`ensure_model_counters`, in a transaction of its
    own: inserting a row here would lock it out of the sorted order)."""
    ordered = sorted(set(scopes))
    due = _due(connection, ordered, now)
    for scope in ordered:
        _reset(connection, scope, due.get(scope), now)
        result = connection.execute(_HOLD, {**_key(scope), "amount": amount})
        if result.rowcount != 1:
            row = (connection.execute(select(COUNTERS).where(_is(scope)))).first()
            if row is None:
                raise NotFoundError(scope.kind, scope.entity_id)
            raise BudgetExceededError(
                scope, spend=row.spend, reserved=row.reserved, max_budget=row.max_budget
            )


def record(
    connection: Connection,
    reservation_id: str,
    scopes: Sequence[Scope],
    amount: int,
    now: datetime,
    expires_at: datetime,
) -> None:
    connection.execute(
        _RECORD,
        {
            "reservation_id": reservation_id,
            "amount": amount,
            "scopes": [[s.kind, s.entity_id, s.model] for s in sorted(set(scopes))],
            "created_at": now,
            "expires_at": expires_at,
            "expired": False,
        },
    )


def finish(connection: Connection, reservation_id: str, cost: int, now: datetime) -> bool:
    """Take the reservation off its counters and add `cost` to their spend; False when it is
    already finished. An expired reservation was taken off already: only the cost is added."""
    row = connection.execute(_FINISH, {"reservation_id": reservation_id}).first()
    if row is None:
        return False
    scopes = sorted(Scope(kind, entity_id, model) for kind, entity_id, model in row.scopes)
    held = 0 if row.expired else row.amount
    due = _due(connection, scopes, now)
    for scope in scopes:
        _reset(connection, scope, due.get(scope), now)
        connection.execute(_CHARGE, {**_key(scope), "held": held, "cost": cost})
    return True


def expire(connection: Connection, now: datetime) -> int:
    """Give back the holds of reservations past their expiry (their rows stay, marked, so that
    a late settle still charges its cost). How many expired."""
    rows = (
        connection.execute(
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
        connection.execute(_CHARGE, {**_key(scope), "held": released[scope], "cost": 0})
    return len(rows)


def _due(connection: Connection, scopes: Sequence[Scope], now: datetime) -> dict[Scope, Any]:
    """The counters among `scopes` whose period has ended (read without locking: a reset only
    ever moves ``reset_at`` forward, and `_reset` re-checks it as it writes)."""
    keys = [(s.kind, s.entity_id, s.model) for s in scopes]
    rows = connection.execute(_DUE, {"scopes": keys, "now_": now})
    return {Scope(row.scope_kind, row.entity_id, row.model): row for row in rows}


def _reset(connection: Connection, scope: Scope, due: Any, now: datetime) -> None:
    """Start the scope's next period if `due` says its period ended (unless another
    transaction has just done so). Called in scope order, just before the scope is written,
    so that counters are always locked in one order."""
    if due is None:
        return
    following = next_reset(parse_duration(due.budget_duration), now, due.reset_at)
    connection.execute(
        _RESET,
        {**_key(scope), "old_reset_at": due.reset_at, "now_": now, "new_reset_at": following},
    )


def read(connection: Connection, scope: Scope, now: datetime) -> Budget:
    row = (connection.execute(select(COUNTERS).where(_is(scope)))).first()
    if row is None:
        raise NotFoundError(f"{scope.kind} budget", scope.describe())
    return budget_of(row, now)


def ensure_model_counters(connection: Connection, scopes: Sequence[Scope], now: datetime) -> None:
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
    connection.execute(statement.on_conflict_do_nothing())
