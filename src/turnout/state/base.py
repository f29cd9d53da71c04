"""The state-store protocol: where per-deployment runtime state lives.

The router speaks to state only through these few async operations, each an intent ("an attempt
starts", "an attempt ended like this", "cool this deployment down"), never through field writes.
An in-memory store answers them from local records; a shared store (Redis) can answer the same
intents atomically across gateway instances without any change to the router.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Protocol

from turnout.health.breaker import Admission
from turnout.health.record import CooldownReason, DeploymentState
from turnout.health.rules import HealthPolicy, Outcome
from turnout.observe.events import HealthEvent


class StateStore(Protocol):
    async def snapshot(self, ids: Sequence[str]) -> Sequence[DeploymentState]:
        """Current state of these deployments, in order, for one routing decision.

        Strategies and filters read it and must not write it.
        """
        ...

    async def begin(
        self, deployment_id: str, policy: HealthPolicy, now: float, wall: float
    ) -> tuple[Admission, list[HealthEvent]]:
        """An attempt wants to start: count it in flight and against RPM, if the breaker admits."""
        ...

    async def finish(
        self, deployment_id: str, outcome: Outcome, policy: HealthPolicy, now: float, wall: float
    ) -> list[HealthEvent]:
        """An attempt ended: update averages, counters, cooldown and breaker."""
        ...

    async def finish_suspect(
        self, deployment_id: str, outcome: Outcome, policy: HealthPolicy, now: float, wall: float
    ) -> tuple[int, list[HealthEvent]]:
        """An attempt ended in a server error its request may have caused: hold it until the
        request's verdict when the deployment answers other requests (returning the hold's
        token), else `finish` it (token 0, or `turnout.router.poison.FAILING` when a dropped
        failure of its streak is still unexplained). See `turnout.router.poison`.

        `finish` and this first prune the dropped failures that a deployment of their verdict
        explained by serving since (`poison.explain`): reading those few deployments' success
        counts, in the same step."""
        ...

    async def still_held(self, deployment_id: str, token: int) -> bool:
        """Whether the held failure is clean: no later failure of the deployment counted it."""
        ...

    async def resolve_hold(
        self,
        deployment_id: str,
        token: int,
        blame: bool,
        policy: HealthPolicy,
        now: float,
        wall: float,
    ) -> list[HealthEvent]:
        """The held failure's request has its verdict: count the failure (`blame`) or drop it."""
        ...

    async def drop_holds(self, holds: Sequence[tuple[str, int]]) -> None:
        """A request was judged the cause of its held failures (deployment id, token): drop
        them all at once, each recording the deployments whose hold was still clean, with
        their count of successes now (`poison.verdict_marks`, `poison.drop`)."""
        ...

    async def cool_down(
        self,
        deployment_id: str,
        reason: CooldownReason,
        seconds: float,
        policy: HealthPolicy,
        now: float,
    ) -> list[HealthEvent]:
        """Take a deployment out of rotation for `seconds` (never shortening a longer one)."""
        ...

    async def lift_cooldown(self, deployment_id: str) -> list[HealthEvent]:
        """Put a cooling deployment back in rotation now."""
        ...

    async def retain(self, ids: Collection[str]) -> None:
        """Forget every deployment not in `ids` (after a reload removed it)."""
        ...
