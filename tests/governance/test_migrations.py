"""Migrations: applied at start with no setup, idempotent, and in step with the tables."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, inspect
from sqlalchemy.engine import URL, make_url

from governance_stores import StoreKit
from turnout.config.store import StoreConfig
from turnout.governance import KeySettings
from turnout.governance.sql import open_runner, open_store
from turnout.governance.sql.engine import create_sqlite_engine
from turnout.governance.sql.migrate import alembic_config, current_revision, head, migrate
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


async def test_upgrading_from_the_reservations_schema_keeps_recorded_spend(tmp_path: Path) -> None:
    # A database made by revision 0001 (budget reservations on the counters) with spend on a
    # counter and a reservation in flight: 0002 replaces the reservations with the SQL ledger's
    # tables and keeps what was spent.
    path = tmp_path / "turnout.db"
    runner = open_runner(StoreConfig(url=f"sqlite:///{path}"))

    def to_first(connection: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        connection.exec_driver_sql(
            "INSERT INTO turnout_budget_counters (scope_kind, entity_id, model, spend, reserved)"
            " VALUES ('team', 't', '', 1234, 500)"
        )
        connection.exec_driver_sql(
            "INSERT INTO turnout_budget_reservations VALUES "
            "('r', 500, '[]', '2026-01-01', '2026-01-02', 0)"
        )

    try:
        await runner.write(to_first)
        assert await current_revision(runner) == "0001"
        await migrate(runner)
        assert await current_revision(runner) == head()
    finally:
        await runner.aclose()
    with sqlite3.connect(path) as connection:
        (spend,) = connection.execute("SELECT spend FROM turnout_budget_counters").fetchone()
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master")}
    assert spend == 1234
    assert "turnout_budget_reservations" not in tables
    assert "turnout_ledger_holds" in tables


def test_connections_opening_a_new_sqlite_file_together_all_get_in(tmp_path: Path) -> None:
    """The switch to WAL mode can meet "database is locked" without SQLite waiting for it
    (when waiting could deadlock): every connection of stores opening together still gets in."""
    failures: list[BaseException] = []
    for round_ in range(40):
        url = make_url(f"sqlite:///{tmp_path / f'{round_}.db'}")
        ready = threading.Barrier(6)

        def connect_and_write(url: URL = url, ready: threading.Barrier = ready) -> None:
            engine = create_sqlite_engine(url, pool_size=1)
            ready.wait()
            try:
                with engine.connect() as connection:
                    connection.exec_driver_sql("CREATE TABLE IF NOT EXISTS t (x)")
                    connection.exec_driver_sql("INSERT INTO t VALUES (1)")
                    connection.commit()
            except Exception as error:  # collected: a thread's exception is otherwise lost
                failures.append(error)
            finally:
                engine.dispose()

        threads = [threading.Thread(target=connect_and_write) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
