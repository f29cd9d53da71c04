"""The governance store's contract: what the management API and the request path may ask of it.

One Protocol, one implementation per database family behind it (`turnout.governance.sql` for
SQLite and PostgreSQL), and one contract suite that every implementation passes. Every call is
one transaction: either all of it happened or none of it did.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from turnout.governance.periods import Duration
from turnout.governance.records import (
    Budget,
    CreatedKey,
    DailySpend,
    Key,
    KeySettings,
    Page,
    Scope,
    SpendRow,
    Team,
    TeamSettings,
    User,
    UserSettings,
)


class GovernanceStore(Protocol):
    """Keys, teams, users, their budgets and the spend ledger.

    Lookups by id raise `turnout.governance.refusals.NotFoundError` for what does not exist or
    was deleted; creating what exists raises `ConflictError`; `changes` mappings name settings
    fields and are validated like the settings themselves (`ValueError` naming the field).
    """

    # -- keys ------------------------------------------------------------------------------------

    def key_hash(self, key: str) -> str:
        """The digest `key` is stored under (SHA-256, or HMAC under the configured pepper)."""
        ...

    async def create_key(self, settings: KeySettings, *, key: str | None = None) -> CreatedKey:
        """A new key (`key`, or a generated one): the key itself is in the answer only."""
        ...

    async def get_key(self, key_id: str) -> Key: ...

    async def key_by_hash(self, token_hash: str) -> Key | None:
        """The live key a presented key's digest belongs to: its current digest, or one it was
        regenerated from whose grace period has not ended. None for deleted keys. Blocked and
        expired keys are returned: refusing them is the caller's decision, with its reason."""
        ...

    async def update_key(self, key_id: str, changes: Mapping[str, Any]) -> Key: ...

    async def list_keys(
        self,
        *,
        team_id: str | None = None,
        user_id: str | None = None,
        key_alias: str | None = None,
        include_deleted: bool = False,
        offset: int = 0,
        limit: int = 100,
    ) -> Page[Key]: ...

    async def block_key(self, key_id: str) -> Key: ...

    async def unblock_key(self, key_id: str) -> Key: ...

    async def delete_key(self, key_id: str) -> Key:
        """Stop the key working for good; its row and spend stay for audit."""
        ...

    async def regenerate_key(
        self,
        key_id: str,
        *,
        grace_period: Duration | None = None,
        key: str | None = None,
        changes: Mapping[str, Any] | None = None,
    ) -> CreatedKey:
        """A new secret for the same key (its settings, budget and spend carry over); the old
        one keeps working for `grace_period` (None: it stops at once)."""
        ...

    # -- teams and users -------------------------------------------------------------------------

    async def create_team(self, settings: TeamSettings, *, team_id: str | None = None) -> Team: ...

    async def get_team(self, team_id: str) -> Team: ...

    async def update_team(self, team_id: str, changes: Mapping[str, Any]) -> Team: ...

    async def delete_team(self, team_id: str) -> Team: ...

    async def list_teams(
        self, *, include_deleted: bool = False, offset: int = 0, limit: int = 100
    ) -> Page[Team]: ...

    async def create_user(self, settings: UserSettings, *, user_id: str | None = None) -> User: ...

    async def get_user(self, user_id: str) -> User: ...

    async def update_user(self, user_id: str, changes: Mapping[str, Any]) -> User: ...

    async def delete_user(self, user_id: str) -> User: ...

    async def list_users(
        self, *, include_deleted: bool = False, offset: int = 0, limit: int = 100
    ) -> Page[User]: ...

    # -- budgets ---------------------------------------------------------------------------------

    async def budget(self, scope: Scope) -> Budget:
        """The scope's counter as of now (a period that ended reads as reset). Holds and
        admission are the ledger's (`turnout.governance.ledger`; on SQL,
        `turnout.governance.sql.ledger.SqlLedger`)."""
        ...

    # -- spend -----------------------------------------------------------------------------------

    async def write_spend(self, rows: Sequence[SpendRow]) -> int:
        """Store spend log rows; a request id already stored is skipped, and the daily
        aggregate counts each row exactly once. How many rows were new."""
        ...

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
        """Rows by start time, oldest first, with `start <= start_time < end`."""
        ...

    async def daily_spend(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        api_key: str | None = None,
        team_id: str | None = None,
        user_id: str | None = None,
    ) -> list[DailySpend]:
        """Aggregate rows for the days `start <= day <= end`."""
        ...

    async def total_spend(
        self,
        *,
        start: date | None = None,
        end: date | None = None,
        api_key: str | None = None,
        team_id: str | None = None,
        user_id: str | None = None,
    ) -> int:
        """Spend over the days `start <= day <= end` (all time by default), in micro-dollars."""
        ...

    async def aclose(self) -> None: ...
