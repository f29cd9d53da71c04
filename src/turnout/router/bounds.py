"""How long one attempt may run: its limit, and the time it must leave for the next candidate.

An attempt's wait (a whole answer, a stream's first chunk, each gap of a stream) is bounded by
its limit (`turnout.router.limits`: the request's own, learned, cold or configured). When
another deployment or a fallback could still answer, it is also bounded so as to leave that
candidate time to answer before the request must: the time left minus a reserve (twice the
candidate's usual time when known, else a share of the time left). It is never cut below its
own usual time, though, when that fits: the deployment chosen is the one expected to answer.

An attempt cut by the reserve before it has run for its limit's floor is no verdict on the
deployment (the caller's deadline was short, not the deployment slow): it is abandoned, and the
request moves on all the same. Past the floor it counts as any timeout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from turnout.errors import UpstreamTimeoutError
from turnout.router.attempt import Attempt
from turnout.router.limits import FIRST_TOKEN, IDLE, Limit, can_escape, next_candidates


class LeftForNext(UpstreamTimeoutError):
    """An attempt cut to keep time for the next candidate (`verdict`: whether it counts)."""

    verdict = True


class Bound(NamedTuple):
    """When an attempt's wait ends, and why (a tuple: one is made for every attempt)."""

    #: Monotonic time on the router's clock.
    until: float
    limit: Limit | None
    #: Seconds kept for the next candidate when the bound is the reserve (0: the limit).
    reserve: float = 0.0
    #: Below this many seconds of running, a cut by the reserve is no verdict.
    floor: float = 0.0

    def error(self, ran: float) -> UpstreamTimeoutError:
        """The timeout of an attempt that reached this bound after `ran` seconds."""
        limit = self.limit
        what = "first chunk" if limit is not None and limit.kind == FIRST_TOKEN else "answer"
        if limit is not None and limit.kind == IDLE:
            what = "chunk"
        if self.reserve > 0:
            left = LeftForNext(
                f"No {what} within {ran:.3g}s: left to keep {self.reserve:.3g}s of the "
                "request's time for another deployment or a fallback"
            )
            left.verdict = ran >= self.floor
            return left
        assert limit is not None
        return UpstreamTimeoutError(f"No {what} within {limit.seconds:.3g}s ({limit.describe()})")


def attempt_bound(attempt: Attempt, kind: str) -> Bound | None:
    """The bound of an attempt's wait for its answer (``request``) or first chunk
    (``first-token``), from its start; None: unbounded (the request's deadline still holds)."""
    run = attempt.run
    bundle = run.bundle
    limits = bundle.limits
    deployment = attempt.deployment
    started = attempt.started
    where = (bundle.table, attempt.group, deployment.id, run.attempts, run.visited, run.hops)
    escape = can_escape(*where)
    limit = limits.limit(kind, deployment, attempt.request, escape)
    until = None if limit is None else started + limit.seconds
    end = run.open_by
    if (
        escape
        and limits.config.enabled
        and end > started
        and (until is None or until > started + (end - started) * limits.reserve_free_share)
    ):
        # Otherwise the reserve cannot bind: it never exceeds that share of the time left, and
        # the limit ends first (the common case, a deadline far beyond the limit).
        stream = kind == FIRST_TOKEN
        reserve = limits.reserve(next_candidates(*where), stream, end - started)
        keep = end - reserve
        usual = limits.expected(deployment.id, stream)
        if usual is not None:
            keep = max(keep, min(started + usual, end))
        if (until is None or keep < until) and keep < end:
            bounds = limits.config.first_token if stream else limits.config.request
            return Bound(keep, limit, end - keep, bounds.floor)
    return None if until is None else Bound(until, limit)


def idle_bound(attempt: Attempt, escape: bool) -> tuple[Limit | None, float | None]:
    """The idle limit of a stream's attempt (None: none), and the longest gap the caller reads
    through (its read timeout, less the time kept for a continuation to start), when known.
    `escape`: whether a stall could be continued elsewhere."""
    run = attempt.run
    bundle = run.bundle
    limits = bundle.limits
    deployment = attempt.deployment
    following: Sequence[str] = ()
    if escape:
        following = next_candidates(
            bundle.table, attempt.group, deployment.id, run.attempts, run.visited, run.hops
        )
    limit = limits.limit(IDLE, deployment, attempt.request, bool(following))
    within = run.request.start_within
    if within is None or not following or not limits.config.enabled:
        return limit, None
    return limit, within - limits.reserve(following, True, within)
