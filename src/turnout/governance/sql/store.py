"""`GovernanceStore` on SQLite or PostgreSQL, through SQLAlchemy Core's async API.

Each method is one transaction (`_write` or `_read`); the SQL lives in the modules beside this
one (`entities`, `budgets`, `spend`), which take the open connection. Times come from `now`
(aware UTC), injected so that tests can cross a budget period without waiting for one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from turnout.governance.keys import KeyHasher, abbreviate, generate_key
from turnout.governance.periods import Duration, expires_at
from turnout.governance.records import (
    Budget,
    CreatedKey,
    DailySpend,
    EntityT,
    Key,
    KeySettings,
    Page,
    Reservation,
    Scope,
    SettingsT,
    SpendRow,
    Team,
    TeamSettings,
    User,
    UserSettings,
)
from turnout.governance.refusals import BudgetExceededError, ConflictError, NotFoundError
from turnout.governance.sql import budgets, entities, spend
from turnout.governance.sql.engine import READ_ONLY
from turnout.governance.sql.kinds import KEY_KIND, TEAM_KIND, USER_KIND
from turnout.governance.sql.schema import DEPRECATED_KEYS, KEYS


def utc_now() -> datetime:
    return datetime.now(UTC)


class SqlGovernanceStore:
    """The store over one async engine (see `turnout.governance.sql.open_store`)."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        hasher: KeyHasher | None = None,
        reservation_ttl: float = 3600.0,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self._engine = engine
        self._hasher = hasher or KeyHasher()
        self._ttl = timedelta(seconds=reservation_ttl)
        self._now = now
        #: Per-model counters known to exist (counters are never deleted).
        self._model_counters: set[Scope] = set()
        #: SQLite has one writer at a time: this process's writers queue here, in order, rather
        #: than in SQLite's busy handler, which polls with sleeps of up to 100 ms.
        self._write_turn = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        if self._write_turn is None:
            async with self._engine.begin() as connection:
                yield connection
            return
        async with self._write_turn, self._engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self._engine.connect() as connection:
            await connection.execution_options(**{READ_ONLY: True})
            async with connection.begin():
                yield connection

    async def aclose(self) -> None:
        await self._engine.dispose()

    # -- keys ------------------------------------------------------------------------------------

    def key_hash(self, key: str) -> str:
        return self._hasher.digest(key)

    async def create_key(self, settings: KeySettings, *, key: str | None = None) -> CreatedKey:
        key = generate_key() if key is None else key
        if not key:
            raise ValueError("key: must not be empty")
        key_id = uuid.uuid4().hex
        now = self._now()
        async with self._write() as connection:
            await self._check_refs(connection, settings)
            token_hash = await self._free_hash(connection, key)
            await entities.insert(
                connection,
                KEY_KIND,
                key_id,
                settings,
                now,
                token_hash=token_hash,
                key_name=abbreviate(key),
            )
            record = await entities.load_one(connection, KEY_KIND, key_id, now=now)
        return CreatedKey(key=key, record=record)

    async def get_key(self, key_id: str) -> Key:
        async with self._read() as connection:
            return await entities.load_one(connection, KEY_KIND, key_id, now=self._now())

    async def key_by_hash(self, token_hash: str) -> Key | None:
        now = self._now()
        async with self._read() as connection:
            found = await entities.load(
                connection, KEY_KIND, KEYS.c.token_hash == token_hash, now=now
            )
            if found:
                return found[0]
            key_id = await connection.scalar(
                select(DEPRECATED_KEYS.c.key_id).where(
                    DEPRECATED_KEYS.c.token_hash == token_hash, DEPRECATED_KEYS.c.revoke_at > now
                )
            )
            if key_id is None:
                return None
            found = await entities.load(connection, KEY_KIND, KEYS.c.key_id == key_id, now=now)
            return found[0] if found else None

    async def update_key(self, key_id: str, changes: Mapping[str, Any]) -> Key:
        return await self._update(KEY_KIND, key_id, changes)

    async def list_keys(
        self,
        *,
        team_id: str | None = None,
        user_id: str | None = None,
        key_alias: str | None = None,
        include_deleted: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[Key]:
        conditions = [
            KEYS.c[name] == value
            for name, value in (
                ("team_id", team_id),
                ("user_id", user_id),
                ("key_alias", key_alias),
            )
            if value is not None
        ]
        return await self._page(KEY_KIND, conditions, include_deleted, offset, limit)

    async def block_key(self, key_id: str) -> Key:
        return await self._update(KEY_KIND, key_id, {"blocked": True})

    async def unblock_key(self, key_id: str) -> Key:
        return await self._update(KEY_KIND, key_id, {"blocked": False})

    async def delete_key(self, key_id: str) -> Key:
        async with self._write() as connection:
            record = await self._delete(connection, KEY_KIND, key_id)
            await connection.execute(
                DEPRECATED_KEYS.delete().where(DEPRECATED_KEYS.c.key_id == key_id)
            )
            return record

    async def regenerate_key(
        self,
        key_id: str,
        *,
        grace_period: Duration | None = None,
        key: str | None = None,
        changes: Mapping[str, Any] | None = None,
    ) -> CreatedKey:
        key = generate_key() if key is None else key
        if not key:
            raise ValueError("new_key: must not be empty")
        now = self._now()
        async with self._write() as connection:
            current = await entities.load_one(connection, KEY_KIND, key_id, now=now, lock=True)
            token_hash = await self._free_hash(connection, key)
            if grace_period is not None:
                await connection.execute(
                    DEPRECATED_KEYS.insert().values(
                        token_hash=current.token_hash,
                        key_id=key_id,
                        revoke_at=expires_at(grace_period, now),
                    )
                )
            await connection.execute(
                update(KEYS)
                .where(KEYS.c.key_id == key_id)
                .values(token_hash=token_hash, key_name=abbreviate(key), updated_at=now)
            )
            if changes:
                settings = entities.merged(current.settings, changes)
                await self._check_refs(connection, settings)
                await entities.update_settings(connection, KEY_KIND, key_id, settings, now)
            record = await entities.load_one(connection, KEY_KIND, key_id, now=now)
        return CreatedKey(key=key, record=record)

    async def _free_hash(self, connection: AsyncConnection, key: str) -> str:
        """`key`'s digest, if no key (live, deleted or in a grace period) has it already."""
        token_hash = self._hasher.digest(key)
        taken = await connection.scalar(
            select(KEYS.c.key_id).where(KEYS.c.token_hash == token_hash)
        ) or await connection.scalar(
            select(DEPRECATED_KEYS.c.key_id).where(DEPRECATED_KEYS.c.token_hash == token_hash)
        )
        if taken is not None:
            raise ConflictError("key: this key is taken; choose another")
        return token_hash

    async def _check_refs(self, connection: AsyncConnection, settings: KeySettings) -> None:
        for kind, ident in ((TEAM_KIND, settings.team_id), (USER_KIND, settings.user_id)):
            if ident is not None and not await entities.count(
                connection, kind, kind.ident == ident
            ):
                raise NotFoundError(kind.kind, ident)

    # -- teams and users -------------------------------------------------------------------------

    async def create_team(self, settings: TeamSettings, *, team_id: str | None = None) -> Team:
        return await self._create(TEAM_KIND, team_id or str(uuid.uuid4()), settings)

    async def get_team(self, team_id: str) -> Team:
        async with self._read() as connection:
            return await entities.load_one(connection, TEAM_KIND, team_id, now=self._now())

    async def update_team(self, team_id: str, changes: Mapping[str, Any]) -> Team:
        return await self._update(TEAM_KIND, team_id, changes)

    async def delete_team(self, team_id: str) -> Team:
        async with self._write() as connection:
            return await self._delete(connection, TEAM_KIND, team_id)

    async def list_teams(
        self, *, include_deleted: bool = False, offset: int = 0, limit: int = 100
    ) -> Page[Team]:
        return await self._page(TEAM_KIND, [], include_deleted, offset, limit)

    async def create_user(self, settings: UserSettings, *, user_id: str | None = None) -> User:
        return await self._create(USER_KIND, user_id or str(uuid.uuid4()), settings)

    async def get_user(self, user_id: str) -> User:
        async with self._read() as connection:
            return await entities.load_one(connection, USER_KIND, user_id, now=self._now())

    async def update_user(self, user_id: str, changes: Mapping[str, Any]) -> User:
        return await self._update(USER_KIND, user_id, changes)

    async def delete_user(self, user_id: str) -> User:
        async with self._write() as connection:
            return await self._delete(connection, USER_KIND, user_id)

    async def list_users(
        self, *, include_deleted: bool = False, offset: int = 0, limit: int = 100
    ) -> Page[User]:
        return await self._page(USER_KIND, [], include_deleted, offset, limit)

    # -- the generic parts -----------------------------------------------------------------------

    async def _create(
        self, kind: entities.EntityKind[SettingsT, EntityT], ident: str, settings: SettingsT
    ) -> EntityT:
        now = self._now()
        async with self._write() as connection:
            await entities.insert(connection, kind, ident, settings, now)
            return await entities.load_one(connection, kind, ident, now=now)

    async def _update(
        self, kind: entities.EntityKind[Any, EntityT], ident: str, changes: Mapping[str, Any]
    ) -> EntityT:
        now = self._now()
        async with self._write() as connection:
            current = await entities.load_one(connection, kind, ident, now=now, lock=True)
            settings = entities.merged(current.settings, changes)
            if isinstance(settings, KeySettings):
                await self._check_refs(connection, settings)
            await entities.update_settings(connection, kind, ident, settings, now)
            return await entities.load_one(connection, kind, ident, now=now)

    async def _delete(
        self, connection: AsyncConnection, kind: entities.EntityKind[Any, EntityT], ident: str
    ) -> EntityT:
        now = self._now()
        await entities.load_one(connection, kind, ident, now=now)
        await connection.execute(
            update(kind.table).where(kind.ident == ident).values(deleted_at=now, updated_at=now)
        )
        return await entities.load_one(connection, kind, ident, now=now, include_deleted=True)

    async def _page(
        self,
        kind: entities.EntityKind[Any, EntityT],
        conditions: Sequence[ColumnElement[bool]],
        include_deleted: bool,
        offset: int,
        limit: int,
    ) -> Page[EntityT]:
        if offset < 0 or limit < 1:
            raise ValueError("offset must be at least 0 and limit at least 1")
        async with self._read() as connection:
            items = await entities.load(
                connection,
                kind,
                *conditions,
                now=self._now(),
                include_deleted=include_deleted,
                offset=offset,
                limit=limit,
            )
            total = await entities.count(
                connection, kind, *conditions, include_deleted=include_deleted
            )
        return Page(items=items, total=total)

    # -- budgets ---------------------------------------------------------------------------------

    async def reserve(self, scopes: Sequence[Scope], amount: int) -> Reservation:
        if amount < 0:
            raise ValueError("amount: a reservation is at least 0")
        if not scopes:
            raise ValueError("scopes: a reservation holds against at least one budget")
        try:
            return await self._reserve(scopes, amount)
        except BudgetExceededError:
            # Holds of reservations whose holder died may be what fills the budget.
            if not await self.expire_reservations():
                raise
            return await self._reserve(scopes, amount)

    async def _reserve(self, scopes: Sequence[Scope], amount: int) -> Reservation:
        now = self._now()
        reservation = Reservation(
            reservation_id=uuid.uuid4().hex,
            amount=amount,
            scopes=tuple(sorted(set(scopes))),
            expires_at=now + self._ttl,
        )
        missing = [s for s in reservation.scopes if s.model and s not in self._model_counters]
        if missing:
            async with self._write() as connection:
                await budgets.ensure_model_counters(connection, missing, now)
            self._model_counters.update(missing)
        async with self._write() as connection:
            await budgets.hold(connection, reservation.scopes, amount, now)
            await budgets.record(
                connection,
                reservation.reservation_id,
                reservation.scopes,
                amount,
                now,
                reservation.expires_at,
            )
        return reservation

    async def settle(self, reservation: Reservation, cost: int) -> bool:
        if cost < 0:
            raise ValueError("cost: at least 0")
        async with self._write() as connection:
            return await budgets.finish(connection, reservation.reservation_id, cost, self._now())

    async def release(self, reservation: Reservation) -> bool:
        return await self.settle(reservation, 0)

    async def expire_reservations(self) -> int:
        async with self._write() as connection:
            return await budgets.expire(connection, self._now())

    async def budget(self, scope: Scope) -> Budget:
        async with self._read() as connection:
            return await budgets.read(connection, scope, self._now())

    # -- spend -----------------------------------------------------------------------------------

    async def write_spend(self, rows: Sequence[SpendRow]) -> int:
        if not rows:
            return 0
        async with self._write() as connection:
            return await spend.write(connection, rows)

    async def spend_logs(
        self,
        *,
        api_key: str | None = None,
        user_id: str | None = None,
        team_id: str | None = None,
        request_id: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        limit: int = 1000,
    ) -> list[SpendRow]:
        async with self._read() as connection:
            return await spend.logs(
                connection,
                start=start,
                end=end,
                limit=limit,
                api_key=api_key,
                user_id=user_id,
                team_id=team_id,
                request_id=request_id,
            )

    async def daily_spend(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        api_key: str | None = None,
        team_id: str | None = None,
        user_id: str | None = None,
    ) -> list[DailySpend]:
        async with self._read() as connection:
            return await spend.daily(
                connection, start=start, end=end, api_key=api_key, team_id=team_id, user_id=user_id
            )

    async def total_spend(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        api_key: str | None = None,
        team_id: str | None = None,
        user_id: str | None = None,
    ) -> int:
        async with self._read() as connection:
            return await spend.total(
                connection, start=start, end=end, api_key=api_key, team_id=team_id, user_id=user_id
            )
