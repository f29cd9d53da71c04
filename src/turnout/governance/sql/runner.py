"""Where the store's transactions run: one sync function per transaction, on either backend.

The SQL modules (`entities`, `budgets`, `spend`, `migrate`) are plain functions of a SQLAlchemy
`Connection`, and a `Runner` runs each as one transaction:

- PostgreSQL (`AsyncEngineRunner`): on the asyncio event loop through asyncpg, with
  ``AsyncConnection.run_sync``: each statement is one network round trip, awaited.
- SQLite (`ThreadRunner`): the whole transaction runs in a worker thread on Python's own sqlite3
  driver, one hop from the event loop per transaction. An asyncio driver for SQLite (aiosqlite)
  hops to its thread for every cursor call instead, which is about sixty hops for a reservation
  and settlement: measured, several milliseconds against a fraction of one. Writes go to one
  thread, so the writers of a process take turns in order (SQLite has one writer at a time in
  any case) rather than polling SQLite's lock; reads go to a pool of threads and, in WAL mode,
  never wait for the writer.

A caller that stops waiting (cancelled) does not stop a transaction already handed to a thread:
it commits or rolls back on its own, as it would have (`SqlGovernanceStore.reserve` gives back a
reservation that completes after its caller left).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from turnout.governance.sql.engine import READ_ONLY

T = TypeVar("T")


class Runner(Protocol):
    """Runs one function of a connection as one transaction."""

    async def write(self, work: Callable[[Connection], T]) -> T: ...

    async def read(self, work: Callable[[Connection], T]) -> T: ...

    async def aclose(self) -> None: ...


class AsyncEngineRunner:
    """Transactions on an async engine's connections (PostgreSQL through asyncpg).

    A pooled connection the server has closed (a restart, a failover, an idle timeout) fails
    the transaction that meets it; the transaction is then run once more on a fresh
    connection. That costs nothing while connections are fine, where checking every connection
    as it leaves the pool costs a round trip per transaction. Running a transaction twice is
    safe here: one that failed on a dead connection did not commit, and if the connection died
    during COMMIT itself, settling and spend rows are idempotent, and a reservation held twice
    only holds more than it needs until it expires.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def write(self, work: Callable[[Connection], T]) -> T:
        try:
            return await self._once(work)
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        return await self._once(work)

    async def _once(self, work: Callable[[Connection], T]) -> T:
        async with self.engine.begin() as connection:
            return await connection.run_sync(work)

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await self.write(work)

    async def aclose(self) -> None:
        await self.engine.dispose()


class ThreadRunner:
    """Transactions run whole in worker threads (SQLite through sqlite3)."""

    def __init__(self, engine: Engine, *, readers: int) -> None:
        self.engine = engine
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="turnout-store-write")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="turnout-store-read")

    async def write(self, work: Callable[[Connection], T]) -> T:
        return await self._run(self._writer, work, read_only=False)

    async def read(self, work: Callable[[Connection], T]) -> T:
        return await self._run(self._readers, work, read_only=True)

    async def _run(
        self, executor: ThreadPoolExecutor, work: Callable[[Connection], T], *, read_only: bool
    ) -> T:
        loop = asyncio.get_running_loop()
        call = functools.partial(self._transaction, work, read_only)
        return await loop.run_in_executor(executor, call)

    def _transaction(self, work: Callable[[Connection], T], read_only: bool) -> T:
        with self.engine.connect() as connection:
            if read_only:
                connection = connection.execution_options(**{READ_ONLY: True})
            with connection.begin():
                return work(connection)

    async def aclose(self) -> None:
        """Let the transactions handed over finish, then close every connection."""
        await asyncio.to_thread(self._writer.shutdown, wait=True)
        await asyncio.to_thread(self._readers.shutdown, wait=True)
        self.engine.dispose()
