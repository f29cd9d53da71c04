"""Hedged requests: when a group's first attempt is slow, race a duplicate on another deployment.

Which groups hedge, after how long, and how often: a fixed delay or a quantile of the group's
recent latencies (times to first token for streams), and a budget that caps duplicates to a
share of the group's requests. `hedged` runs the race for the executor.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

from turnout.config.router import HedgeConfig
from turnout.errors import TurnoutError, most_informative
from turnout.observe.events import BudgetExhausted, HedgeFired, HedgeSettled
from turnout.router.attempt import Attempt, Run
from turnout.router.budget import WindowBudget
from turnout.router.latency_window import LatencyWindow
from turnout.router.streaming import Stream
from turnout.router.table import ModelTable

if TYPE_CHECKING:
    from turnout.router.attempt import Call
    from turnout.router.execution import Executor, Outcome


class _GroupHedging:
    __slots__ = ("budget", "config", "streams", "whole")

    def __init__(self, config: HedgeConfig) -> None:
        self.config = config
        self.budget = WindowBudget(config.budget, config.window)
        #: Latencies of whole answers, and times to first token of streams.
        self.whole = LatencyWindow()
        self.streams = LatencyWindow()


class Hedger:
    """Per-group hedging state; groups without a hedging config cost one dict lookup."""

    __slots__ = ("_default", "_groups", "active")

    def __init__(self, configs: Mapping[str, HedgeConfig]) -> None:
        self._groups = {name: _GroupHedging(c) for name, c in configs.items() if name != "*"}
        default = configs.get("*")
        self._default = default
        #: Whether any group hedges at all (when not, the hot path skips hedging entirely).
        self.active = bool(configs)

    def _group(self, group: str) -> _GroupHedging | None:
        state = self._groups.get(group)
        if state is None and self._default is not None:
            state = self._groups[group] = _GroupHedging(self._default)
        return state

    def record_request(self, group: str, now: float) -> None:
        state = self._group(group)
        if state is not None:
            state.budget.record_request(now)

    def observe(self, group: str, stream: bool, seconds: float) -> None:
        """A successful attempt's latency (for a stream: its time to first token)."""
        state = self._group(group)
        if state is not None:
            (state.streams if stream else state.whole).add(seconds)

    def delay(self, group: str, stream: bool) -> float | None:
        """Seconds to wait before hedging, or None: no hedging for this group (yet)."""
        state = self._group(group)
        if state is None:
            return None
        config = state.config
        if config.delay is not None:
            return config.delay
        window = state.streams if stream else state.whole
        if config.quantile is None or len(window) < config.min_samples:
            return None
        return window.quantile(config.quantile)

    def try_spend(self, group: str, now: float) -> bool:
        state = self._group(group)
        return state is not None and state.budget.try_spend(now)


async def hedged(
    executor: Executor,
    table: ModelTable,
    group: str,
    run: Run,
    call: Call,
    attempt: Attempt,
    exclude: Collection[str],
) -> Outcome:
    """Race the attempt against a duplicate started if it has not delivered after the
    group's hedge delay; the first to deliver wins and the other is cancelled."""
    delay = run.bundle.hedger.delay(group, run.request.stream)
    assert delay is not None
    primary = asyncio.ensure_future(executor.call_deployment(attempt, call))
    timer = asyncio.ensure_future(executor.clock.sleep(delay))
    racing: dict[asyncio.Future[Outcome], Attempt] = {primary: attempt}
    try:
        await asyncio.wait({primary, timer}, return_when=asyncio.FIRST_COMPLETED)
        if primary.done():
            return primary.result()
        hedge = await _start_hedge(executor, table, group, run, call, attempt, exclude)
        if hedge is None:
            return await primary
        task, second = hedge
        racing[task] = second
        if executor.bus.active:
            executor.bus.emit(
                HedgeFired(
                    run.request.request_id,
                    group,
                    attempt.deployment.id,
                    second.deployment.id,
                    executor.clock.now() - attempt.started,
                ),
            )
        return await _race(executor, run, group, racing)
    finally:
        timer.cancel()
        for task, racer in racing.items():
            if not task.done():
                racer.lost_race = True
                task.cancel()
        await asyncio.gather(*racing, timer, return_exceptions=True)


async def _start_hedge(
    executor: Executor,
    table: ModelTable,
    group: str,
    run: Run,
    call: Call,
    attempt: Attempt,
    exclude: Collection[str],
) -> tuple[asyncio.Future[Outcome], Attempt] | None:
    now, wall = executor.clock.now(), executor.clock.wall()
    if not run.bundle.hedger.try_spend(group, now):
        if executor.bus.active:
            executor.bus.emit(BudgetExhausted(run.request.request_id, group, "hedge"))
        return None
    others = {*exclude, attempt.deployment.id}
    second, _ = await executor.decide(run.bundle, group, run.request, others, now, wall)
    if second is None:
        return None
    hedge_attempt = await executor.begin(table, group, run, second, now, wall)
    if hedge_attempt is None:
        return None
    return asyncio.ensure_future(executor.call_deployment(hedge_attempt, call)), hedge_attempt


async def _race(
    executor: Executor, run: Run, group: str, racing: dict[asyncio.Future[Outcome], Attempt]
) -> Outcome:
    pending = set(racing)
    failures: list[TurnoutError] = []
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception()
            if error is None:
                winner = racing[task]
                hedge_won = winner is not next(iter(racing.values()))
                for other in pending:
                    racing[other].lost_race = True
                    other.cancel()
                for other in racing:
                    if other is not task and _succeeded(other):
                        await _discard(other)
                if executor.bus.active:
                    loser = next((a for t, a in racing.items() if t is not task), None)
                    executor.bus.emit(
                        HedgeSettled(
                            run.request.request_id,
                            group,
                            winner.deployment.id,
                            hedge_won,
                            loser.deployment.id if loser is not None else None,
                        ),
                    )
                return task.result()
            if isinstance(error, TurnoutError):
                failures.append(error)
            else:
                raise error
    if executor.bus.active:
        executor.bus.emit(HedgeSettled(run.request.request_id, group, None, False, None))
    raise most_informative(failures)


def _succeeded(task: asyncio.Future[Outcome]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


async def _discard(task: asyncio.Future[Outcome]) -> None:
    """A racer that also finished, but second: close its stream if it opened one."""
    result = task.result()
    if isinstance(result, Stream):
        await result.aclose()
