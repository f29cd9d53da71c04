"""Budget counters: what a key, team or user (or one of their models) has spent this period.

Counters carry each entity's budget settings (`entities.sync_counters` keeps them in line) and
the spend the store records: every new spend log row adds its cost to the counters of its key,
team and user, and of the key's, team's and user's counter for its model group when one exists,
in the transaction that stores the row (`charge`, called by `spend.write`), so a row written
twice is charged once. They are the store of record that `/key/info` shows and that a ledger's
`seed` comes from. A period that has ended is reset lazily, in the transaction that next writes
the counter (and reads as reset before that). Holding budgets for requests in flight is not the
counters' job: that is the ledger's (`turnout.governance.sql.ledger` in this database, or
Redis), one mechanism for every backend.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Table,
    and_,
    bindparam,
    select,
    tuple_,
    update,
)

from turnout.governance.money import describe
from turnout.governance.periods import next_reset, parse_duration
from turnout.governance.records import Budget, Scope, ScopeKind
from turnout.governance.refusals import NotFoundError
from turnout.governance.sql.entities import budget_of
from turnout.governance.sql.schema import BUDGET_COUNTERS, KEYS, TEAMS, USERS

_C = BUDGET_COUNTERS.c
logger = logging.getLogger("turnout.governance")


def read(connection: Connection, scope: Scope, now: datetime) -> Budget:
    row = connection.execute(
        select(BUDGET_COUNTERS).where(
            and_(
                _C.scope_kind == scope.kind,
                _C.entity_id == scope.entity_id,
                _C.model == scope.model,
            )
        )
    ).first()
    if row is None:
        raise NotFoundError(f"{scope.kind} budget", scope.describe())
    return budget_of(row, now)


_ONE = and_(
    _C.scope_kind == bindparam("scope_kind_"),
    _C.entity_id == bindparam("entity_id_"),
    _C.model == bindparam("model_"),
)
_ADD = (
    update(BUDGET_COUNTERS)
    .where(_ONE)
    .values(spend=_C.spend + bindparam("cost", BigInteger))
    .returning(_C.spend)
)
#: The tables of the entities that have soft budgets, and their ids' columns.
_ENTITIES: dict[ScopeKind, tuple[Table, Column[str]]] = {
    "key": (KEYS, KEYS.c.key_id),
    "team": (TEAMS, TEAMS.c.team_id),
    "user": (USERS, USERS.c.user_id),
}
_RESET = (
    update(BUDGET_COUNTERS)
    .where(_ONE, _C.reset_at == bindparam("old_reset_at"))
    .values(spend=0, period_start=bindparam("now_"), reset_at=bindparam("new_reset_at"))
)
_DUE = select(_C.scope_kind, _C.entity_id, _C.model, _C.budget_duration, _C.reset_at).where(
    tuple_(_C.scope_kind, _C.entity_id, _C.model).in_(bindparam("scopes", expanding=True)),
    _C.reset_at <= bindparam("now_"),
)


def charge(connection: Connection, costs: Mapping[Scope, int], now: datetime) -> None:
    """Add each cost to its scope's counter (scopes without one are skipped), in scope order
    (so that two writers never lock counters in a circle), each counter reset first when its
    period has ended."""
    if not costs:
        return
    charged: dict[Scope, tuple[int, int]] = {}
    keys = [(s.kind, s.entity_id, s.model) for s in sorted(costs)]
    due = {
        Scope(row.scope_kind, row.entity_id, row.model): row
        for row in connection.execute(_DUE, {"scopes": keys, "now_": now})
    }
    for scope in sorted(costs):
        named = {"scope_kind_": scope.kind, "entity_id_": scope.entity_id, "model_": scope.model}
        ended = due.get(scope)
        if ended is not None:
            following = next_reset(parse_duration(ended.budget_duration), now, ended.reset_at)
            values = {"old_reset_at": ended.reset_at, "now_": now, "new_reset_at": following}
            connection.execute(_RESET, {**named, **values})
        spent = connection.execute(_ADD, {**named, "cost": costs[scope]}).scalar()
        if spent is not None and not scope.model:
            charged[scope] = (int(spent) - costs[scope], int(spent))
    _alert_soft_budgets(connection, charged)


def _alert_soft_budgets(connection: Connection, charged: Mapping[Scope, tuple[int, int]]) -> None:
    """Log, once, each key, team or user whose spend this period just went past its
    `soft_budget`: an alert that refuses nothing (the ledger enforces `max_budget`)."""
    for kind, (table, column) in _ENTITIES.items():
        ids = [scope.entity_id for scope in charged if scope.kind == kind]
        if not ids:
            continue
        found = connection.execute(
            select(column, table.c.soft_budget).where(
                column.in_(ids), table.c.soft_budget.is_not(None)
            )
        )
        for entity_id, soft in found:
            before, after = charged[Scope(kind, entity_id)]
            if before < soft <= after:
                logger.warning(
                    "soft budget passed: %s has spent %s this period, over its soft_budget of %s",
                    Scope(kind, entity_id).describe(),
                    describe(after),
                    describe(soft),
                )
