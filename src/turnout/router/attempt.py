"""One request's run through the router, and one attempt's bookkeeping within it.

`Run` carries what spans the whole request (deadline, attempts so far, errors seen, fallback
hops). `Attempt` settles exactly one try of one deployment: it tells the state store how the try
ended, records it, and emits the events, whether the try succeeded, failed or was abandoned.
"""

from __future__ import annotations

import logging
from enum import Enum
from typing import TYPE_CHECKING

from turnout.clock import Clock
from turnout.config.router import Deployment
from turnout.errors import AttemptRecord, FailureKind, TurnoutError
from turnout.health.rules import HealthPolicy, Outcome
from turnout.observe.bus import Bus
from turnout.observe.events import AttemptFinished
from turnout.pricing.price import price
from turnout.router.poison import FAILING, Hold, suspect
from turnout.state.base import StateStore
from turnout.wire import RateLimitHints, Request, Usage

if TYPE_CHECKING:
    from turnout.router.execution import ConfigBundle

logger = logging.getLogger("turnout.router")


class Call(Enum):
    """Which provider method an attempt calls."""

    COMPLETE = "complete"
    EMBED = "embed"
    STREAM = "stream"


class Run:
    """The state of one request across every attempt, retry and fallback."""

    __slots__ = (
        "attempts",
        "bundle",
        "deadline",
        "errors",
        "holds",
        "hops",
        "number",
        "request",
        "started",
        "visited",
    )

    def __init__(
        self,
        request: Request,
        started: float,
        deadline: float,
        bundle: ConfigBundle,
        *,
        hold_failures: bool = False,
    ) -> None:
        self.request = request
        #: The configuration the request started on: a reload does not change it midway.
        self.bundle = bundle
        self.started = started
        self.deadline = deadline
        self.attempts: list[AttemptRecord] = []
        self.errors: list[TurnoutError] = []
        #: Attempts started so far (the next attempt's number is this plus one).
        self.number = 0
        self.hops = 0
        self.visited: set[str] = set()
        #: Server errors held until this request's verdict (`turnout.router.poison`); None
        #: once the verdict is in, or when no failure may be held.
        self.holds: list[Hold] | None = [] if hold_failures else None


class Attempt:
    """One try of one deployment, settled exactly once."""

    __slots__ = (
        "bus",
        "clock",
        "deployment",
        "group",
        "lost_race",
        "number",
        "policy",
        "probe",
        "request",
        "run",
        "settled",
        "started",
        "store",
    )

    def __init__(
        self,
        *,
        run: Run,
        group: str,
        deployment: Deployment,
        policy: HealthPolicy,
        probe: bool,
        clock: Clock,
        store: StateStore,
        bus: Bus,
        request: Request | None = None,
    ) -> None:
        self.run = run
        #: What this attempt sends: the run's request, or a continuation of it.
        self.request = request if request is not None else run.request
        self.group = group
        self.deployment = deployment
        self.policy = policy
        self.probe = probe
        self.clock = clock
        self.store = store
        self.bus = bus
        run.number += 1
        self.number = run.number
        self.started = clock.now()
        self.settled = False
        #: Cancelled because a hedged duplicate delivered first: its prompt was still billed.
        self.lost_race = False

    async def succeed(
        self,
        usage: Usage,
        rate_limits: RateLimitHints | None = None,
        ttft: float | None = None,
    ) -> float | None:
        """The try answered; returns the answer's cost."""
        cost = price(
            self.deployment, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens
        )
        now = self.clock.now()
        outcome = Outcome(
            None,
            now - self.started,
            ttft=ttft,
            tokens=usage.total_tokens,
            rate_limits=rate_limits,
            probe=self.probe,
        )
        await self._settle(outcome, None, usage, cost, now)
        return cost

    async def fail(self, error: TurnoutError, usage: Usage | None = None) -> None:
        """The try failed with `error` (already classified); `usage`: what it still consumed
        (a stream broken after content was generated)."""
        retry_after = getattr(error, "retry_after", None)
        outcome = Outcome(
            error.kind,
            self.clock.now() - self.started,
            retry_after=retry_after,
            tokens=usage.total_tokens if usage is not None else 0,
            probe=self.probe,
        )
        cost = None
        if usage is not None:
            cost = price(self.deployment, usage.prompt_tokens, usage.completion_tokens)
        holdable = self.run.holds is not None and not self.probe and suspect(error)
        await self._settle(outcome, error, usage, cost, holdable=holdable)

    async def abandon(self, why: FailureKind = FailureKind.CANCELLED) -> None:
        """The try was cut off by the caller (gone, cancelled) or by the request's deadline:
        no verdict on the deployment."""
        outcome = Outcome(why, self.clock.now() - self.started, probe=self.probe)
        usage = cost = None
        if self.lost_race:
            # The provider bills a cancelled request's prompt: account it, estimated.
            usage = Usage(self.request.prompt_tokens, 0)
            cost = price(self.deployment, usage.prompt_tokens, 0)
        await self._settle(outcome, None, usage, cost)

    async def _settle(
        self,
        outcome: Outcome,
        error: TurnoutError | None,
        usage: Usage | None,
        cost: float | None,
        now: float | None = None,
        *,
        holdable: bool = False,
    ) -> None:
        if self.settled:
            return
        self.settled = True
        clock = self.clock
        if now is None:
            now = clock.now()
        deployment_id = self.deployment.id
        if holdable:
            token, events = await self.store.finish_suspect(
                deployment_id, outcome, self.policy, now, clock.wall()
            )
            holds = self.run.holds
            if token > 0 and holds is not None:
                holds.append(Hold(deployment_id, token, self.policy))
            elif token > 0:  # the request's verdict came in meanwhile: no one is left to give it
                events += await self.store.resolve_hold(
                    deployment_id, token, True, self.policy, clock.now(), clock.wall()
                )
            elif token == FAILING and holds is not None:
                # The deployment fails more than poison requests: from here on the request is
                # an ordinary failing one, and what it held counts.
                self.run.holds = None
                for held in holds:
                    events += await self.store.resolve_hold(
                        held.deployment_id, held.token, True, held.policy, now, clock.wall()
                    )
        else:
            events = await self.store.finish(deployment_id, outcome, self.policy, now, clock.wall())
        status = error.status if error is not None else None
        if error is not None:
            status = getattr(error, "upstream_status", None) or status
        self.run.attempts.append(
            AttemptRecord(
                deployment_id=deployment_id,
                model_group=self.group,
                started=self.started,
                duration=outcome.duration,
                error=outcome.error,
                status=status,
                message=error.message if error is not None else None,
            )
        )
        if self.bus.active:
            self.bus.emit(
                AttemptFinished(
                    request_id=self.run.request.request_id,
                    model_group=self.group,
                    deployment_id=deployment_id,
                    attempt=self.number,
                    at=now,
                    duration=outcome.duration,
                    error=outcome.error,
                    status=status,
                    usage=usage,
                    cost=cost,
                    ttft=outcome.ttft,
                    stream=self.run.request.stream,
                    principal=self.run.request.principal,
                ),
            )
            for event in events:
                self.bus.emit(event)
