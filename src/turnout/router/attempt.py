"""One request's run through the router, and the attempts within it: records only.

`Run` carries what spans the whole request (deadline, attempts so far, errors seen, fallback
hops, held failures). `Attempt` is one try of one deployment, settled exactly once by
`turnout.router.dispatch`, which alone speaks to the state store and emits attempt events.
"""

from __future__ import annotations

from enum import Enum

from turnout.config.router import Deployment
from turnout.errors import AttemptRecord, TurnoutError
from turnout.health.poison import Hold
from turnout.health.rules import HealthPolicy
from turnout.router.runtime import ConfigBundle
from turnout.wire import Request


class Call(Enum):
    """Which provider method an attempt calls."""

    COMPLETE = "complete"
    EMBED = "embed"
    STREAM = "stream"


class Reason(Enum):
    """Why an attempt was started: the request's first, a retry within its group, the first
    of a fallback group, a hedged duplicate, or the continuation of a broken stream."""

    PRIMARY = "primary"
    RETRY = "retry"
    FALLBACK = "fallback"
    HEDGE = "hedge"
    FAILOVER = "failover"


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
        "open_by",
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
        #: When the answer must begin: the deadline, or for a stream whose caller reads with a
        #: timeout (`Request.start_within`), the end of that wait if sooner.
        self.open_by = deadline
        if request.start_within is not None and request.stream:
            self.open_by = min(deadline, started + request.start_within)
        self.attempts: list[AttemptRecord] = []
        self.errors: list[TurnoutError] = []
        #: Attempts started so far (the next attempt's number is this plus one).
        self.number = 0
        self.hops = 0
        self.visited: set[str] = set()
        #: Server errors held until this request's verdict (`turnout.health.poison`); None
        #: once the verdict is in, or when no failure may be held.
        self.holds: list[Hold] | None = [] if hold_failures else None


class Attempt:
    """One try of one deployment: what it sends, where, and whether it has been settled."""

    __slots__ = (
        "deployment",
        "group",
        "lost_race",
        "number",
        "policy",
        "probe",
        "reason",
        "request",
        "run",
        "settled",
        "started",
    )

    def __init__(
        self,
        run: Run,
        group: str,
        deployment: Deployment,
        policy: HealthPolicy,
        probe: bool,
        started: float,
        request: Request | None = None,
        reason: Reason | None = None,
    ) -> None:
        self.run = run
        #: What this attempt sends: the run's request, or a continuation of it.
        self.request = request if request is not None else run.request
        self.group = group
        self.deployment = deployment
        self.policy = policy
        self.probe = probe
        run.number += 1
        self.number = run.number
        if reason is None:
            reason = Reason.PRIMARY if run.number == 1 else Reason.RETRY
        self.reason = reason
        #: Monotonic time on the router's clock.
        self.started = started
        self.settled = False
        #: Cancelled because a hedged duplicate delivered first: its prompt was still billed.
        self.lost_race = False
