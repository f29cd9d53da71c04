"""The in-memory state store: one process, no I/O, every operation O(1) (a verdict's, O(the
few deployments it was given on); a routing decision's, O(the group))."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from turnout.health import breaker as breaker_rules
from turnout.health import poison
from turnout.health.breaker import Admission
from turnout.health.events import BreakerTransition, HealthEvent
from turnout.health.poison import Hold
from turnout.health.record import CooldownReason, DeploymentState
from turnout.health.rules import HealthPolicy, Outcome, cool_down, lift_cooldown, settle
from turnout.health.snapshot import DeploymentSnapshot, snapshot_of
from turnout.state.base import Chooser


class MemoryStateStore:
    """Keeps each deployment's `DeploymentState` in a dict, and hands out snapshots of them.

    A snapshot is built when its record changed since the last one, and a group's tuple of
    snapshots is kept until one of its records changes: a routing decision on a group nothing
    changed in costs one dict lookup.
    """

    __slots__ = ("_groups", "_member_of", "_states", "_views")

    def __init__(self) -> None:
        self._states: dict[str, DeploymentState] = {}
        self._views: dict[str, DeploymentSnapshot] = {}
        #: Snapshots by the id tuple asked for (a group's tuple of ids is stable between
        #: reloads), and which of those tuples each id is in, to forget them when it changes.
        self._groups: dict[tuple[str, ...], tuple[DeploymentSnapshot, ...]] = {}
        self._member_of: dict[str, set[tuple[str, ...]]] = {}

    def _state(self, deployment_id: str) -> DeploymentState:
        state = self._states.get(deployment_id)
        if state is None:
            state = self._states[deployment_id] = DeploymentState(deployment_id)
        return state

    def _view(self, deployment_id: str) -> DeploymentSnapshot:
        view = self._views.get(deployment_id)
        if view is None:
            view = self._views[deployment_id] = snapshot_of(self._state(deployment_id))
        return view

    def _changed(self, deployment_id: str) -> None:
        """The record changed: its snapshot and its groups' snapshots are stale."""
        self._views.pop(deployment_id, None)
        groups = self._member_of.pop(deployment_id, None)
        if groups:
            for ids in groups:
                self._groups.pop(ids, None)

    def _snapshot(self, ids: Sequence[str]) -> Sequence[DeploymentSnapshot]:
        if type(ids) is not tuple:
            return [self._view(deployment_id) for deployment_id in ids]
        cached = self._groups.get(ids)
        if cached is None:
            cached = self._groups[ids] = tuple([self._view(d) for d in ids])
            member_of = self._member_of
            for deployment_id in ids:
                groups = member_of.get(deployment_id)
                if groups is None:
                    member_of[deployment_id] = {ids}
                else:
                    groups.add(ids)
        return cached

    def load(self, state: DeploymentState) -> None:
        """Put a record in place of the deployment's (seeding state: a test's scenario, a warm
        start from a saved copy). The store owns it from here on."""
        self._states[state.deployment_id] = state
        self._changed(state.deployment_id)

    async def snapshot(self, ids: Sequence[str]) -> Sequence[DeploymentSnapshot]:
        return self._snapshot(ids)

    async def begin(
        self,
        ids: Sequence[str],
        choose: Chooser,
        policies: Mapping[str, HealthPolicy],
        now: float,
        wall: float,
    ) -> tuple[str | None, Admission, list[HealthEvent]]:
        chosen, expired = choose(self._snapshot(ids))
        events: list[HealthEvent] = []
        for deployment_id in expired:
            events += await self.lift_cooldown(deployment_id)
        if chosen is None:
            return None, Admission.REFUSED, events
        state = self._state(chosen)
        admission, transition = breaker_rules.admit(state.breaker, policies[chosen].breaker, now)
        if transition is not None:
            events.append(BreakerTransition(chosen, *transition))
        if admission is not Admission.REFUSED:
            state.roll(wall)
            state.in_flight += 1
            state.rpm_used += 1
        if transition is not None or admission is not Admission.REFUSED:
            self._changed(chosen)
        return chosen, admission, events

    async def finish(
        self,
        deployment_id: str,
        outcome: Outcome,
        policy: HealthPolicy,
        now: float,
        wall: float,
        holds: Sequence[Hold] | None = None,
    ) -> tuple[int, list[HealthEvent]]:
        state = self._states.get(deployment_id)
        if state is None:  # removed by a reload while the attempt ran
            return 0, []
        self._changed(deployment_id)
        if holds is None:
            if state.dropped is not None and outcome.error is not None:
                poison.explain(state, self._served)
            return 0, settle(state, outcome, policy, now, wall)
        if state.dropped is not None:
            poison.explain(state, self._served)
        token = poison.hold(state, outcome, policy, now, wall)
        if token > 0:
            return token, []
        events = settle(state, outcome, policy, now, wall)
        if token == poison.FAILING and holds:
            events += await self.resolve_holds(holds, True, now, wall)
        return token, events

    async def judge(
        self, holds: Sequence[Hold], needed: int, window: float, now: float
    ) -> tuple[str, ...]:
        states: list[DeploymentState] = []
        tokens: list[int] = []
        for held in holds:
            state = self._states.get(held.deployment_id)
            if state is not None:
                states.append(state)
                tokens.append(held.token)
        judged = poison.judge(states, tokens, needed, window, now)
        if judged:
            for state in states:
                self._changed(state.deployment_id)
        return judged

    async def resolve_holds(
        self, holds: Sequence[Hold], blame: bool, now: float, wall: float
    ) -> list[HealthEvent]:
        events: list[HealthEvent] = []
        for held in holds:
            state = self._states.get(held.deployment_id)
            if state is not None:
                self._changed(held.deployment_id)
                events += poison.resolve(state, held.token, blame, held.policy, now, wall)
        return events

    async def still_held(self, deployment_id: str, token: int) -> bool:
        state = self._states.get(deployment_id)
        return state is not None and poison.still_held(state, token)

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
        if entered is None:
            return []
        self._changed(deployment_id)
        return [entered]

    async def lift_cooldown(self, deployment_id: str) -> list[HealthEvent]:
        state = self._states.get(deployment_id)
        if state is None:
            return []
        self._changed(deployment_id)
        left = lift_cooldown(state)
        return [left] if left is not None else []

    async def retain(self, ids: Collection[str]) -> None:
        keep = set(ids)
        for deployment_id in [d for d in self._states if d not in keep]:
            del self._states[deployment_id]
        self._views.clear()
        self._groups.clear()
        self._member_of.clear()
