"""The few statements that differ between SQLite and PostgreSQL: INSERT ... ON CONFLICT."""

from __future__ import annotations

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def upsert(connection: Connection, table: Table) -> postgresql.Insert | sqlite.Insert:
    """An INSERT with ``on_conflict_do_nothing`` / ``on_conflict_do_update`` (both backends
    spell ON CONFLICT alike; SQLAlchemy builds it from the dialect's own construct)."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)
