"""Alembic's environment: migrate over the connection the store hands in (see `migrate.py`)."""

from __future__ import annotations

from alembic import context

from turnout.governance.sql.schema import METADATA, VERSION_TABLE

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=METADATA,
    version_table=VERSION_TABLE,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
