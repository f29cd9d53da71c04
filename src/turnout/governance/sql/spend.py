"""The spend ledger: one row per request, written in batches, and a daily aggregate.

A batch is one transaction: ``INSERT ... ON CONFLICT (request_id) DO NOTHING RETURNING
request_id`` says which rows are new, and only those are added to the daily aggregate (an
upsert that adds to the day's totals). A batch written twice (a writer that retries after a
lost connection, not knowing whether its commit landed) therefore changes nothing the second
time: no row doubled, no request counted twice in the aggregate, no cost added twice to the
budget counters of the row's key, team and user (`budgets.charge`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import msgspec
from sqlalchemy import ColumnElement, Connection, func, select

from turnout.governance.records import DailySpend, Scope, ScopeKind, SpendRow
from turnout.governance.sql import budgets
from turnout.governance.sql.dialect import upsert
from turnout.governance.sql.schema import DAILY_SPEND, DEPRECATED_KEYS, KEYS, SPEND_LOGS

#: Rows per INSERT statement: well under both backends' limits on bound parameters.
CHUNK = 500

_GROUP = ("day", "api_key", "team_id", "user_id", "model_group", "provider")
_SUMS = (
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "spend",
    "api_requests",
    "successful_requests",
    "failed_requests",
)


def write(connection: Connection, rows: Sequence[SpendRow], now: datetime) -> int:
    first: dict[str, SpendRow] = {}
    for row in rows:
        first.setdefault(row.request_id, row)
    unique = list(first.values())
    inserted = 0
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        # Rows as executemany parameters, not a VALUES list in the statement: the statement
        # is then the same for every batch and compiled once (SQLAlchemy's cache), and the
        # driver sends the rows in multi-row INSERTs all the same ("insertmanyvalues").
        # Compiling a 500-row VALUES list anew took more CPU than the gateway's requests.
        statement = (
            upsert(connection, SPEND_LOGS)
            .on_conflict_do_nothing(index_elements=["request_id"])
            .returning(SPEND_LOGS.c.request_id)
        )
        result = connection.execute(statement, [_values(row) for row in chunk])
        new = set(result.scalars())
        inserted += len(new)
        fresh = [row for row in chunk if row.request_id in new]
        _aggregate(connection, fresh)
        budgets.charge(connection, _costs(connection, fresh), now)
    return inserted


def _costs(connection: Connection, rows: Sequence[SpendRow]) -> dict[Scope, int]:
    """What each counter the rows touch is owed: their key's (found by the digest the row
    names, current or regenerated from), team's and user's, and each of those for the row's
    model group."""
    digests = {row.api_key for row in rows if row.api_key}
    key_ids: dict[str, str] = {}
    if digests:
        for table in (KEYS, DEPRECATED_KEYS):
            found = select(table.c.token_hash, table.c.key_id).where(
                table.c.token_hash.in_(digests)
            )
            key_ids.update((row.token_hash, row.key_id) for row in connection.execute(found))
    costs: dict[Scope, int] = defaultdict(int)
    for row in rows:
        owners: list[tuple[ScopeKind, str | None]] = [
            ("key", key_ids.get(row.api_key)),
            ("team", row.team_id),
            ("user", row.user_id),
        ]
        for kind, ident in owners:
            if ident is not None and row.spend:
                costs[Scope(kind, ident)] += row.spend
                if row.model_group:
                    costs[Scope(kind, ident, row.model_group)] += row.spend
    return costs


def _values(row: SpendRow) -> dict[str, Any]:
    values = msgspec.structs.asdict(row)
    values["day"] = _day(row.start_time)
    return values


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _aggregate(connection: Connection, rows: Sequence[SpendRow]) -> None:
    totals: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        group = (
            _day(row.start_time),
            row.api_key,
            row.team_id or "",
            row.user_id or "",
            row.model_group,
            row.provider,
        )
        entry = totals.get(group)
        if entry is None:
            entry = totals[group] = {**dict(zip(_GROUP, group, strict=True))}
            entry.update(dict.fromkeys(_SUMS, 0))
        entry["prompt_tokens"] += row.prompt_tokens
        entry["completion_tokens"] += row.completion_tokens
        entry["cached_tokens"] += row.cached_tokens
        entry["spend"] += row.spend
        entry["api_requests"] += 1
        entry["successful_requests"] += row.status == "success"
        entry["failed_requests"] += row.status != "success"
    if not totals:
        return
    # In one order, so that two processes' upserts of the same days never wait in a circle.
    ordered = [totals[group] for group in sorted(totals, key=_sortable)]
    statement = upsert(connection, DAILY_SPEND)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=list(_GROUP),
            set_={name: DAILY_SPEND.c[name] + statement.excluded[name] for name in _SUMS},
        ),
        ordered,
    )


def _sortable(group: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple(str(part) for part in group)


def _filters(table: Any, **values: Any) -> list[ColumnElement[bool]]:
    return [table.c[name] == value for name, value in values.items() if value is not None]


def logs(
    connection: Connection,
    *,
    start: datetime | None,
    end: datetime | None,
    limit: int,
    **equal: str | None,
) -> list[SpendRow]:
    conditions = _filters(SPEND_LOGS, **equal)
    if start is not None:
        conditions.append(SPEND_LOGS.c.start_time >= start)
    if end is not None:
        conditions.append(SPEND_LOGS.c.start_time < end)
    query = (
        select(SPEND_LOGS)
        .where(*conditions)
        .order_by(SPEND_LOGS.c.start_time, SPEND_LOGS.c.request_id)
        .limit(limit)
    )
    fields = SpendRow.__struct_fields__
    return [
        msgspec.convert({f: row._mapping[f] for f in fields}, SpendRow)
        for row in connection.execute(query)
    ]


def _day_range(start: date | None, end: date | None) -> list[ColumnElement[bool]]:
    conditions = []
    if start is not None:
        conditions.append(DAILY_SPEND.c.day >= start)
    if end is not None:
        conditions.append(DAILY_SPEND.c.day <= end)
    return conditions


def daily(
    connection: Connection, *, start: date | None, end: date | None, **equal: str | None
) -> list[DailySpend]:
    query = (
        select(DAILY_SPEND)
        .where(*_day_range(start, end), *_filters(DAILY_SPEND, **equal))
        .order_by(*(DAILY_SPEND.c[name] for name in _GROUP))
    )
    fields = DailySpend.__struct_fields__
    return [
        msgspec.convert({f: row._mapping[f] for f in fields}, DailySpend)
        for row in connection.execute(query)
    ]


def total(
    connection: Connection, *, start: date | None, end: date | None, **equal: str | None
) -> int:
    query = select(func.coalesce(func.sum(DAILY_SPEND.c.spend), 0)).where(
        *_day_range(start, end), *_filters(DAILY_SPEND, **equal)
    )
    return int(connection.scalar(query) or 0)
