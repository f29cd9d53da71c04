"""Responses kept in a SQLite file: one store for every worker of ``turnout serve --workers N``.

The workers of one gateway are processes on one machine; a follow-up turn reaches whichever the
kernel hands its connection to. A file they all open is the store they share without another
service: by default in the directory the gateway makes for its workers (gone when it stops, as
memory would be), or at a path the config names, kept across restarts.

The file is bounded as the memory store is: a count, a total size (kept by triggers in a
one-row table, so no query sums the whole table) and an age, the least recently used going
first; expired rows are purged as responses are stored. "Recently used" is a counter every
read bumps in the file, so the order holds across workers.

SQLite is opened as elsewhere in the project (`turnout.governance.sql.engine`): WAL, so readers
never wait for the writer; a busy timeout, so a worker waits for another's write instead of
failing; the switch to WAL retried while another connection holds the file; ``BEGIN
IMMEDIATE`` for the one transaction of several statements, so it takes the write lock before it
reads. Every call runs on one thread of the process's own (small rows, a local file: well under
a millisecond each), never on the event loop. Any SQLite or file error is a `StoreFailure`: the
request goes on without the store.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from turnout.config.server import ResponsesStoreConfig
from turnout.gateway.responses_store import Stored, StoreFailure, decode, owner_of, to_keep
from turnout.wire import Principal

T = TypeVar("T")

#: How long a worker waits for another's write lock before the call fails (seconds).
BUSY_TIMEOUT = 5.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS responses (
        id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        size INTEGER NOT NULL,
        expires REAL NOT NULL,
        used INTEGER NOT NULL,
        entry BLOB NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS responses_used ON responses (used)",
    "CREATE INDEX IF NOT EXISTS responses_expires ON responses (expires)",
    """CREATE TABLE IF NOT EXISTS totals (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        count INTEGER NOT NULL,
        bytes INTEGER NOT NULL
    )""",
    "INSERT OR IGNORE INTO totals VALUES (1, 0, 0)",
    """CREATE TRIGGER IF NOT EXISTS responses_added AFTER INSERT ON responses BEGIN
        UPDATE totals SET count = count + 1, bytes = bytes + NEW.size;
    END""",
    """CREATE TRIGGER IF NOT EXISTS responses_removed AFTER DELETE ON responses BEGIN
        UPDATE totals SET count = count - 1, bytes = bytes - OLD.size;
    END""",
)
_NEXT_USE = "(SELECT coalesce(max(used), 0) + 1 FROM responses)"


class FileResponseStore:
    """A `ResponseStore` in a SQLite file that several processes open at once."""

    def __init__(
        self,
        config: ResponsesStoreConfig,
        path: str | Path,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config = config
        self.path = Path(path).expanduser()
        #: Wall-clock time: the file outlives a process, and every worker reads the same clock.
        self._clock = clock
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="turnout-responses")
        self._db: sqlite3.Connection | None = None
        self._closed = False

    async def put(
        self,
        principal: Principal | None,
        response: dict[str, Any],
        conversation: list[dict[str, Any]],
        input_items: list[dict[str, Any]],
        items: list[dict[str, Any]],
    ) -> None:
        kept = to_keep(self._config, principal, response, conversation, input_items, items)
        if kept is None:
            return
        owner, entry = kept
        await self._run(lambda db: self._put(db, response["id"], owner, entry))

    async def get(self, principal: Principal | None, response_id: str) -> Stored | None:
        owner = owner_of(principal)
        return await self._run(lambda db: self._get(db, owner, response_id))

    async def delete(self, principal: Principal | None, response_id: str) -> bool:
        owner = owner_of(principal)

        def delete(db: sqlite3.Connection) -> bool:
            gone = db.execute(
                "DELETE FROM responses WHERE id = ? AND owner = ? AND expires > ?",
                (response_id, owner, self._clock()),
            )
            return gone.rowcount > 0

        return await self._run(delete)

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True

        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._thread, close)
        finally:
            await asyncio.to_thread(self._thread.shutdown, wait=True)

    async def _run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` on the store's thread, with the file open."""

        def call() -> T:
            try:
                return work(self._open())
            except (sqlite3.Error, OSError) as exc:
                raise StoreFailure(f"SQLite file: {type(exc).__name__}: {exc}") from None

        return await asyncio.get_running_loop().run_in_executor(self._thread, call)

    def _open(self) -> sqlite3.Connection:
        if self._db is not None:
            return self._db
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(
            self.path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
        )
        try:
            _enter_wal(db)
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute("COMMIT")
        except BaseException:
            db.close()
            raise
        self._db = db
        return db

    def _put(self, db: sqlite3.Connection, key: str, owner: str, entry: bytes) -> None:
        config = self._config
        size = len(entry)
        now = self._clock()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute("DELETE FROM responses WHERE expires <= ? OR id = ?", (now, key))
            db.execute(
                f"INSERT INTO responses VALUES (?, ?, ?, ?, {_NEXT_USE}, ?)",
                (key, owner, size, now + config.ttl, entry),
            )
            count, total = db.execute("SELECT count, bytes FROM totals").fetchone()
            if count > config.max_responses or total > config.max_bytes:
                oldest = db.execute("SELECT id, size FROM responses ORDER BY used")
                doomed = []
                for old, old_size in oldest:
                    if count <= config.max_responses and total <= config.max_bytes:
                        break
                    doomed.append((old,))
                    count, total = count - 1, total - old_size
                oldest.close()
                db.executemany("DELETE FROM responses WHERE id = ?", doomed)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def _get(self, db: sqlite3.Connection, owner: str, key: str) -> Stored | None:
        row = db.execute(
            "SELECT owner, expires, entry FROM responses WHERE id = ?", (key,)
        ).fetchone()
        if row is None or row[0] != owner:
            return None
        expires: float = row[1]
        if expires <= self._clock():
            db.execute("DELETE FROM responses WHERE id = ? AND expires <= ?", (key, expires))
            return None
        db.execute(f"UPDATE responses SET used = {_NEXT_USE} WHERE id = ?", (key,))
        return decode(row[2], expires)


def _enter_wal(db: sqlite3.Connection) -> None:
    """Put the file in WAL mode (once per file; then a no-op), waiting out other connections:
    the switch needs the file to itself, and SQLite answers "database is locked" at once, not
    after its busy timeout, when workers open the file together."""
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
        time.sleep(0.02)
