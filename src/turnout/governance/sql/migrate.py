"""Apply the shipped migrations at start: programmatically, with no ``alembic.ini``.

Several instances may start at once against one database: on PostgreSQL a transaction-scoped
advisory lock lets one migrate while the others wait and then find nothing to do; on SQLite the
migration's ``BEGIN IMMEDIATE`` does the same. All of a migration runs in one transaction, so a
failed start leaves the schema as it was.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text

from turnout.governance.sql.runner import Runner
from turnout.governance.sql.schema import VERSION_TABLE

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
#: The advisory lock key migrations hold on PostgreSQL (an arbitrary constant of turnout's).
_LOCK_KEY = 7_402_118_311


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def head() -> str:
    """The newest revision shipped."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert revision is not None
    return revision


async def migrate(runner: Runner) -> None:
    """Bring the database's schema up to `head` (nothing to do when it is there)."""
    await runner.write(_upgrade)


async def current_revision(runner: Runner) -> str | None:
    return await runner.read(_current)


def _current(connection: Connection) -> str | None:
    context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
    return context.get_current_revision()


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    if _current(connection) == head():
        return
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")
