"""Injected time.

Cooldowns, breakers, usage windows, backoff and deadlines all read the `Clock` they were given,
never the system directly, so tests move a `turnout.testing.ManualClock` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
import weakref
from contextlib import AbstractAsyncContextManager
from typing import Protocol


class Clock(Protocol):
    """The time source the router runs on."""

    def now(self) -> float:
        """Monotonic seconds: for durations, deadlines and expiries."""
        ...

    def wall(self) -> float:
        """Unix seconds: for per-minute usage windows shared across processes."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` on this clock."""
        ...

    def timeout_at(self, deadline: float) -> AbstractAsyncContextManager[object]:
        """Cancel the enclosed block at `deadline` (on this clock) and raise `TimeoutError`."""
        ...


class SystemClock:
    """The real clock: monotonic time and asyncio's own timers."""

    __slots__ = ("_heap", "_loop")

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._heap: _DeadlineHeap | None = None

    def deadlines(self, loop: asyncio.AbstractEventLoop) -> _DeadlineHeap:
        """The deadline heap of `loop` (remembered for the loop this clock last ran on)."""
        heap = self._heap
        if heap is None or self._loop is not loop:
            heap = self._heap = _heap_of(loop)
            self._loop = loop
        return heap

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def timeout_at(self, deadline: float) -> AbstractAsyncContextManager[object]:
        return _Deadline(deadline, self)


class _Deadline:
    """Cancel the enclosing task at a monotonic deadline; raise `TimeoutError` if that happened.

    Every request enters one, and almost all of them end long before it: so instead of a timer
    per request, the loop's `_DeadlineHeap` keeps one timer armed for the earliest deadline.
    """

    __slots__ = ("_clock", "_when", "active", "fired", "task")

    def __init__(self, deadline: float, clock: SystemClock) -> None:
        self._when = deadline
        self._clock = clock
        self.active = False
        self.fired = False
        self.task: asyncio.Task[object] | None = None

    async def __aenter__(self) -> None:
        task = asyncio.current_task()
        assert task is not None, "a deadline needs a task to cancel"
        self.task = task
        loop = asyncio.get_running_loop()
        delay = self._when - time.monotonic()
        if delay <= 0:
            raise TimeoutError
        self.active = True
        self._clock.deadlines(loop).add(loop.time() + delay, self)

    def expire(self) -> None:
        assert self.task is not None
        self.active = False
        self.fired = True
        self.task.cancel()

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: object
    ) -> None:
        self.active = False
        task, self.task = self.task, None  # the heap may hold this entry a while: not the task
        if self.fired:
            assert task is not None
            remaining = task.uncancel()
            if kind is asyncio.CancelledError and remaining == 0:
                raise TimeoutError from error


class _DeadlineHeap:
    """The deadlines entered on one event loop, with one timer for the earliest live one."""

    __slots__ = ("_entries", "_loop", "_order", "_timer", "_timer_at")

    #: Rebuild the heap when this many finished entries are left in it.
    COMPACT_AT = 4096

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._entries: list[tuple[float, int, _Deadline]] = []
        self._order = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def add(self, when: float, deadline: _Deadline) -> None:
        entries = self._entries
        heapq.heappush(entries, (when, next(self._order), deadline))
        if when < self._timer_at:
            self._arm(when)
        elif len(entries) > self.COMPACT_AT and len(entries) % self.COMPACT_AT == 0:
            self._compact()

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._fire)
        self._timer_at = when

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        now = self._loop.time()
        entries = self._entries
        while entries and (entries[0][0] <= now or not entries[0][2].active):
            _, _, deadline = heapq.heappop(entries)
            if deadline.active:
                deadline.expire()
        if entries:
            self._arm(entries[0][0])

    def _compact(self) -> None:
        live = [entry for entry in self._entries if entry[2].active]
        heapq.heapify(live)
        self._entries = live


_HEAPS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _DeadlineHeap] = (
    weakref.WeakKeyDictionary()
)


def _heap_of(loop: asyncio.AbstractEventLoop) -> _DeadlineHeap:
    heap = _HEAPS.get(loop)
    if heap is None:
        heap = _HEAPS[loop] = _DeadlineHeap(loop)
    return heap
