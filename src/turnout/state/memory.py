"""The in-memory state store: one process, no I/O, every operation O(1) (a verdict's, O(the
few deployments it was given on))."""

from __future__ import annotations

from collections.abc import Collection, Sequence

from turnout.health import breaker as breaker_rules
from turnout.health.breaker import Admission
from turnout.health.record import CooldownReason, DeploymentState
from turnout.health.rules import HealthPolicy, Outcome, cool_down, lift_cooldown, settle
from turnout.observe.events import BreakerTransition, HealthEvent
from turnout.router import poison


class MemoryStateStore:
    """Keeps each deployment's `DeploymentState` in a dict; snapshots are the live records."""

    __slots__ = ("_groups", "_states")

    def __init__(self) -> None:
        self._states: dict[str, DeploymentState] = {}
        #: Snapshots by the id tuple asked for: a group's tuple of ids is stable between
        #: reloads, so a routing decision reuses its list of live records.
        self._groups: dict[Sequence[str], list[DeploymentState]] = {}

    def _state(self, deployment_id: str) -> DeploymentState:
        state = self._states.get(deployment_id)
        if state is None:
            state = self._states[deployment_id] = DeploymentState(deployment_id)
        return state

    async def snapshot(self, ids: Sequence[str]) -> Sequence[DeploymentState]:
        if not isinstance(ids, tuple):
            return [self._state(deployment_id) for deployment_id in ids]
        cached = self._groups.get(ids)
        if cached is None:
            cached = self._groups[ids] = [self._state(deployment_id) for deployment_id in ids]
        return cached

    async def begin(
        self, deployment_id: str, policy: HealthPolicy, now: float, wall: float
    ) -> tuple[Admission, list[HealthEvent]]:
        state = self._state(deployment_id)
        admission, transition = breaker_rules.admit(state.breaker, policy.breaker, now)
        events: list[HealthEvent] = []
        if transition is not None:
            events.append(BreakerTransition(deployment_id, *transition))
        if admission is not Admission.REFUSED:
            state.roll(wall)
            state.in_flight += 1
            state.rpm_used += 1
        return admission, events

    async def finish(
        self, deployment_id: str, outcome: Outcome, policy: HealthPolicy, now: float, wall: float
    ) -> list[HealthEvent]:
        state = self._states.get(deployment_id)
        if state is None:  # removed by a reload while the attempt ran
            return []
        if state.dropped is not None and outcome.error is not None:
            poison.explain(state, self._served)
        return settle(state, outcome, policy, now, wall)

    async def finish_suspect(
        self, deployment_id: str, outcome: Outcome, policy: HealthPolicy, now: float, wall: float
    ) -> tuple[int, list[HealthEvent]]:
        state = self._states.get(deployment_id)
        if state is None:
            return 0, []
        if state.dropped is not None:
            poison.explain(state, self._served)
        token = poison.hold(state, outcome, policy, now, wall)
        if token > 0:
            return token, []
        return token, settle(state, outcome, policy, now, wall)

    async def still_held(self, deployment_id: str, token: int) -> bool:
        state = self._states.get(deployment_id)
        return state is not None and poison.still_held(state, token)

    async def resolve_hold(
        self,
        deployment_id: str,
        token: int,
        blame: bool,
        policy: HealthPolicy,
        now: float,
        wall: float,
    ) -> list[HealthEvent]:
        state = self._states.get(deployment_id)
        if state is None:
            return []
        return poison.resolve(state, token, blame, policy, now, wall)

    async def drop_holds(self, holds: Sequence[tuple[str, int]]) -> None:
        states: list[DeploymentState] = []
        tokens: list[int] = []
        for deployment_id, token in holds:
            state = self._states.get(deployment_id)
            if state is not None:
                states.append(state)
                tokens.append(token)
        marks = poison.verdict_marks(states, tokens)
        for state, token in zip(states, tokens, strict=True):
            poison.drop(state, token, marks)

    def _served(self, deployment_id: str) -> int | None:
        state = self._states.get(deployment_id)
        return state.served if state is not None else None

    async def cool_down(
        self,
        deployment_id: str,
        reason: CooldownReason,
        seconds: float,
        policy: HealthPolicy,
        now: float,
    ) -> list[HealthEvent]:
        entered = cool_down(self._state(deployment_id), reason, policy, now, seconds=seconds)
        return [entered] if entered is not None else []

    async def lift_cooldown(self, deployment_id: str) -> list[HealthEvent]:
        state = self._states.get(deployment_id)
        left = lift_cooldown(state) if state is not None else None
        return [left] if left is not None else []

    async def retain(self, ids: Collection[str]) -> None:
        keep = set(ids)
        for deployment_id in [d for d in self._states if d not in keep]:
            del self._states[deployment_id]
        self._groups.clear()
