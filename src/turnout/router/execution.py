"""Carrying out one request, from its start to its end, all under one deadline.

For each request: resolve the model name to a group, and serve it from the group or its
fallbacks (`turnout.router.fallbacks`, `turnout.router.retries`), every attempt going through
the dispatch seam (`turnout.router.dispatch`). When everything fails the caller gets the most
informative underlying error with a summary of every attempt. A request that fails with a
server error on several deployments answering other requests is failed at once as the cause,
and counts against none of them (`turnout.health.poison`); when it ends any other way, what it
held counts.
"""

from __future__ import annotations

import functools
import random

from turnout.errors import (
    DeadlineExceededError,
    PoisonRequestError,
    TurnoutError,
    most_informative,
)
from turnout.router.attempt import Call, Run
from turnout.router.dispatch import Answer, Dispatch
from turnout.router.failover import continue_stream
from turnout.router.fallbacks import with_fallbacks
from turnout.router.runtime import ConfigBundle
from turnout.router.segment import Segment
from turnout.router.streaming import Stream
from turnout.wire import Request

#: What a request delivers: a whole answer, or a stream already under way.
Outcome = Stream | Answer


class Executor:
    """Runs requests over the dispatch seam, for the router's lifetime. What a config decides
    comes with each request, in the `ConfigBundle` it started with."""

    __slots__ = ("_failover", "dispatch", "rng")

    def __init__(self, dispatch: Dispatch, rng: random.Random) -> None:
        self.dispatch = dispatch
        self.rng = rng
        #: Continues a stream that broke after content was sent (`turnout.router.failover`).
        self._failover = functools.partial(continue_stream, dispatch)

    async def run(self, bundle: ConfigBundle, request: Request, call: Call) -> tuple[Run, Outcome]:
        dispatch = self.dispatch
        clock = dispatch.clock
        started = clock.now()
        table = bundle.table
        config = table.config
        limit = request.timeout if request.timeout is not None else config.timeout
        run = Run(
            request,
            started,
            started + limit,
            bundle,
            hold_failures=config.health.poison_requests.enabled,
        )
        dispatch.request_started(run)
        if bundle.retry_budget is not None:
            bundle.retry_budget.record_request(started)
        #: Whether a stream took the request over (it then reports the request's end itself).
        streaming = False
        try:
            group = table.resolve(request.model)
            run.visited.add(group)
            hedger = bundle.hedger
            if hedger.active:
                hedger.record_request(group, started)
            async with clock.timeout_at(run.deadline):
                delivered = await with_fallbacks(dispatch, self.rng, group, run, call)
                if isinstance(delivered, Segment):
                    failover = self._failover if config.stream_failover else None
                    stream = Stream(delivered, dispatch, failover)
                    stream.carry_request()
                    streaming = True
                    return run, stream
                return run, delivered
        except TimeoutError:
            error: TurnoutError = DeadlineExceededError(
                f"The request did not finish within its deadline of {limit:g}s"
            )
        except PoisonRequestError as poison:
            error = poison
        except TurnoutError as failure:
            error = most_informative(run.errors) if run.errors else failure
        finally:
            # Not the request's fault after all (or never known): what it held counts.
            await dispatch.release_holds(run)
            if not streaming:
                dispatch.request_finished(run)
        error.attempts = tuple(run.attempts)
        raise error
