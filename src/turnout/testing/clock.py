"""A clock that only moves when told to (or when every task is waiting on it).

Tests drive cooldowns, breakers, backoff and deadlines by moving this clock, never by sleeping.
With ``autojump`` (the default) the clock jumps straight to the next pending wake-up once the
event loop has had a few turns with nothing else to do, so code that sleeps runs instantly in
virtual time while concurrent tasks still interleave in the right order.

Autojump judges "nothing else to do" by counting loop turns without a new wake-up: a task that
stays runnable for more turns than that (a long chain of ``asyncio.sleep(0)``, or real socket
I/O) may see the clock jump under it. Tests that mix real I/O with time use the real clock.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

#: Loop turns without a new wake-up registered before autojump moves the clock.
_IDLE_TURNS = 8


class ManualClock:
    """Virtual monotonic time starting at ``start``; wall time is ``epoch`` + monotonic."""

    def __init__(
        self, start: float = 0.0, *, epoch: float = 1_800_000_000.0, autojump: bool = True
    ):
        self._now = start
        self._epoch = epoch
        self.autojump = autojump
        self._waiters: list[_Waiter] = []
        self._order = itertools.count()
        self._jump_scheduled = False

    def now(self) -> float:
        return self._now

    def wall(self) -> float:
        return self._epoch + self._now

    def advance(self, seconds: float) -> None:
        """Move time forward, waking every sleeper and firing every timeout due by then."""
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._move_to(self._now + seconds)

    def _move_to(self, target: float) -> None:
        while self._waiters and self._waiters[0].when <= target:
            waiter = heapq.heappop(self._waiters)
            self._now = max(self._now, waiter.when)
            if not waiter.cancelled:
                waiter.fire()
        self._now = max(self._now, target)

    def _at(self, when: float, fire: Callable[[], None]) -> _Waiter:
        """Call `fire` once the clock reaches `when`, unless the waiter is cancelled first."""
        waiter = _Waiter(when, next(self._order), fire)
        heapq.heappush(self._waiters, waiter)
        self._schedule_jump()
        return waiter

    async def sleep(self, seconds: float) -> None:
        loop = asyncio.get_running_loop()
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = loop.create_future()

        def wake() -> None:
            if not future.done():
                future.set_result(None)

        waiter = self._at(self._now + seconds, wake)
        try:
            await future
        finally:
            waiter.cancelled = True

    def timeout_at(self, deadline: float) -> AbstractAsyncContextManager[object]:
        return self._timeout(deadline)

    @asynccontextmanager
    async def _timeout(self, deadline: float) -> AsyncIterator[None]:
        task = asyncio.current_task()
        assert task is not None
        fired = [False]

        def expire() -> None:
            fired[0] = True
            if asyncio.current_task() is not task:
                task.cancel()
            # Else the block itself moved the clock past its own deadline without waiting:
            # like asyncio.timeout, a block that never yields is not interrupted.

        if deadline <= self._now:
            raise TimeoutError
        waiter = self._at(deadline, expire)
        try:
            yield
        except asyncio.CancelledError:
            if fired[0] and task.uncancel() == 0:
                raise TimeoutError from None
            raise
        finally:
            waiter.cancelled = True
        if fired[0] and task.cancelling():
            # The deadline fired as the block was finishing; consume the pending cancel.
            task.uncancel()

    def _schedule_jump(self) -> None:
        if self.autojump and not self._jump_scheduled:
            self._jump_scheduled = True
            asyncio.get_running_loop().call_soon(self._idle_check, _IDLE_TURNS, len(self._waiters))

    def _idle_check(self, turns_left: int, pending: int) -> None:
        """Jump to the next wake-up once the loop went `_IDLE_TURNS` turns without news."""
        loop = asyncio.get_running_loop()
        if len(self._waiters) != pending:
            loop.call_soon(self._idle_check, _IDLE_TURNS, len(self._waiters))
            return
        if turns_left > 0:
            loop.call_soon(self._idle_check, turns_left - 1, pending)
            return
        self._jump_scheduled = False
        self._drop_cancelled()
        if self._waiters:
            self._move_to(self._waiters[0].when)
            if self._waiters:
                self._schedule_jump()

    def _drop_cancelled(self) -> None:
        self._waiters = [w for w in self._waiters if not w.cancelled]
        heapq.heapify(self._waiters)


class _Waiter:
    """Something to do when the clock reaches `when`; ordered by time, then by arrival."""

    __slots__ = ("cancelled", "fire", "order", "when")

    def __init__(self, when: float, order: int, fire: Callable[[], None]) -> None:
        self.when = when
        self.order = order
        self.fire = fire
        self.cancelled = False

    def __lt__(self, other: _Waiter) -> bool:
        return (self.when, self.order) < (other.when, other.order)
