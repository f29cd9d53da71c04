"""The governance store on SQL: SQLite (default, a file) or PostgreSQL, one implementation.

`open_store` builds the engine for a `StoreConfig`, applies the shipped migrations (creating the
SQLite file and its tables on first start) and returns a `SqlGovernanceStore`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from turnout.config.store import StoreConfig
from turnout.governance.keys import KeyHasher
from turnout.governance.sql.engine import (
    create_postgres_engine,
    create_sqlite_engine,
    store_url,
)
from turnout.governance.sql.failures import is_store_failure, rejects_rows
from turnout.governance.sql.ledger import SqlLedger
from turnout.governance.sql.migrate import migrate
from turnout.governance.sql.runner import AsyncEngineRunner, Runner, ThreadRunner
from turnout.governance.sql.store import SqlGovernanceStore, utc_now

__all__ = [
    "SqlGovernanceStore",
    "SqlLedger",
    "is_store_failure",
    "open_runner",
    "open_store",
    "rejects_rows",
]


def open_runner(config: StoreConfig) -> Runner:
    """The runner of transactions for the configured database (nothing is connected yet)."""
    url = store_url(config.url, config.password)
    if url.get_backend_name() == "sqlite":
        engine = create_sqlite_engine(url, pool_size=config.pool_size + 1)
        return ThreadRunner(engine, readers=config.pool_size)
    return AsyncEngineRunner(create_postgres_engine(url, pool_size=config.pool_size))


async def open_store(
    config: StoreConfig, *, now: Callable[[], datetime] = utc_now
) -> SqlGovernanceStore:
    """A ready store for `config`, its schema migrated to the newest version."""
    runner = open_runner(config)
    try:
        await migrate(runner)
    except BaseException:
        await runner.aclose()
        raise
    return SqlGovernanceStore(
        runner,
        hasher=KeyHasher(config.pepper),
        now=now,
    )
