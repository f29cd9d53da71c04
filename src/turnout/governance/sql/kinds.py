"""The three kinds of entity the store keeps, as `entities.EntityKind`s."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from turnout.governance.records import (
    Budget,
    Key,
    KeySettings,
    Team,
    TeamSettings,
    User,
    UserSettings,
)
from turnout.governance.sql.entities import EntityKind
from turnout.governance.sql.schema import KEYS, TEAMS, USERS


def _key(row: Row[Any], settings: KeySettings, budget: Budget, spend: dict[str, int]) -> Key:
    return Key(
        id=row.key_id,
        token_hash=row.token_hash,
        key_name=row.key_name,
        settings=settings,
        budget=budget,
        model_spend=spend,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


def _team(row: Row[Any], settings: TeamSettings, budget: Budget, spend: dict[str, int]) -> Team:
    return Team(
        id=row.team_id,
        settings=settings,
        budget=budget,
        model_spend=spend,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


def _user(row: Row[Any], settings: UserSettings, budget: Budget, spend: dict[str, int]) -> User:
    return User(
        id=row.user_id,
        settings=settings,
        budget=budget,
        model_spend=spend,
        created_at=row.created_at,
        updated_at=row.updated_at,
        deleted_at=row.deleted_at,
    )


KEY_KIND = EntityKind("key", KEYS, "key_id", KeySettings, _key)
TEAM_KIND = EntityKind("team", TEAMS, "team_id", TeamSettings, _team)
USER_KIND = EntityKind("user", USERS, "user_id", UserSettings, _user)
