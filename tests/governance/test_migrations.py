"""Migrations: applied at start with no setup, idempotent, and in step with the tables."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect

from governance_stores import StoreKit
from turnout.config.store import StoreConfig
from turnout.governance import KeySettings
from turnout.governance.sql import open_store
from turnout.governance.sql.migrate import current_revision, head, migrate
from turnout.governance.sql.schema import METADATA, VERSION_TABLE


async def test_the_sqlite_file_and_its_directory_are_made_on_first_start(tmp_path: Path) -> None:
    path = tmp_path / "not" / "yet" / "turnout.db"
    store = await open_store(StoreConfig(url=f"sqlite:///{path}"))
    try:
        assert path.exists()
        assert await current_revision(store.runner) == head()
        created = await store.create_key(KeySettings())
    finally:
        await store.aclose()
    with sqlite3.connect(path) as connection:
        (mode,) = connection.execute("PRAGMA journal_mode").fetchone()
        (count,) = connection.execute("SELECT count(*) FROM turnout_keys").fetchone()
    assert mode == "wal"
    assert count == 1
    reopened = await open_store(StoreConfig(url=f"sqlite:///{path}"))
    try:
        assert (await reopened.get_key(created.record.id)).token_hash == created.record.token_hash
    finally:
        await reopened.aclose()


async def test_migrating_again_changes_nothing(kit: StoreKit) -> None:
    store = await kit.open()
    await store.create_key(KeySettings(key_alias="kept"))
    await migrate(store.runner)
    await migrate(store.runner)
    again = await kit.open()
    assert [k.settings.key_alias for k in (await again.list_keys()).items] == ["kept"]
    assert await current_revision(store.runner) == head()


async def test_stores_starting_together_migrate_once(kit: StoreKit) -> None:
    stores = await asyncio.gather(*(kit.open(pool_size=1) for _ in range(4)))
    assert {await current_revision(s.runner) for s in stores} == {head()}


async def test_the_migrated_schema_is_the_tables_the_code_uses(kit: StoreKit) -> None:
    store = await kit.open()

    def differences(connection: Connection) -> list[object]:
        context = MigrationContext.configure(
            connection, opts={"version_table": VERSION_TABLE, "compare_type": True}
        )
        return list(compare_metadata(context, METADATA))

    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    assert await store.runner.read(differences) == []
    names = await store.runner.read(tables)
    assert names == {*METADATA.tables, VERSION_TABLE}
    assert all(name.startswith("turnout_") for name in names)
