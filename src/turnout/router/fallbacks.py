"""Fallbacks across model groups, over the dispatch seam.

When a group's retries are spent, the fallback list for the kind of failure is tried, group by
group, each with its own retries (and its own fallbacks), up to a bounded depth. Each hop draws
on the router-wide retry budget, and a group none of whose deployments is predicted to answer
before the deadline is skipped: that check is part of the target's first decision, so a hop
costs no store call of its own.
"""

from __future__ import annotations

import random

from turnout.errors import PoisonRequestError, TurnoutError, fallback_kind
from turnout.observe.events import FallbackTaken
from turnout.router.attempt import Call, Run
from turnout.router.decision import Choice
from turnout.router.dispatch import Delivery, Dispatch
from turnout.router.retries import with_retries


async def with_fallbacks(
    dispatch: Dispatch,
    rng: random.Random,
    group: str,
    run: Run,
    call: Call,
    first: Choice | None = None,
) -> Delivery:
    """Serve the run from `group`, or from its fallbacks when the group fails."""
    try:
        return await with_retries(dispatch, rng, group, run, call, first)
    except PoisonRequestError:
        raise
    except TurnoutError as error:
        run.errors.append(error)
        kind = fallback_kind(error)
        if kind is None:
            raise
        table = run.bundle.table
        max_depth = table.config.fallbacks.max_depth
        for target in table.fallbacks(kind, group):
            if target in run.visited:
                continue
            if run.hops >= max_depth or not dispatch.spend_retry(run, group):
                break
            time_left = run.deadline - dispatch.clock.now()
            choice = await dispatch.start(run, target, time_left=time_left, must_fit=True)
            if not choice.fits:
                continue
            run.hops += 1
            run.visited.add(target)
            if dispatch.bus.active:
                dispatch.bus.emit(
                    FallbackTaken(run.request.request_id, group, target, kind, error.kind)
                )
            try:
                return await with_fallbacks(dispatch, rng, target, run, call, choice)
            except PoisonRequestError:
                raise
            except TurnoutError:
                continue
        raise
