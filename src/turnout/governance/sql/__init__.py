"""The governance store on SQL: SQLite (default, a file) or PostgreSQL, one implementation.

`open_store` builds the engine for a `StoreConfig`, applies the shipped migrations (creating the
SQLite file and its tables on first start) and returns a `SqlGovernanceStore`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from turnout.config.store import StoreConfig
from turnout.governance.keys import KeyHasher
from turnout.governance.sql.engine import async_url, create_engine
from turnout.governance.sql.migrate import migrate
from turnout.governance.sql.store import SqlGovernanceStore, utc_now

__all__ = ["SqlGovernanceStore", "open_store"]


async def open_store(
    config: StoreConfig, *, now: Callable[[], datetime] = utc_now
) -> SqlGovernanceStore:
    """A ready store for `config`, its schema migrated to the newest version."""
    engine = create_engine(
        async_url(config.url, config.password), pool_size=config.pool_size, max_overflow=0
    )
    try:
        await migrate(engine)
    except BaseException:
        await engine.dispose()
        raise
    return SqlGovernanceStore(
        engine,
        hasher=KeyHasher(config.pepper),
        reservation_ttl=config.reservation_ttl,
        now=now,
    )
