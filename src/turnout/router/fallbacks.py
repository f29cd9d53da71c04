"""Fallbacks across model groups, over the dispatch seam.

When a group's retries are spent, the fallback list for the kind of failure is tried, group by
group, each with its own retries (and its own fallbacks), up to a bounded depth. A group none of
whose deployments is predicted to answer before the deadline is skipped: that check is part of
the target's first decision, so a hop costs no store call of its own.

The router-wide retry budget exists to cap the extra load failures put on providers, so a hop
draws on it only when it follows traffic the failing group was sent: a hop taken because the
group had nothing available (every deployment cooling down, its breaker open, at a limit or
filtered out) sent that group nothing and is free. So during an outage of a model with one
deployment, once it is cooling down, every request goes to the fallback however long it lasts.
"""

from __future__ import annotations

import random

from turnout.errors import PoisonRequestError, TurnoutError, fallback_kind
from turnout.observe.events import FallbackTaken
from turnout.router.attempt import Call, Reason, Run
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
    # Attempts started before this group's own: `first`, when given, is already counted.
    before = run.number - 1 if first is not None and first.attempt is not None else run.number
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
        #: Whether the group was sent anything: only then is a hop an extra attempt.
        sent = run.number > before
        for target in table.fallbacks(kind, group):
            if target in run.visited:
                continue
            if run.hops >= max_depth or (sent and not dispatch.spend_retry(run, group)):
                break
            time_left = run.deadline - dispatch.clock.now()
            choice = await dispatch.start(
                run, target, time_left=time_left, must_fit=True, reason=Reason.FALLBACK
            )
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
