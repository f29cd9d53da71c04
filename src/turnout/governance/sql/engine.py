"""Engines for a store URL: SQLite through Python's sqlite3, PostgreSQL through asyncpg.

SQLite needs two things set on every connection for exact budgets. Writes begin with ``BEGIN
IMMEDIATE``, which takes the database's write lock before the transaction reads anything: two
reservations never both read a counter and then both write it, and a transaction never has to
be retried because another wrote first (a deferred ``BEGIN`` would fail with "database is
locked" when it tries to upgrade its read lock). Python's sqlite3 module would otherwise issue
its own deferred ``BEGIN`` behind SQLAlchemy's back, so its transaction handling is switched off
and SQLAlchemy's ``begin`` event emits the statement (the recipe SQLAlchemy documents). The
journal is WAL, so readers do not wait for the writer, and a busy timeout makes a writer of
another process wait for the lock instead of failing. Reads open a plain deferred transaction.

PostgreSQL needs nothing of the kind: each conditional UPDATE locks its row, and a concurrent
one waits for it and re-checks its WHERE clause against the committed row.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from turnout.secrets import Secret

#: Execution option a read-only transaction sets to begin deferred on SQLite.
READ_ONLY = "turnout_read_only"
#: How long a SQLite writer waits for another process's write lock before failing (seconds).
SQLITE_BUSY_TIMEOUT = 30.0


def store_url(url: str, password: Secret | None = None) -> URL:
    """The SQLAlchemy URL of a store URL (``sqlite:///path``, ``postgresql://...``), with its
    driver and the password put back in."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+pysqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
        if "sslmode" in parsed.query:
            # libpq's spelling; asyncpg takes the same modes as ``ssl``.
            mode = parsed.query["sslmode"]
            parsed = parsed.difference_update_query(["sslmode"]).update_query_dict({"ssl": mode})
    else:
        raise ValueError(f"{backend!r} is not a supported store (use sqlite or postgresql)")
    if password is not None:
        parsed = parsed.set(password=password.reveal())
    return parsed


def create_postgres_engine(url: URL, *, pool_size: int) -> AsyncEngine:
    """An engine that does not ping a connection as it leaves the pool (a round trip per
    transaction): `runner.AsyncEngineRunner` runs a transaction again instead, on the rare
    connection found dead."""
    return create_async_engine(url, pool_size=pool_size, max_overflow=0)


def create_sqlite_engine(url: URL, *, pool_size: int) -> Engine:
    """A SQLite engine whose connections any of the store's threads may use; the file's
    directory is created when missing."""
    if url.database:
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_sync_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False},
        pool_size=pool_size,
        max_overflow=0,
    )
    event.listen(engine, "connect", _configure_sqlite)
    event.listen(engine, "begin", _begin_sqlite)
    return engine


def _configure_sqlite(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        _enter_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}")
    finally:
        cursor.close()


def _enter_wal(cursor: Any) -> None:
    """Put the file in WAL mode (once per file; then a no-op), waiting out other connections.

    The switch needs the file to itself, and SQLite answers "database is locked" at once,
    without waiting in its busy handler, when waiting could deadlock with another connection
    (stores opening together, one migrating): so the switch is tried again, within the busy
    timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(0.02)


def _begin_sqlite(connection: Connection) -> None:
    deferred = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")
