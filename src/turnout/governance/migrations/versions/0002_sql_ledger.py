"""The SQL ledger's tables (budgets with holds, rate-limit counters, parallel leases, tickets),
which replace the reservations of revision 0001 (their table, and the counters' ``reserved``
column): one SQL budget mechanism.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCOPE = 1024
TICKET = 32


def upgrade() -> None:
    op.create_table(
        "turnout_ledger_budgets",
        sa.Column("scope", sa.String(SCOPE), primary_key=True),
        sa.Column("spent", sa.BigInteger(), nullable=False),
        sa.Column("first_ms", sa.BigInteger(), nullable=False),
        sa.Column("start_ms", sa.BigInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "turnout_ledger_holds",
        sa.Column("scope", sa.String(SCOPE), nullable=False),
        sa.Column("ticket_id", sa.String(TICKET), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "ticket_id"),
    )
    op.create_table(
        "turnout_ledger_limits",
        sa.Column("scope", sa.String(SCOPE), primary_key=True),
        sa.Column("requests_window", sa.BigInteger(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("tokens_window", sa.BigInteger(), nullable=False),
        sa.Column("tokens", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "turnout_ledger_leases",
        sa.Column("scope", sa.String(SCOPE), nullable=False),
        sa.Column("ticket_id", sa.String(TICKET), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("scope", "ticket_id"),
    )
    op.create_table(
        "turnout_ledger_tickets",
        sa.Column("ticket_id", sa.String(TICKET), primary_key=True),
        sa.Column("ended", sa.Boolean(), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
    )
    op.create_index(
        "ix_turnout_ledger_tickets_expires_ms", "turnout_ledger_tickets", ["expires_ms"]
    )
    op.drop_index("ix_turnout_budget_reservations_expires_at", "turnout_budget_reservations")
    op.drop_table("turnout_budget_reservations")
    with op.batch_alter_table("turnout_budget_counters") as counters:
        counters.drop_column("reserved")


def downgrade() -> None:
    with op.batch_alter_table("turnout_budget_counters") as counters:
        counters.add_column(
            sa.Column("reserved", sa.BigInteger(), nullable=False, server_default="0")
        )
    op.create_table(
        "turnout_budget_reservations",
        sa.Column("reservation_id", sa.String(64), primary_key=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expired", sa.Boolean(), nullable=False),
    )
    op.create_index(
        "ix_turnout_budget_reservations_expires_at", "turnout_budget_reservations", ["expires_at"]
    )
    for table in (
        "turnout_ledger_tickets",
        "turnout_ledger_leases",
        "turnout_ledger_limits",
        "turnout_ledger_holds",
        "turnout_ledger_budgets",
    ):
        op.drop_table(table)
