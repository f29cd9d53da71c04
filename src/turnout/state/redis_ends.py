"""Clean ends in flight: the second round trip of a request, off the request's path.

A request that ended cleanly (a success or an end that says nothing, not a probe, nothing held)
cannot make a health event: its end only counts (tokens, a success, the averages) and releases
its lease. So the store sends that end's script and lets the request go on without waiting for
Redis' answer: the caller's response is not held up by a round trip, and the gateway serves
more requests per second for it. What must still hold:

- this process reads its own writes: a read, and anything that goes to Redis by another
  connection than the pipelined one (the rules, which may read other deployments' counts),
  first waits for the ends in flight (`settled`); the next request's start needs no wait, as
  the pipelined connection delivers scripts in the order they were sent;
- nothing is lost: closing the store waits for every end in flight (`drain`), and an end that
  finds Redis down is counted in the local state the process then routes on;
- nothing fails silently: an end that breaks for a reason other than Redis is logged, once per
  kind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger("turnout.state")


class EndsInFlight:
    """The tasks sending clean ends, per deployment."""

    def __init__(self) -> None:
        self._tasks: dict[str, set[asyncio.Task[None]]] = {}
        self._reported: set[type[BaseException]] = set()

    def send(self, deployment_id: str, end: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(end)
        self._tasks.setdefault(deployment_id, set()).add(task)
        task.add_done_callback(lambda done: self._done(deployment_id, done))

    def _done(self, deployment_id: str, task: asyncio.Task[None]) -> None:
        tasks = self._tasks.get(deployment_id)
        if tasks is not None:
            tasks.discard(task)
            if not tasks:
                del self._tasks[deployment_id]
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None and type(exc) not in self._reported:
            self._reported.add(type(exc))
            logger.error("state: a request's end could not be recorded", exc_info=exc)

    async def settled(self) -> None:
        """Wait for the ends in flight (none: no wait at all), unless called from one of them:
        ends do not wait for each other, whose order is no one's anyway."""
        if not self._tasks:
            return
        current = asyncio.current_task()
        waiting = [task for tasks in self._tasks.values() for task in tasks]
        if current not in waiting:
            await asyncio.wait(waiting)

    async def drain(self, within: float) -> None:
        """Wait for every end in flight, at most `within` seconds."""
        waiting = [task for tasks in self._tasks.values() for task in tasks]
        if waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.wait(waiting), within)
