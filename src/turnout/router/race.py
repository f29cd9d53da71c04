"""A hedged race: when a group's first attempt is slow, a duplicate races it on another
deployment, over the dispatch seam. Which groups hedge, when and how often:
`turnout.router.hedging`."""

from __future__ import annotations

import asyncio
from collections.abc import Collection

from turnout.errors import TurnoutError, most_informative
from turnout.observe.events import BudgetExhausted, HedgeFired, HedgeSettled
from turnout.router.attempt import Attempt, Call, Reason, Run
from turnout.router.dispatch import Delivery, Dispatch
from turnout.router.segment import Segment


async def hedged(
    dispatch: Dispatch,
    group: str,
    run: Run,
    call: Call,
    attempt: Attempt,
    exclude: Collection[str],
) -> Delivery:
    """Race the attempt against a duplicate started if it has not delivered after the
    group's hedge delay; the first to deliver wins and the other is cancelled."""
    delay = run.bundle.hedger.delay(group, run.request.stream)
    assert delay is not None
    clock = dispatch.clock
    primary = asyncio.ensure_future(dispatch.call(attempt, call))
    timer = asyncio.ensure_future(clock.sleep(delay))
    racing: dict[asyncio.Future[Delivery], Attempt] = {primary: attempt}
    try:
        await asyncio.wait({primary, timer}, return_when=asyncio.FIRST_COMPLETED)
        if primary.done():
            return primary.result()
        second = await _start_hedge(dispatch, group, run, attempt, exclude)
        if second is None:
            return await primary
        racing[asyncio.ensure_future(dispatch.call(second, call))] = second
        if dispatch.bus.active:
            dispatch.bus.emit(
                HedgeFired(
                    run.request.request_id,
                    group,
                    attempt.deployment.id,
                    second.deployment.id,
                    clock.now() - attempt.started,
                )
            )
        return await _race(dispatch, run, group, racing)
    finally:
        timer.cancel()
        for task, racer in racing.items():
            if not task.done():
                racer.lost_race = True
                task.cancel()
        await asyncio.gather(*racing, timer, return_exceptions=True)


async def _start_hedge(
    dispatch: Dispatch, group: str, run: Run, attempt: Attempt, exclude: Collection[str]
) -> Attempt | None:
    if not run.bundle.hedger.try_spend(group, dispatch.clock.now()):
        if dispatch.bus.active:
            dispatch.bus.emit(BudgetExhausted(run.request.request_id, group, "hedge"))
        return None
    return (
        await dispatch.start(run, group, {*exclude, attempt.deployment.id}, reason=Reason.HEDGE)
    ).attempt


async def _race(
    dispatch: Dispatch, run: Run, group: str, racing: dict[asyncio.Future[Delivery], Attempt]
) -> Delivery:
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
                        await _discard(dispatch, other)
                if dispatch.bus.active:
                    loser = next((a for t, a in racing.items() if t is not task), None)
                    dispatch.bus.emit(
                        HedgeSettled(
                            run.request.request_id,
                            group,
                            winner.deployment.id,
                            hedge_won,
                            loser.deployment.id if loser is not None else None,
                        )
                    )
                return task.result()
            if isinstance(error, TurnoutError):
                failures.append(error)
            else:
                raise error
    if dispatch.bus.active:
        dispatch.bus.emit(HedgeSettled(run.request.request_id, group, None, False, None))
    raise most_informative(failures)


def _succeeded(task: asyncio.Future[Delivery]) -> bool:
    return task.done() and not task.cancelled() and task.exception() is None


async def _discard(dispatch: Dispatch, task: asyncio.Future[Delivery]) -> None:
    """A racer that also finished, but second: close its stream if it opened one."""
    result = task.result()
    if isinstance(result, Segment):
        await dispatch.discard(result)
