"""The state-store protocol: where per-deployment runtime state lives.

The router speaks to state only through these few async operations, each an intent ("start an
attempt on the deployment this chooser picks", "an attempt ended like this", "cool this
deployment down"), never through field writes, and only from `turnout.router.dispatch`. The
protocol is typed in health types alone: a store runs the health rules (`turnout.health`) on
its records and hands out immutable snapshots of them.

Each operation is one round trip to a shared store, and the operations are merged so that a
clean request makes two: `begin` (the routing decision and the attempt's start) and `finish`.
An in-memory store answers them from local records; a shared store (Redis) can answer the same
intents atomically across gateway instances without any change to the router, for instance by
choosing on the snapshot its last round trip brought back, and pipelining the start with a
fresh read of the group.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Protocol

from turnout.health.ejection import Admission
from turnout.health.events import HealthEvent
from turnout.health.poison import Hold
from turnout.health.record import CooldownReason
from turnout.health.rules import HealthPolicy, Outcome
from turnout.health.snapshot import DeploymentSnapshot


class Chooser(Protocol):
    """One routing decision, which a store's `begin` runs on the records it holds.

    Picks a deployment from a group's snapshots (in the order of the ids given): its id, or
    None when none may serve; and the ids whose ejection has run out, to move to probing. Pure
    and synchronous: the store calls it inside `begin`.
    """

    @property
    def turn(self) -> Sequence[str]:
        """After a call, the candidates (ids) the strategy takes turns among, when it does
        (round robin); empty: its pick stands. A store shared by several processes gives the
        turn fleet-wide, and says where it fell with `turn_falls_on`."""
        ...

    def __call__(self, states: Sequence[DeploymentSnapshot]) -> tuple[str | None, Sequence[str]]:
        """The chosen id (None: nothing may serve) and the ids whose ejection is over."""
        ...

    def turn_falls_on(self, deployment_id: str) -> None:
        """The fleet's turn chose this candidate (one of `turn`) instead of the local pick."""
        ...


class StateStore(Protocol):
    async def snapshot(self, ids: Sequence[str]) -> Sequence[DeploymentSnapshot]:
        """Current state of these deployments, in order (immutable values)."""
        ...

    async def begin(
        self,
        ids: Sequence[str],
        choose: Chooser,
        policies: Mapping[str, HealthPolicy],
        now: float,
        wall: float,
    ) -> tuple[str | None, Admission, list[HealthEvent]]:
        """One routing decision and the start of its attempt, in one step: move the ejections
        `choose` found expired to probing, and count the chosen deployment's attempt in flight
        and against its RPM if its phase admits it (`turnout.health.ejection.admit`, taking a
        probe slot while probing). Returns the chosen id (None: nothing to choose) and its
        admission (`REFUSED` when turned away: its last probe slot went to a concurrent
        request)."""
        ...

    async def finish(
        self,
        deployment_id: str,
        outcome: Outcome,
        policy: HealthPolicy,
        now: float,
        wall: float,
        holds: Sequence[Hold] | None = None,
    ) -> tuple[int, list[HealthEvent]]:
        """An attempt ended: update averages, counters and the ejection state. Token 0.

        With `holds` (the request's holds so far: its server error may be its own fault,
        `turnout.health.poison`), the failure is held until the request's verdict when the
        deployment answers other requests, returning the hold's token. When it counts now
        instead because a dropped failure of the deployment's streak is unexplained, the token
        is `poison.FAILING` and every hold of `holds` is counted too (the request has become
        an ordinary failing one).

        Both first prune the dropped failures that a deployment of their verdict explained by
        serving since (`poison.explain`): reading those few deployments' success counts, in
        the same step."""
        ...

    async def judge(
        self, holds: Sequence[Hold], needed: int, window: float, now: float
    ) -> tuple[str, ...]:
        """The verdict on a request from its held failures (`poison.judge`): the deployments it
        is judged the cause on, its holds all dropped; or () when it is not the cause."""
        ...

    async def resolve_holds(
        self, holds: Sequence[Hold], blame: bool, now: float, wall: float
    ) -> list[HealthEvent]:
        """The held failures' request has its verdict: count them (`blame`) or drop each as
        its deployment's own (`poison.resolve`)."""
        ...

    async def still_held(self, deployment_id: str, token: int) -> bool:
        """Whether the held failure is clean: no later failure of the deployment counted it."""
        ...

    async def cool_down(
        self,
        deployment_id: str,
        reason: CooldownReason,
        seconds: float,
        policy: HealthPolicy,
        now: float,
    ) -> list[HealthEvent]:
        """Eject a deployment for `seconds` (never shortening a longer ejection)."""
        ...

    async def lift_cooldown(self, deployment_id: str) -> list[HealthEvent]:
        """Put an ejected or probing deployment back in rotation now (an operator's call)."""
        ...

    async def expire(self, deployment_id: str, now: float) -> list[HealthEvent]:
        """Move the deployment to probing if its ejection has run out by `now`."""
        ...

    async def probe_answered(
        self, deployment_id: str, policy: HealthPolicy, now: float
    ) -> list[HealthEvent]:
        """A probe that streams delivered its first chunk: the deployment answers, so the probe
        counts as successful now (`turnout.health.ejection.on_success`), not when the stream
        ends; the attempt settles later as an ordinary one."""
        ...

    async def retain(self, ids: Collection[str]) -> None:
        """Forget every deployment not in `ids` (after a reload removed it)."""
        ...

    def status(self) -> dict[str, Any]:
        """What /health and metrics show of the store: its ``backend``, whether state is
        ``shared`` across processes now, and what else the backend reports."""
        ...

    async def aclose(self) -> None:
        """Release what the store holds (connections, a heartbeat). Idempotent."""
        ...
