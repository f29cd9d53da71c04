"""The spend-log writer: one per gateway process, off the request path, never losing a row.

The request path `submit`s one row per request; the row goes on a bounded queue and the request
moves on. A background task takes rows in batches (up to `batch_size` rows, or what arrived
within `batch_wait` seconds of the first) and writes each batch in one transaction. Batching is
what keeps the spend log from becoming the bottleneck: one transaction per request is what
LiteLLM's spend-log table could not keep up with.

A full queue makes `submit` wait (back-pressure) instead of dropping a row: spend logs are
billing data, and a database that falls behind should slow the gateway, not silently thin its
records. A batch that fails is written again, with exponential backoff and jitter, for as long
as the writer runs: a lost connection, a restarting server or a locked SQLite file delays rows,
it does not lose them. Retrying cannot double a row either, since the store skips a request id
it already holds (a batch whose commit landed but whose answer was lost changes nothing the
second time). An outage is logged once when it starts and once when it ends, by the error's
type only: driver messages can carry a host, a user or a database URL.

A batch the database refuses for its content (`rejects` says which errors mean that: a value
too long for its column, a constraint) would fail forever and hold up every row behind it. It
is split in halves until the refused rows stand alone; those are set aside in a file of the
spill directory for an operator (logged with their request ids) and everything else is written.

`aclose` writes what is queued within `drain_timeout`; rows it cannot write in time (the store
is down while the gateway stops) go to a spill directory (`turnout.governance.spend_spill`),
reported in one log line, and `start` of the next process writes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Protocol

from turnout.governance.records import SpendRow
from turnout.governance.spend_spill import SpillDir

logger = logging.getLogger("turnout.governance")

#: Seconds before the first retry of a failed batch, and the most between two retries.
FIRST_BACKOFF: Final = 0.05
MOST_BACKOFF: Final = 5.0

WriteBatch = Callable[[Sequence[SpendRow]], Awaitable[object]]
Rejects = Callable[[BaseException], bool]


def _rejects_nothing(error: BaseException) -> bool:
    return False


class Tally(Protocol):
    """A number the writer reports through (a metric's child, or a plain count)."""

    def inc(self, amount: float = 1.0) -> None: ...

    def set(self, value: float) -> None: ...


class Count:
    """A `Tally` that only remembers: the default, and what tests read."""

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = value


@dataclass(frozen=True, slots=True)
class WriterTallies:
    """What the writer reports: rows queued now, rows written, failed writes (each batch that
    failed once), retries, rows spilled to local files at shutdown, and rows the database
    refused (set aside)."""

    queued: Tally = field(default_factory=Count)
    written: Tally = field(default_factory=Count)
    failures: Tally = field(default_factory=Count)
    retries: Tally = field(default_factory=Count)
    spilled: Tally = field(default_factory=Count)
    rejected: Tally = field(default_factory=Count)


class _Stop:
    """Put on the queue by `aclose`: everything before it is written, then the task ends."""


_STOP: Final = _Stop()


class SpendWriter:
    """Implements `turnout.governance.spend_sink.SpendSink` over `write` (the store's
    ``write_spend``, idempotent by request id).

    `spill`: where rows go that could not be written by shutdown (None: they are reported lost),
    and rows the database refuses. `rejects`: whether an error of `write` means the database
    refuses the rows themselves (not that it is unreachable).
    `backoff`: seconds (first, most) between retries of a failing batch; `rng` draws the jitter.
    """

    def __init__(
        self,
        write: WriteBatch,
        *,
        queue_size: int = 10_000,
        batch_size: int = 500,
        batch_wait: float = 0.2,
        drain_timeout: float = 10.0,
        spill: SpillDir | None = None,
        rejects: Rejects = _rejects_nothing,
        tallies: WriterTallies | None = None,
        backoff: tuple[float, float] = (FIRST_BACKOFF, MOST_BACKOFF),
        rng: random.Random | None = None,
    ) -> None:
        if queue_size < 1 or batch_size < 1 or batch_wait < 0 or drain_timeout < 0:
            raise ValueError("queue and batch sizes are at least 1, times at least 0")
        self._write = write
        self._queue: asyncio.Queue[SpendRow | _Stop] = asyncio.Queue(queue_size)
        self._batch_size = batch_size
        self._batch_wait = batch_wait
        self._drain_timeout = drain_timeout
        self._spill = spill
        self._rejects = rejects
        self.tallies = tallies or WriterTallies()
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        #: Rows taken off the queue and not yet known to be written.
        self._in_hand: list[SpendRow] = []
        #: Spilled files this process claimed at start, and their rows not yet in a batch.
        self._claimed: list[Path] = []
        self._unread: list[SpendRow] = []
        self._closing = False
        self._outage = False

    def start(self) -> None:
        """Claim rows spilled by earlier processes (written first) and start writing."""
        if self._task is not None:
            return
        if self._spill is not None:
            try:
                claimed = self._spill.claim()
            except OSError as error:
                logger.warning("spend rows spilled earlier cannot be read: %s", error)
                claimed = []
            self._claimed = [path for path, _ in claimed]
            self._unread = [row for _, rows in claimed for row in rows]
            if self._unread:
                logger.info(
                    "writing %d spend log rows spilled by an earlier stop", len(self._unread)
                )
        self._task = asyncio.get_running_loop().create_task(self._run(), name="spend-writer")

    @property
    def depth(self) -> int:
        """Rows waiting on the queue."""
        return self._queue.qsize()

    def offer(self, row: SpendRow) -> bool:
        if self._closing:
            return False
        try:
            self._queue.put_nowait(row)
        except asyncio.QueueFull:
            return False
        self.tallies.queued.set(self._queue.qsize())
        return True

    async def submit(self, row: SpendRow) -> None:
        if self._closing:
            # Too late for the queue (its task is finishing): keep the row on disk instead.
            await self._spill_or_report([row])
            return
        await self._queue.put(row)
        self.tallies.queued.set(self._queue.qsize())

    async def _run(self) -> None:
        while True:
            # Rows spilled by an earlier stop go first, in batches like any others.
            seed = self._unread[: self._batch_size]
            del self._unread[: self._batch_size]
            stop = await self._take_batch(seed)
            if self._in_hand:
                await self._write_until_done()
            if self._claimed and not self._unread:
                for path in self._claimed:
                    SpillDir.done(path)
                self._claimed = []
            if stop:
                return

    async def _take_batch(self, seed: list[SpendRow]) -> bool:
        """Fill `_in_hand` with the next batch (starting with `seed`); True when `aclose`'s
        stop came with it."""
        if not seed:
            first = await self._queue.get()
            if isinstance(first, _Stop):
                return True
            seed = [first]
        batch = self._in_hand = seed
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._batch_wait
        stop = False
        while len(batch) < self._batch_size:
            try:
                item = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0 or self._closing:
                    break
                try:
                    async with asyncio.timeout(remaining):
                        item = await self._queue.get()
                except TimeoutError:
                    break
            if isinstance(item, _Stop):
                stop = True
                break
            batch.append(item)
        self.tallies.queued.set(self._queue.qsize())
        return stop

    async def _write_until_done(self) -> None:
        """Write `_in_hand`, again and again until it is written (or the task is cancelled)."""
        await self._write_rows(self._in_hand)
        self._in_hand = []

    async def _write_rows(self, rows: list[SpendRow]) -> None:
        attempt = 0
        while True:
            try:
                await self._write(rows)
            except Exception as error:
                if self._rejects(error):
                    await self._isolate(rows, error)
                    return
                self.tallies.failures.inc()
                if not self._outage:
                    self._outage = True
                    logger.warning(
                        "spend log: writing failed (%s); retrying with backoff, rows wait in "
                        "the queue (%d queued)",
                        type(error).__name__,
                        self._queue.qsize() + len(self._in_hand),
                    )
                await asyncio.sleep(self._delay(attempt))
                attempt += 1
                self.tallies.retries.inc()
                continue
            break
        self.tallies.written.inc(len(rows))
        if self._outage:
            self._outage = False
            logger.info("spend log: writing again after %d failed attempts", attempt)

    async def _isolate(self, rows: list[SpendRow], error: BaseException) -> None:
        """Write what the database takes of `rows`, halving them until each refused row
        stands alone; set those aside."""
        if len(rows) > 1:
            half = len(rows) // 2
            await self._write_rows(rows[:half])
            await self._write_rows(rows[half:])
            return
        self.tallies.rejected.inc()
        where = "nowhere (no spill directory): it is lost"
        if self._spill is not None:
            try:
                where = str(await asyncio.to_thread(self._spill.set_aside, rows))
            except OSError as failure:
                where = f"nowhere ({type(failure).__name__}): it is lost"
        logger.error(
            "spend log: the store refused the row of request %s (%s); kept in %s",
            rows[0].request_id,
            type(error).__name__,
            where,
        )

    def _delay(self, attempt: int) -> float:
        """Exponential backoff with jitter: between half and all of the step, so that workers
        failing together do not retry together."""
        first, most = self._backoff
        step = min(most, first * 2.0 ** min(attempt, 32))
        return step / 2 + self._rng.random() * step / 2

    async def aclose(self) -> None:
        """Write everything queued within the drain timeout; spill what is left."""
        if self._closing:
            return
        task = self._task
        if task is None:
            self._closing = True
            await self._spill_or_report(self._left())
            return
        try:
            async with asyncio.timeout(self._drain_timeout):
                await self._queue.put(_STOP)
                self._closing = True
                await asyncio.shield(task)
            # Rows a request submitted while the stop was queued, behind it.
            await self._spill_or_report(self._left())
        except TimeoutError:
            self._closing = True
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self._spill_or_report(self._left())
        finally:
            self._closing = True

    def _left(self) -> list[SpendRow]:
        """Rows not known to be written: in hand (perhaps written: a retry would skip them),
        queued, and recovered from an earlier spill."""
        left = {row.request_id: row for row in self._in_hand}
        self._in_hand = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not isinstance(item, _Stop):
                left.setdefault(item.request_id, item)
        for row in self._unread:
            left.setdefault(row.request_id, row)
        self._unread = []
        self.tallies.queued.set(0)
        return list(left.values())

    async def _spill_or_report(self, rows: list[SpendRow]) -> None:
        if not rows:
            return
        if self._spill is not None:
            try:
                path = await asyncio.to_thread(self._spill.spill, rows)
            except OSError as error:
                logger.error(
                    "spend log: %d rows could not be written nor spilled (%s); they are lost",
                    len(rows),
                    type(error).__name__,
                )
                return
            for claimed in self._claimed:
                SpillDir.done(claimed)  # their rows are in the new file
            self._claimed = []
            self.tallies.spilled.inc(len(rows))
            logger.warning(
                "spend log: %d rows could not be written before stopping; kept in %s for the "
                "next start",
                len(rows),
                path,
            )
            return
        logger.error(
            "spend log: %d rows could not be written before stopping and are lost (no spill "
            "directory)",
            len(rows),
        )
