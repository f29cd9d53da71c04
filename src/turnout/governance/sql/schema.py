"""The tables, as SQLAlchemy Core sees them (the migrations in `turnout.governance.migrations`
create them; a test checks that the two agree).

Every name starts with ``turnout_``: a LiteLLM ``database_url`` points at a database that
already holds LiteLLM's own tables, and the two must not collide. Money columns are BIGINT
micro-dollars. Times are stored in UTC (`UtcDateTime`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite keeps no time zone: it is put back)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the store keeps aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


METADATA = MetaData()

ID = 256
HASH = 64


def _limit_columns() -> list[Column[Any]]:
    """Budget and limit columns every key, team and user row has (`records.Limits`)."""
    return [
        Column("max_budget", BigInteger),
        Column("soft_budget", BigInteger),
        Column("budget_duration", String(16)),
        Column("rpm_limit", BigInteger),
        Column("tpm_limit", BigInteger),
        Column("max_parallel_requests", BigInteger),
        Column("models", JSON, nullable=False),
        Column("metadata", JSON, nullable=False),
        Column("blocked", Boolean, nullable=False),
        Column("created_at", UtcDateTime, nullable=False),
        Column("updated_at", UtcDateTime, nullable=False),
        Column("deleted_at", UtcDateTime),
    ]


KEYS = Table(
    "turnout_keys",
    METADATA,
    Column("key_id", String(ID), primary_key=True),
    Column("token_hash", String(HASH), nullable=False, unique=True),
    Column("key_name", String(64), nullable=False),
    Column("key_alias", String(ID), index=True),
    Column("team_id", String(ID), index=True),
    Column("user_id", String(ID), index=True),
    Column("aliases", JSON, nullable=False),
    Column("expires", UtcDateTime),
    *_limit_columns(),
)

#: Digests a key was regenerated from, valid until `revoke_at` (the grace period).
DEPRECATED_KEYS = Table(
    "turnout_deprecated_keys",
    METADATA,
    Column("token_hash", String(HASH), primary_key=True),
    Column("key_id", String(ID), nullable=False, index=True),
    Column("revoke_at", UtcDateTime, nullable=False),
)

TEAMS = Table(
    "turnout_teams",
    METADATA,
    Column("team_id", String(ID), primary_key=True),
    Column("team_alias", String(ID)),
    *_limit_columns(),
)

USERS = Table(
    "turnout_users",
    METADATA,
    Column("user_id", String(ID), primary_key=True),
    Column("user_alias", String(ID)),
    Column("user_email", String(ID)),
    Column("user_role", String(64)),
    *_limit_columns(),
)

#: Per-model budgets and limits of a key, team or user (`records.ModelLimits`).
MODEL_LIMITS = Table(
    "turnout_model_limits",
    METADATA,
    Column("scope_kind", String(8), nullable=False),
    Column("entity_id", String(ID), nullable=False),
    Column("model", String(ID), nullable=False),
    Column("max_budget", BigInteger),
    Column("budget_duration", String(16)),
    Column("rpm_limit", BigInteger),
    Column("tpm_limit", BigInteger),
    PrimaryKeyConstraint("scope_kind", "entity_id", "model"),
)

#: One row per budget scope (`records.Scope`): the spend recorded in its current period.
BUDGET_COUNTERS = Table(
    "turnout_budget_counters",
    METADATA,
    Column("scope_kind", String(8), nullable=False),
    Column("entity_id", String(ID), nullable=False),
    Column("model", String(ID), nullable=False),
    Column("spend", BigInteger, nullable=False),
    Column("max_budget", BigInteger),
    Column("budget_duration", String(16)),
    Column("period_start", UtcDateTime),
    Column("reset_at", UtcDateTime),
    PrimaryKeyConstraint("scope_kind", "entity_id", "model"),
)

#: A ledger scope's name (``key:<id>:model:<name>``: an id and a model name, and the words).
SCOPE = 1024

#: `turnout.governance.sql.ledger`: one row per budget scope, times in Unix ms of the ledger's
#: clock (``end_ms`` 0: the budget has no period).
LEDGER_BUDGETS = Table(
    "turnout_ledger_budgets",
    METADATA,
    Column("scope", String(SCOPE), primary_key=True),
    Column("spent", BigInteger, nullable=False),
    Column("first_ms", BigInteger, nullable=False),
    Column("start_ms", BigInteger, nullable=False),
    Column("end_ms", BigInteger, nullable=False),
)

#: What each admitted request holds against each budget, until it ends or `expires_ms`.
LEDGER_HOLDS = Table(
    "turnout_ledger_holds",
    METADATA,
    Column("scope", String(SCOPE), nullable=False),
    Column("ticket_id", String(32), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("scope", "ticket_id"),
)

#: One row per rate-limit scope: requests and tokens counted in the minute starting at each
#: window (Unix ms).
LEDGER_LIMITS = Table(
    "turnout_ledger_limits",
    METADATA,
    Column("scope", String(SCOPE), primary_key=True),
    Column("requests_window", BigInteger, nullable=False),
    Column("requests", BigInteger, nullable=False),
    Column("tokens_window", BigInteger, nullable=False),
    Column("tokens", BigInteger, nullable=False),
)

#: Parallel-request leases of admitted requests, until they end or `expires_ms`.
LEDGER_LEASES = Table(
    "turnout_ledger_leases",
    METADATA,
    Column("scope", String(SCOPE), nullable=False),
    Column("ticket_id", String(32), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    PrimaryKeyConstraint("scope", "ticket_id"),
)

#: Tickets open (until `expires_ms`, twice the hold time) and ended (kept a hold time, so that
#: a repeated end charges nothing).
LEDGER_TICKETS = Table(
    "turnout_ledger_tickets",
    METADATA,
    Column("ticket_id", String(32), primary_key=True),
    Column("ended", Boolean, nullable=False),
    Column("expires_ms", BigInteger, nullable=False, index=True),
)

SPEND_LOGS = Table(
    "turnout_spend_logs",
    METADATA,
    Column("request_id", String(ID), primary_key=True),
    Column("api_key", String(HASH), nullable=False),
    Column("key_alias", String(ID)),
    Column("team_id", String(ID)),
    Column("user_id", String(ID)),
    Column("model_group", String(ID), nullable=False),
    Column("model", String(ID), nullable=False),
    Column("deployment", String(ID)),
    Column("provider", String(64), nullable=False),
    Column("prompt_tokens", Integer, nullable=False),
    Column("completion_tokens", Integer, nullable=False),
    Column("cached_tokens", Integer, nullable=False),
    Column("spend", BigInteger, nullable=False),
    Column("start_time", UtcDateTime, nullable=False),
    Column("end_time", UtcDateTime, nullable=False),
    Column("completion_start_time", UtcDateTime),
    Column("status", String(16), nullable=False),
    Column("attempts", Text, nullable=False),
    Column("day", Date, nullable=False),
    Index("ix_turnout_spend_logs_api_key_start_time", "api_key", "start_time"),
    Index("ix_turnout_spend_logs_start_time", "start_time"),
    Index("ix_turnout_spend_logs_day", "day"),
    Index("ix_turnout_spend_logs_team_id_start_time", "team_id", "start_time"),
    Index("ix_turnout_spend_logs_user_id_start_time", "user_id", "start_time"),
)

#: The daily aggregate: one row per UTC day, key, team, user, model group and provider ('' for
#: none, so that the primary key treats them as equal, which NULLs would not be).
DAILY_SPEND = Table(
    "turnout_daily_spend",
    METADATA,
    Column("day", Date, nullable=False),
    Column("api_key", String(HASH), nullable=False),
    Column("team_id", String(ID), nullable=False),
    Column("user_id", String(ID), nullable=False),
    Column("model_group", String(ID), nullable=False),
    Column("provider", String(64), nullable=False),
    Column("prompt_tokens", BigInteger, nullable=False),
    Column("completion_tokens", BigInteger, nullable=False),
    Column("cached_tokens", BigInteger, nullable=False),
    Column("spend", BigInteger, nullable=False),
    Column("api_requests", BigInteger, nullable=False),
    Column("successful_requests", BigInteger, nullable=False),
    Column("failed_requests", BigInteger, nullable=False),
    PrimaryKeyConstraint("day", "api_key", "team_id", "user_id", "model_group", "provider"),
    Index("ix_turnout_daily_spend_api_key_day", "api_key", "day"),
)

#: Alembic's bookkeeping table for this schema (not LiteLLM's, nor another tool's).
VERSION_TABLE = "turnout_alembic_version"
