"""Retries within one model group, over the dispatch seam.

A retryable failure goes to another healthy deployment of the group at once. When none is
left, a rate limit hands the request to a fallback group that can answer now rather than wait;
otherwise the retry goes back to a deployment already tried, after the provider's Retry-After
or an exponential backoff with full jitter. The group's first attempt may be hedged
(`turnout.router.race`). Retries draw on the router-wide retry budget, and none starts that
cannot finish before the deadline. A request whose held failures (`turnout.health.poison`) add
up to a verdict fails as the cause.
"""

from __future__ import annotations

import random

from turnout.errors import (
    FailureKind,
    NoMatchingDeploymentError,
    ProviderError,
    TurnoutError,
    fallback_kind,
)
from turnout.observe.events import RetryScheduled
from turnout.router.attempt import Call, Run
from turnout.router.backoff import backoff_delay
from turnout.router.decision import Choice, can_finish
from turnout.router.dispatch import Delivery, Dispatch
from turnout.router.filters import Rejections, eligible
from turnout.router.race import hedged

#: Failures that say this deployment cannot serve the request: retry elsewhere, never here.
#: A timeout is one: a deployment that used up its per-call limit (or answered 408/504) would
#: most likely use it up again, so the request moves on to another deployment or a fallback,
#: keeping the rest of its deadline for them.
_NOT_HERE_AGAIN = frozenset(
    {
        FailureKind.AUTHENTICATION,
        FailureKind.PERMISSION,
        FailureKind.NOT_FOUND,
        FailureKind.TIMEOUT,
        FailureKind.UNSUPPORTED_PARAMETER,
    }
)
_NOTHING: frozenset[str] = frozenset()


async def with_retries(
    dispatch: Dispatch,
    rng: random.Random,
    group: str,
    run: Run,
    call: Call,
    first: Choice | None = None,
) -> Delivery:
    """Serve the run from `group`, retrying within it; raises the last failure when the
    group's retries are spent. `first`: the group's first decision, already made."""
    clock = dispatch.clock
    request = run.request
    config = run.bundle.table.config
    tried: set[str] = set()
    banned: set[str] = set()
    #: Where the request failed while others were served, skipped while its verdict is open.
    spared: set[str] = set()
    retries = 0
    last_error: ProviderError | None = None
    exclude: set[str] | frozenset[str] = _NOTHING
    while True:
        if first is not None:
            choice, first = first, None
        else:
            now = clock.now()
            avoid = banned | spared if spared and run.holds is not None else banned
            exclude = (tried | avoid) if (tried or avoid) else _NOTHING
            choice = await dispatch.start(run, group, exclude, time_left=run.deadline - now)
        deployment = choice.deployment
        if deployment is None:
            if last_error is not None:
                raise last_error
            raise choice.rejections.error(group, request, choice.wall)
        attempt = choice.attempt
        if attempt is None:
            # Its last probe slot went to a concurrent request: pick again without it.
            tried.add(deployment.id)
            continue
        try:
            hedger = run.bundle.hedger
            if retries == 0 and hedger.active and hedger.delay(group, request.stream) is not None:
                return await hedged(dispatch, group, run, call, attempt, exclude)
            return await dispatch.call(attempt, call)
        except ProviderError as error:
            last_error = error
            if run.holds:
                await dispatch.judge(run)
                if _fallback_left(group, run, error):
                    # Where the request failed while others were served, another try would
                    # most likely fail alike: with a fallback left, that is the next try.
                    spared.update(held.deployment_id for held in run.holds)
            if not error.retryable or retries >= config.retries.num_retries:
                raise
            for failed in {deployment.id, error.deployment_id or deployment.id}:
                (banned if error.kind in _NOT_HERE_AGAIN else tried).add(failed)
            avoid = banned | spared if spared and run.holds is not None else banned
            delay = await _retry_delay(dispatch, rng, group, run, tried, avoid, error, retries)
            if not dispatch.spend_retry(run, group):
                raise
            retries += 1
            if dispatch.bus.active:
                dispatch.bus.emit(
                    RetryScheduled(
                        request.request_id, group, error.deployment_id or "", delay, error.kind
                    )
                )
            if delay > 0:
                await clock.sleep(delay)


async def _retry_delay(
    dispatch: Dispatch,
    rng: random.Random,
    group: str,
    run: Run,
    tried: set[str],
    banned: set[str],
    error: ProviderError,
    retries: int,
) -> float:
    """Seconds to wait before the group's next try; raises `error` when it should not retry.

    Another deployment of the group takes the retry at once. When none can, a fallback group
    that can answer now takes the request instead (raising hands it to the fallbacks), rather
    than waiting out a rate limit here. Only when nothing else can answer does the retry wait:
    after a rate limit, as long as the provider asked (bounded by ``max_retry_after``) or
    until the cooling deployment returns; after other failures, a jittered backoff. A retry
    that cannot finish before the deadline is not started.
    """
    clock = dispatch.clock
    table = run.bundle.table
    config = table.config
    deployments = table.groups[group]
    now, wall = clock.now(), clock.wall()
    states = await dispatch.states(table.ids[group])
    others, other_states = eligible(
        deployments,
        states,
        run.request,
        config.breaker,
        now,
        wall,
        tried | banned,
        Rejections(),
        table.lacks,
    )
    delay = 0.0
    if not others:
        retry_after = error.retry_after
        if retry_after is not None and retry_after > config.retries.max_retry_after:
            raise error
        waits = error.kind is FailureKind.RATE_LIMITED or retry_after is not None
        if waits and await _answers_elsewhere(dispatch, group, run, error, now, wall):
            raise error
        tried.clear()
        delay = backoff_delay(retries, config.retries, rng, retry_after)
        rejections = Rejections()
        again, other_states = eligible(
            deployments,
            states,
            run.request,
            config.breaker,
            now,
            wall,
            banned,
            rejections,
            table.lacks,
        )
        if not again:
            # Everything is cooling down or open. Waiting for it is worth it only when the
            # provider said when to come back (a rate limit); a failing one fails fast.
            wait = rejections.wait_hint()
            if (
                error.kind is not FailureKind.RATE_LIMITED
                or wait is None
                or wait > config.retries.max_retry_after
            ):
                raise error
            delay = max(delay, wait)
            other_states = list(states)  # the ones coming back after the wait
    # A wait that ends after the answer must have begun (a stream's caller reads with a
    # timeout) only delays the same failure.
    if delay >= run.open_by - now or not can_finish(other_states, run.deadline - now - delay):
        raise error
    return delay


async def _answers_elsewhere(
    dispatch: Dispatch, group: str, run: Run, error: TurnoutError, now: float, wall: float
) -> bool:
    """Whether a fallback group this request may still take can serve it now, in time.

    Asked only when the group itself would make the request wait (a rate limit on its last
    deployment), so its store reads never touch a clean request.
    """
    kind = fallback_kind(error)
    if kind is None:
        return False
    table = run.bundle.table
    config = table.config
    if run.hops >= config.fallbacks.max_depth:
        return False
    time_left = run.deadline - now
    for target in table.fallbacks(kind, group):
        if target in run.visited or target == group:
            continue
        states = await dispatch.states(table.ids[target])
        try:
            found, found_states = eligible(
                table.groups[target],
                states,
                run.request,
                config.breaker,
                now,
                wall,
                _NOTHING,
                Rejections(),
                table.lacks,
            )
        except NoMatchingDeploymentError:
            continue
        if found and can_finish(found_states, time_left):
            return True
    return False


def _fallback_left(group: str, run: Run, error: TurnoutError) -> bool:
    """Whether the failure's fallback list still holds a group this request has not visited."""
    kind = fallback_kind(error)
    return kind is not None and any(
        target not in run.visited for target in run.bundle.table.fallbacks(kind, group)
    )
