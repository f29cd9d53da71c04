"""`GovernanceStore` on SQLite or PostgreSQL, through SQLAlchemy Core.

Each method is one transaction: a plain function of a connection, run by the `Runner` for the
database (`turnout.governance.sql.runner`). The SQL lives in the modules beside this one
(`entities`, `budgets`, `spend`). Times come from `now` (aware UTC), injected so that tests can
cross a budget period without waiting for one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, select, update

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
    Scope,
    SettingsT,
    SpendRow,
    Team,
    TeamSettings,
    User,
    UserSettings,
)
from turnout.governance.refusals import ConflictError, NotFoundError
from turnout.governance.sql import budgets, entities, spend
from turnout.governance.sql.entities import EntityKind
from turnout.governance.sql.kinds import KEY_KIND, TEAM_KIND, USER_KIND
from turnout.governance.sql.runner import Runner
from turnout.governance.sql.schema import DEPRECATED_KEYS, KEYS


def utc_now() -> datetime:
    return datetime.now(UTC)


class SqlGovernanceStore:
    """The store over one `Runner` (see `turnout.governance.sql.open_store`)."""

    def __init__(
        self,
        runner: Runner,
        *,
        hasher: KeyHasher | None = None,
        now: Callable[[], datetime] = utc_now,
    ) -> None:
        self.runner = runner
        self._hasher = hasher or KeyHasher()
        self._now = now

    async def aclose(self) -> None:
        await self.runner.aclose()

    # -- keys ------------------------------------------------------------------------------------

    def key_hash(self, key: str) -> str:
        return self._hasher.digest(key)

    async def create_key(self, settings: KeySettings, *, key: str | None = None) -> CreatedKey:
        key = generate_key() if key is None else key
        if not key:
            raise ValueError("key: must not be empty")
        key_id = uuid.uuid4().hex
        now = self._now()

        def create(connection: Connection) -> Key:
            _check_refs(connection, settings)
            token_hash = self._free_hash(connection, key)
            extra = {"token_hash": token_hash, "key_name": abbreviate(key)}
            entities.insert(connection, KEY_KIND, key_id, settings, now, **extra)
            return entities.load_one(connection, KEY_KIND, key_id, now=now)

        return CreatedKey(key=key, record=await self.runner.write(create))

    async def get_key(self, key_id: str) -> Key:
        return await self._get(KEY_KIND, key_id)

    async def key_by_hash(self, token_hash: str) -> Key | None:
        now = self._now()

        def find(connection: Connection) -> Key | None:
            found = entities.load(connection, KEY_KIND, KEYS.c.token_hash == token_hash, now=now)
            if found:
                return found[0]
            key_id = connection.scalar(
                select(DEPRECATED_KEYS.c.key_id).where(
                    DEPRECATED_KEYS.c.token_hash == token_hash, DEPRECATED_KEYS.c.revoke_at > now
                )
            )
            if key_id is None:
                return None
            found = entities.load(connection, KEY_KIND, KEYS.c.key_id == key_id, now=now)
            return found[0] if found else None

        return await self.runner.read(find)

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
        filters = (("team_id", team_id), ("user_id", user_id), ("key_alias", key_alias))
        conditions = [KEYS.c[name] == value for name, value in filters if value is not None]
        return await self._page(KEY_KIND, conditions, include_deleted, offset, limit)

    async def block_key(self, key_id: str) -> Key:
        return await self._update(KEY_KIND, key_id, {"blocked": True})

    async def unblock_key(self, key_id: str) -> Key:
        return await self._update(KEY_KIND, key_id, {"blocked": False})

    async def delete_key(self, key_id: str) -> Key:
        def remove(connection: Connection) -> Key:
            record = self._delete(connection, KEY_KIND, key_id)
            connection.execute(DEPRECATED_KEYS.delete().where(DEPRECATED_KEYS.c.key_id == key_id))
            return record

        return await self.runner.write(remove)

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

        def regenerate(connection: Connection) -> Key:
            current = entities.load_one(connection, KEY_KIND, key_id, now=now, lock=True)
            token_hash = self._free_hash(connection, key)
            if grace_period is not None:
                connection.execute(
                    DEPRECATED_KEYS.insert().values(
                        token_hash=current.token_hash,
                        key_id=key_id,
                        revoke_at=expires_at(grace_period, now),
                    )
                )
            connection.execute(
                update(KEYS)
                .where(KEYS.c.key_id == key_id)
                .values(token_hash=token_hash, key_name=abbreviate(key), updated_at=now)
            )
            if changes:
                settings = entities.merged(current.settings, changes)
                _check_refs(connection, settings)
                entities.update_settings(connection, KEY_KIND, key_id, settings, now)
            return entities.load_one(connection, KEY_KIND, key_id, now=now)

        return CreatedKey(key=key, record=await self.runner.write(regenerate))

    def _free_hash(self, connection: Connection, key: str) -> str:
        """`key`'s digest, if no key (live, deleted or in a grace period) has it already."""
        token_hash = self._hasher.digest(key)
        taken = connection.scalar(
            select(KEYS.c.key_id).where(KEYS.c.token_hash == token_hash)
        ) or connection.scalar(
            select(DEPRECATED_KEYS.c.key_id).where(DEPRECATED_KEYS.c.token_hash == token_hash)
        )
        if taken is not None:
            raise ConflictError("key: this key is taken; choose another")
        return token_hash

    # -- teams and users -------------------------------------------------------------------------

    async def create_team(self, settings: TeamSettings, *, team_id: str | None = None) -> Team:
        return await self._create(TEAM_KIND, team_id or str(uuid.uuid4()), settings)

    async def get_team(self, team_id: str) -> Team:
        return await self._get(TEAM_KIND, team_id)

    async def update_team(self, team_id: str, changes: Mapping[str, Any]) -> Team:
        return await self._update(TEAM_KIND, team_id, changes)

    async def delete_team(self, team_id: str) -> Team:
        return await self.runner.write(lambda c: self._delete(c, TEAM_KIND, team_id))

    async def list_teams(
        self, *, include_deleted: bool = False, offset: int = 0, limit: int = 100
    ) -> Page[Team]:
        return await self._page(TEAM_KIND, [], include_deleted, offset, limit)

    async def create_user(self, settings: UserSettings, *, user_id: str | None = None) -> User:
        return await self._create(USER_KIND, user_id or str(uuid.uuid4()), settings)

    async def get_user(self, user_id: str) -> User:
        return await self._get(USER_KIND, user_id)

    async def update_user(self, user_id: str, changes: Mapping[str, Any]) -> User:
        return await self._update(USER_KIND, user_id, changes)

    async def delete_user(self, user_id: str) -> User:
        return await self.runner.write(lambda c: self._delete(c, USER_KIND, user_id))

    async def list_users(
        self, *, include_deleted: bool = False, offset: int = 0, limit: int = 100
    ) -> Page[User]:
        return await self._page(USER_KIND, [], include_deleted, offset, limit)

    # -- the generic parts -----------------------------------------------------------------------

    async def _create(
        self, kind: EntityKind[SettingsT, EntityT], ident: str, settings: SettingsT
    ) -> EntityT:
        now = self._now()

        def create(connection: Connection) -> EntityT:
            entities.insert(connection, kind, ident, settings, now)
            return entities.load_one(connection, kind, ident, now=now)

        return await self.runner.write(create)

    async def _get(self, kind: EntityKind[Any, EntityT], ident: str) -> EntityT:
        now = self._now()
        return await self.runner.read(lambda c: entities.load_one(c, kind, ident, now=now))

    async def _update(
        self, kind: EntityKind[Any, EntityT], ident: str, changes: Mapping[str, Any]
    ) -> EntityT:
        now = self._now()

        def change(connection: Connection) -> EntityT:
            current = entities.load_one(connection, kind, ident, now=now, lock=True)
            settings = entities.merged(current.settings, changes)
            if isinstance(settings, KeySettings):
                _check_refs(connection, settings)
            entities.update_settings(connection, kind, ident, settings, now)
            return entities.load_one(connection, kind, ident, now=now)

        return await self.runner.write(change)

    def _delete(
        self, connection: Connection, kind: EntityKind[Any, EntityT], ident: str
    ) -> EntityT:
        now = self._now()
        entities.load_one(connection, kind, ident, now=now)
        connection.execute(
            update(kind.table).where(kind.ident == ident).values(deleted_at=now, updated_at=now)
        )
        return entities.load_one(connection, kind, ident, now=now, include_deleted=True)

    async def _page(
        self,
        kind: EntityKind[Any, EntityT],
        conditions: Sequence[ColumnElement[bool]],
        include_deleted: bool,
        offset: int,
        limit: int,
    ) -> Page[EntityT]:
        if offset < 0 or limit < 1:
            raise ValueError("offset must be at least 0 and limit at least 1")
        now = self._now()

        def page(connection: Connection) -> Page[EntityT]:
            items = entities.load(
                connection,
                kind,
                *conditions,
                now=now,
                include_deleted=include_deleted,
                offset=offset,
                limit=limit,
            )
            total = entities.count(connection, kind, *conditions, include_deleted=include_deleted)
            return Page(items=items, total=total)

        return await self.runner.read(page)

    # -- budgets ---------------------------------------------------------------------------------

    async def budget(self, scope: Scope) -> Budget:
        now = self._now()
        return await self.runner.read(lambda c: budgets.read(c, scope, now))

    # -- spend -----------------------------------------------------------------------------------

    async def write_spend(self, rows: Sequence[SpendRow]) -> int:
        if not rows:
            return 0
        now = self._now()
        return await self.runner.write(lambda c: spend.write(c, rows, now))

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
        equal = {
            "api_key": api_key,
            "user_id": user_id,
            "team_id": team_id,
            "request_id": request_id,
        }
        return await self.runner.read(
            lambda c: spend.logs(c, start=start, end=end, limit=limit, **equal)
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
        equal = {"api_key": api_key, "team_id": team_id, "user_id": user_id}
        return await self.runner.read(lambda c: spend.daily(c, start=start, end=end, **equal))

    async def total_spend(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        api_key: str | None = None,
        team_id: str | None = None,
        user_id: str | None = None,
    ) -> int:
        equal = {"api_key": api_key, "team_id": team_id, "user_id": user_id}
        return await self.runner.read(lambda c: spend.total(c, start=start, end=end, **equal))


def _check_refs(connection: Connection, settings: KeySettings) -> None:
    """The key's team and user exist (and are not deleted)."""
    for kind, ident in ((TEAM_KIND, settings.team_id), (USER_KIND, settings.user_id)):
        if ident is not None and not entities.count(connection, kind, kind.ident == ident):
            raise NotFoundError(kind.kind, ident)
