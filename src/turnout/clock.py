"""Injected time.

Cooldowns, breakers, usage windows, backoff and deadlines all read the `Clock` they were given,
never the system directly, so tests move a `turnout.testing.ManualClock` instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
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

    __slots__ = ()

    def now(self) -> float:
        return time.monotonic()

    def wall(self) -> float:
        return time.time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    def timeout_at(self, deadline: float) -> AbstractAsyncContextManager[object]:
        return asyncio.timeout(max(0.0, deadline - time.monotonic()))
