"""Keys, teams and users as rows: one generic mapping, since all three carry the same budget
and limit columns, per-model limits in `MODEL_LIMITS`, and a counter row per budget scope.

Settings fields map to columns of the same name, except ``model_limits``, which lives in its
own table. Whenever settings are written, their budget counters are brought in line in the same
transaction (`sync_counters`): the counter holds a copy of ``max_budget`` and
``budget_duration`` so that a reservation's conditional UPDATE needs no join.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

import msgspec
from sqlalchemy import ColumnElement, Connection, Row, Table, and_, delete, func, select, update

from turnout.governance.periods import next_reset, parse_duration
from turnout.governance.records import (
    Budget,
    Key,
    ModelLimits,
    ScopeKind,
    SettingsT,
    Team,
    User,
)
from turnout.governance.refusals import ConflictError, NotFoundError
from turnout.governance.sql.schema import BUDGET_COUNTERS, MODEL_LIMITS

RecordT = TypeVar("RecordT", Key, Team, User)


@dataclass(frozen=True, slots=True)
class EntityKind(Generic[SettingsT, RecordT]):
    """How one kind of entity is stored and rebuilt."""

    kind: ScopeKind
    table: Table
    id_column: str
    settings_type: type[SettingsT]
    #: (row, settings, budget, model spend) -> the record.
    build: Callable[[Row[Any], SettingsT, Budget, dict[str, int]], RecordT]

    @property
    def ident(self) -> ColumnElement[Any]:
        return self.table.c[self.id_column]

    @property
    def setting_fields(self) -> tuple[str, ...]:
        return tuple(f for f in self.settings_type.__struct_fields__ if f != "model_limits")


def settings_values(settings: msgspec.Struct) -> dict[str, Any]:
    """The settings' columns (all but ``model_limits``)."""
    values = msgspec.structs.asdict(settings)
    values.pop("model_limits", None)
    values["models"] = list(values["models"])
    return values


def merged(settings: SettingsT, changes: Mapping[str, Any]) -> SettingsT:
    """`settings` with `changes` applied, validated as a whole (`ValueError` names the field)."""
    data = msgspec.to_builtins(settings)
    data.update(msgspec.to_builtins(dict(changes)))
    try:
        return msgspec.convert(data, type(settings))
    except msgspec.ValidationError as exc:
        raise ValueError(str(exc)) from None


def insert(
    connection: Connection,
    kind: EntityKind[SettingsT, Any],
    entity_id: str,
    settings: SettingsT,
    now: datetime,
    **extra: Any,
) -> None:
    taken = connection.scalar(
        select(func.count()).select_from(kind.table).where(kind.ident == entity_id)
    )
    if taken:
        raise ConflictError(f"{kind.kind} {entity_id!r} exists")
    connection.execute(
        kind.table.insert().values(
            {
                kind.id_column: entity_id,
                **settings_values(settings),
                **extra,
                "created_at": now,
                "updated_at": now,
                "deleted_at": None,
            }
        )
    )
    write_model_limits(connection, kind.kind, entity_id, settings.model_limits)
    sync_counters(connection, kind.kind, entity_id, settings, now)


def update_settings(
    connection: Connection,
    kind: EntityKind[SettingsT, Any],
    entity_id: str,
    settings: SettingsT,
    now: datetime,
    **extra: Any,
) -> None:
    connection.execute(
        update(kind.table)
        .where(kind.ident == entity_id)
        .values(**settings_values(settings), **extra, updated_at=now)
    )
    write_model_limits(connection, kind.kind, entity_id, settings.model_limits)
    sync_counters(connection, kind.kind, entity_id, settings, now)


def load(
    connection: Connection,
    kind: EntityKind[SettingsT, RecordT],
    *conditions: ColumnElement[bool],
    now: datetime,
    include_deleted: bool = False,
    offset: int = 0,
    limit: int | None = None,
    lock: bool = False,
) -> list[RecordT]:
    """The records matching `conditions`, oldest first, with their budgets as of `now`;
    `lock`: their rows stay locked until the transaction ends (PostgreSQL's ``FOR UPDATE``;
    SQLite's write transactions hold the whole database already)."""
    query = select(kind.table).where(*conditions)
    if lock:
        query = query.with_for_update()
    if not include_deleted:
        query = query.where(kind.table.c.deleted_at.is_(None))
    query = query.order_by(kind.table.c.created_at, kind.ident).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    rows = (connection.execute(query)).all()
    ids = [row._mapping[kind.id_column] for row in rows]
    limits = _model_limits(connection, kind.kind, ids)
    counters = _counters(connection, kind.kind, ids, now)
    records = []
    for row, ident in zip(rows, ids, strict=True):
        data = {f: row._mapping[f] for f in kind.setting_fields}
        data["model_limits"] = limits.get(ident, {})
        settings = msgspec.convert(data, kind.settings_type)
        own = counters.get(ident, {})
        budget = own.pop("", Budget())
        spend = {model: counter.spend for model, counter in own.items()}
        records.append(kind.build(row, settings, budget, spend))
    return records


def load_one(
    connection: Connection,
    kind: EntityKind[SettingsT, RecordT],
    entity_id: str,
    *,
    now: datetime,
    include_deleted: bool = False,
    lock: bool = False,
) -> RecordT:
    found = load(
        connection,
        kind,
        kind.ident == entity_id,
        now=now,
        include_deleted=include_deleted,
        lock=lock,
    )
    if not found:
        raise NotFoundError(kind.kind, entity_id)
    return found[0]


def count(
    connection: Connection,
    kind: EntityKind[Any, Any],
    *conditions: ColumnElement[bool],
    include_deleted: bool = False,
) -> int:
    query = select(func.count()).select_from(kind.table).where(*conditions)
    if not include_deleted:
        query = query.where(kind.table.c.deleted_at.is_(None))
    return int(connection.scalar(query) or 0)


def write_model_limits(
    connection: Connection, scope_kind: str, entity_id: str, limits: Mapping[str, ModelLimits]
) -> None:
    table = MODEL_LIMITS
    connection.execute(
        delete(table).where(table.c.scope_kind == scope_kind, table.c.entity_id == entity_id)
    )
    if limits:
        connection.execute(
            table.insert(),
            [
                {
                    "scope_kind": scope_kind,
                    "entity_id": entity_id,
                    "model": model,
                    **msgspec.structs.asdict(limit),
                }
                for model, limit in limits.items()
            ],
        )


def sync_counters(
    connection: Connection,
    scope_kind: str,
    entity_id: str,
    settings: Any,
    now: datetime,
) -> None:
    """Counters for the entity and each of its budgeted models, carrying their budgets; a
    counter whose period length changed starts a new period now. Spend is never touched."""
    table = BUDGET_COUNTERS
    wanted: dict[str, tuple[int | None, str | None]] = {
        "": (settings.max_budget, settings.budget_duration)
    }
    for model, limit in settings.model_limits.items():
        wanted[model] = (limit.max_budget, limit.budget_duration)
    mine = and_(table.c.scope_kind == scope_kind, table.c.entity_id == entity_id)
    existing = {
        row.model: row
        for row in connection.execute(
            select(table.c.model, table.c.max_budget, table.c.budget_duration).where(mine)
        )
    }
    for model in existing.keys() - wanted.keys():
        # A model whose limits were removed keeps counting its spend, with no budget.
        wanted[model] = (None, None)
    for model, (max_budget, duration) in sorted(wanted.items()):
        reset_at = next_reset(parse_duration(duration), now) if duration else None
        old = existing.get(model)
        if old is None:
            connection.execute(
                table.insert().values(
                    scope_kind=scope_kind,
                    entity_id=entity_id,
                    model=model,
                    spend=0,
                    max_budget=max_budget,
                    budget_duration=duration,
                    period_start=now,
                    reset_at=reset_at,
                )
            )
        elif (old.max_budget, old.budget_duration) != (max_budget, duration):
            values: dict[str, Any] = {"max_budget": max_budget}
            if old.budget_duration != duration:
                values.update(budget_duration=duration, period_start=now, reset_at=reset_at)
            connection.execute(update(table).where(mine, table.c.model == model).values(values))


def _model_limits(
    connection: Connection, scope_kind: str, ids: Sequence[str]
) -> dict[str, dict[str, ModelLimits]]:
    if not ids:
        return {}
    table = MODEL_LIMITS
    rows = connection.execute(
        select(table).where(table.c.scope_kind == scope_kind, table.c.entity_id.in_(ids))
    )
    found: dict[str, dict[str, ModelLimits]] = {}
    for row in rows:
        found.setdefault(row.entity_id, {})[row.model] = ModelLimits(
            max_budget=row.max_budget,
            budget_duration=row.budget_duration,
            rpm_limit=row.rpm_limit,
            tpm_limit=row.tpm_limit,
        )
    return found


def _counters(
    connection: Connection, scope_kind: str, ids: Sequence[str], now: datetime
) -> dict[str, dict[str, Budget]]:
    if not ids:
        return {}
    table = BUDGET_COUNTERS
    rows = connection.execute(
        select(table).where(table.c.scope_kind == scope_kind, table.c.entity_id.in_(ids))
    )
    found: dict[str, dict[str, Budget]] = {}
    for row in rows:
        found.setdefault(row.entity_id, {})[row.model] = budget_of(row, now)
    return found


def budget_of(row: Row[Any], now: datetime) -> Budget:
    """A counter row as a `Budget` at `now`: a period that ended reads as the next one,
    begun with no spend (what the next write to the row will make of it)."""
    if row.reset_at is not None and row.reset_at <= now:
        return Budget(
            spend=0,
            max_budget=row.max_budget,
            budget_duration=row.budget_duration,
            period_start=now,
            reset_at=next_reset(parse_duration(row.budget_duration), now, row.reset_at),
        )
    return Budget(
        spend=row.spend,
        max_budget=row.max_budget,
        budget_duration=row.budget_duration,
        period_start=row.period_start,
        reset_at=row.reset_at,
    )
