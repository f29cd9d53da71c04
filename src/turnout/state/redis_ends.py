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

An end costs no task: its answer's future calls back when it lands (a task per request cost
more gateway CPU than the rest of the end), and only an end that needs more (the rules, a
script the server forgot, Redis gone) continues in a task.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

logger = logging.getLogger("turnout.state")

#: What to do with an end's answer when it lands: nothing more (None), or a coroutine to run.
Landed = Callable[["asyncio.Future[Any]"], Coroutine[Any, Any, None] | None]


class EndsInFlight:
    """The ends sent and not yet settled, per deployment, each as a future that is done once
    its answer was handled (and whatever that needed, done)."""

    def __init__(self) -> None:
        self._pending: dict[str, set[asyncio.Future[None]]] = {}
        #: The tasks finishing ends that needed more: they must not wait for one another.
        self._continuing: set[asyncio.Task[None]] = set()
        self._reported: set[type[BaseException]] = set()

    def send(self, deployment_id: str, answer: asyncio.Future[Any], landed: Landed) -> None:
        """Track an end whose script is on its way: `landed(answer)` runs when it answers."""
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(deployment_id, set()).add(ended)

        def on_answer(done: asyncio.Future[Any]) -> None:
            try:
                more = landed(done)
            except Exception as exc:
                self._end(deployment_id, ended, exc)
                return
            if more is None:
                self._end(deployment_id, ended, None)
            else:
                self._continue(deployment_id, ended, more)

        answer.add_done_callback(on_answer)

    def run(self, deployment_id: str, end: Coroutine[Any, Any, None]) -> None:
        """Track an end that is a coroutine from the start (no pipelined connection open)."""
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending.setdefault(deployment_id, set()).add(ended)
        self._continue(deployment_id, ended, end)

    def _continue(
        self, deployment_id: str, ended: asyncio.Future[None], more: Coroutine[Any, Any, None]
    ) -> None:
        task = asyncio.get_running_loop().create_task(more)
        self._continuing.add(task)

        def on_done(done: asyncio.Task[None]) -> None:
            self._continuing.discard(done)
            self._end(deployment_id, ended, None if done.cancelled() else done.exception())

        task.add_done_callback(on_done)

    def _end(
        self, deployment_id: str, ended: asyncio.Future[None], error: BaseException | None
    ) -> None:
        pending = self._pending.get(deployment_id)
        if pending is not None:
            pending.discard(ended)
            if not pending:
                del self._pending[deployment_id]
        if not ended.done():
            ended.set_result(None)
        if error is not None and type(error) not in self._reported:
            self._reported.add(type(error))
            logger.error("state: a request's end could not be recorded", exc_info=error)

    async def settled(self) -> None:
        """Wait for the ends in flight (none: no wait at all), unless called from one of them:
        ends do not wait for each other, whose order is no one's anyway."""
        if not self._pending or asyncio.current_task() in self._continuing:
            return
        await asyncio.wait([ended for pending in self._pending.values() for ended in pending])

    async def drain(self, within: float) -> None:
        """Wait for every end in flight, at most `within` seconds."""
        waiting = [ended for pending in self._pending.values() for ended in pending]
        if waiting:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.wait(waiting), within)
