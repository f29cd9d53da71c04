"""The governance tables: keys, teams, users, per-model limits, budget counters, reservations,
spend logs and the daily aggregate.

Revision ID: 0001
Revises: none
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

ID = 256
HASH = 64


def _when() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _limit_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("max_budget", sa.BigInteger()),
        sa.Column("soft_budget", sa.BigInteger()),
        sa.Column("budget_duration", sa.String(16)),
        sa.Column("rpm_limit", sa.BigInteger()),
        sa.Column("tpm_limit", sa.BigInteger()),
        sa.Column("max_parallel_requests", sa.BigInteger()),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("metadata", sa.JSON(), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("updated_at", _when(), nullable=False),
        sa.Column("deleted_at", _when()),
    ]


def upgrade() -> None:
    op.create_table(
        "turnout_keys",
        sa.Column("key_id", sa.String(ID), primary_key=True),
        sa.Column("token_hash", sa.String(HASH), nullable=False, unique=True),
        sa.Column("key_name", sa.String(64), nullable=False),
        sa.Column("key_alias", sa.String(ID)),
        sa.Column("team_id", sa.String(ID)),
        sa.Column("user_id", sa.String(ID)),
        sa.Column("aliases", sa.JSON(), nullable=False),
        sa.Column("expires", _when()),
        *_limit_columns(),
    )
    for column in ("key_alias", "team_id", "user_id"):
        op.create_index(f"ix_turnout_keys_{column}", "turnout_keys", [column])
    op.create_table(
        "turnout_deprecated_keys",
        sa.Column("token_hash", sa.String(HASH), primary_key=True),
        sa.Column("key_id", sa.String(ID), nullable=False),
        sa.Column("revoke_at", _when(), nullable=False),
    )
    op.create_index("ix_turnout_deprecated_keys_key_id", "turnout_deprecated_keys", ["key_id"])
    op.create_table(
        "turnout_teams",
        sa.Column("team_id", sa.String(ID), primary_key=True),
        sa.Column("team_alias", sa.String(ID)),
        *_limit_columns(),
    )
    op.create_table(
        "turnout_users",
        sa.Column("user_id", sa.String(ID), primary_key=True),
        sa.Column("user_alias", sa.String(ID)),
        sa.Column("user_email", sa.String(ID)),
        sa.Column("user_role", sa.String(64)),
        *_limit_columns(),
    )
    op.create_table(
        "turnout_model_limits",
        sa.Column("scope_kind", sa.String(8), nullable=False),
        sa.Column("entity_id", sa.String(ID), nullable=False),
        sa.Column("model", sa.String(ID), nullable=False),
        sa.Column("max_budget", sa.BigInteger()),
        sa.Column("budget_duration", sa.String(16)),
        sa.Column("rpm_limit", sa.BigInteger()),
        sa.Column("tpm_limit", sa.BigInteger()),
        sa.PrimaryKeyConstraint("scope_kind", "entity_id", "model"),
    )
    op.create_table(
        "turnout_budget_counters",
        sa.Column("scope_kind", sa.String(8), nullable=False),
        sa.Column("entity_id", sa.String(ID), nullable=False),
        sa.Column("model", sa.String(ID), nullable=False),
        sa.Column("spend", sa.BigInteger(), nullable=False),
        sa.Column("reserved", sa.BigInteger(), nullable=False),
        sa.Column("max_budget", sa.BigInteger()),
        sa.Column("budget_duration", sa.String(16)),
        sa.Column("period_start", _when()),
        sa.Column("reset_at", _when()),
        sa.PrimaryKeyConstraint("scope_kind", "entity_id", "model"),
    )
    op.create_table(
        "turnout_budget_reservations",
        sa.Column("reservation_id", sa.String(64), primary_key=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", _when(), nullable=False),
        sa.Column("expires_at", _when(), nullable=False),
        sa.Column("expired", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "ix_turnout_budget_reservations_expires_at", "turnout_budget_reservations", ["expires_at"]
    )
    _spend_tables()


def _spend_tables() -> None:
    op.create_table(
        "turnout_spend_logs",
        sa.Column("request_id", sa.String(ID), primary_key=True),
        sa.Column("api_key", sa.String(HASH), nullable=False),
        sa.Column("key_alias", sa.String(ID)),
        sa.Column("team_id", sa.String(ID)),
        sa.Column("user_id", sa.String(ID)),
        sa.Column("model_group", sa.String(ID), nullable=False),
        sa.Column("model", sa.String(ID), nullable=False),
        sa.Column("deployment", sa.String(ID)),
        sa.Column("provider", sa.String(64), nullable=False),
        sa.Column("prompt_tokens", sa.Integer(), nullable=False),
        sa.Column("completion_tokens", sa.Integer(), nullable=False),
        sa.Column("cached_tokens", sa.Integer(), nullable=False),
        sa.Column("spend", sa.BigInteger(), nullable=False),
        sa.Column("start_time", _when(), nullable=False),
        sa.Column("end_time", _when(), nullable=False),
        sa.Column("completion_start_time", _when()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Text(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
    )
    spend = "turnout_spend_logs"
    op.create_index(f"ix_{spend}_api_key_start_time", spend, ["api_key", "start_time"])
    op.create_index(f"ix_{spend}_start_time", spend, ["start_time"])
    op.create_index(f"ix_{spend}_day", spend, ["day"])
    op.create_index(f"ix_{spend}_team_id_start_time", spend, ["team_id", "start_time"])
    op.create_index(f"ix_{spend}_user_id_start_time", spend, ["user_id", "start_time"])
    op.create_table(
        "turnout_daily_spend",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("api_key", sa.String(HASH), nullable=False),
        sa.Column("team_id", sa.String(ID), nullable=False),
        sa.Column("user_id", sa.String(ID), nullable=False),
        sa.Column("model_group", sa.String(ID), nullable=False),
        sa.Column("provider", sa.String(64), nullable=False),
        *(
            sa.Column(name, sa.BigInteger(), nullable=False)
            for name in (
                "prompt_tokens",
                "completion_tokens",
                "cached_tokens",
                "spend",
                "api_requests",
                "successful_requests",
                "failed_requests",
            )
        ),
        sa.PrimaryKeyConstraint("day", "api_key", "team_id", "user_id", "model_group", "provider"),
    )
    op.create_index("ix_turnout_daily_spend_api_key_day", "turnout_daily_spend", ["api_key", "day"])


def downgrade() -> None:
    for table in (
        "turnout_daily_spend",
        "turnout_spend_logs",
        "turnout_budget_reservations",
        "turnout_budget_counters",
        "turnout_model_limits",
        "turnout_users",
        "turnout_teams",
        "turnout_deprecated_keys",
        "turnout_keys",
    ):
        op.drop_table(table)
