"""The in-memory state store: one process, no I/O, every operation O(1) (a verdict's, O(the
few deployments it was given on); a routing decision's, O(the group))."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from turnout.health import ejection, poison
from turnout.health.ejection import Admission
from turnout.health.events import HealthEvent
from turnout.health.poison import Hold
from turnout.health.record import CooldownReason, DeploymentState
from turnout.health.rules import HealthPolicy, Outcome, cool_down, lift_cooldown, settle
from turnout.health.snapshot import DeploymentSnapshot, snapshot_of
from turnout.state.base import Chooser


class _Group:
    """The snapshots of one tuple of ids, and which of them changed since they were taken."""

    __slots__ = ("ids", "stale", "views")

    def __init__(self, ids: tuple[str, ...], views: tuple[DeploymentSnapshot, ...]) -> None:
        self.ids = ids
        self.views = views
        #: Positions whose record changed: their snapshots are taken again on the next read.
        self.stale: list[int] = []


class MemoryStateStore:
    """Keeps each deployment's `DeploymentState` in a dict, and hands out snapshots of them.

    A snapshot is taken when its record changed since the last one, and a group's tuple of
    snapshots is kept and patched where its records changed: a routing decision costs one
    dict lookup, and one snapshot per record changed since the last decision.
    """

    __slots__ = ("_groups", "_member_of", "_states", "_views")

    def __init__(self) -> None:
        self._states: dict[str, DeploymentState] = {}
        self._views: dict[str, DeploymentSnapshot] = {}
        #: Snapshots by the id tuple asked for (a group's tuple of ids is stable between
        #: reloads), and where each id sits in those tuples, to patch them when it changes.
        self._groups: dict[tuple[str, ...], _Group] = {}
        self._member_of: dict[str, list[tuple[_Group, int]]] = {}

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
        """The record changed: its snapshot, and its place in its groups' snapshots, are stale."""
        if self._views.pop(deployment_id, None) is not None:
            for group, position in self._member_of.get(deployment_id, ()):
                group.stale.append(position)

    def _snapshot(self, ids: Sequence[str]) -> Sequence[DeploymentSnapshot]:
        if type(ids) is not tuple:
            return [self._view(deployment_id) for deployment_id in ids]
        group = self._groups.get(ids)
        if group is None:
            group = self._groups[ids] = _Group(ids, tuple([self._view(d) for d in ids]))
            member_of = self._member_of
            for position, deployment_id in enumerate(ids):
                member_of.setdefault(deployment_id, []).append((group, position))
        elif group.stale:
            views = list(group.views)
            for position in group.stale:
                views[position] = self._view(ids[position])
            group.stale.clear()
            group.views = tuple(views)
        return group.views

    def load(self, state: DeploymentState) -> None:
        """Put a record in place of the deployment's (seeding state: a test's scenario, a warm
        start from a saved copy). The store owns it from here on."""
        self._states[state.deployment_id] = state
        self._changed(state.deployment_id)

    async def snapshot(self, ids: Sequence[str]) -> Sequence[DeploymentSnapshot]:
        group = self._groups.get(ids) if type(ids) is tuple else None
        if group is not None and not group.stale:
            return group.views  # the common case, without a call
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
            events += await self.expire(deployment_id, now)
        if chosen is None:
            return None, Admission.REFUSED, events
        state = self._state(chosen)
        admission, moved = ejection.admit(state, policies[chosen], now)
        if moved:
            events += moved
        if admission is not Admission.REFUSED:
            state.roll(wall)
            state.in_flight += 1
            state.rpm_used += 1
        if moved or admission is not Admission.REFUSED:
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
        events = cool_down(self._state(deployment_id), reason, policy, now, seconds)
        if events:
            self._changed(deployment_id)
        return events

    async def lift_cooldown(self, deployment_id: str) -> list[HealthEvent]:
        state = self._states.get(deployment_id)
        if state is None:
            return []
        self._changed(deployment_id)
        return lift_cooldown(state)

    async def expire(self, deployment_id: str, now: float) -> list[HealthEvent]:
        state = self._states.get(deployment_id)
        events: list[HealthEvent] = []
        if state is not None:
            ejection.expire(state, now, events)
            if events:
                self._changed(deployment_id)
        return events

    async def probe_answered(
        self, deployment_id: str, policy: HealthPolicy, now: float
    ) -> list[HealthEvent]:
        state = self._states.get(deployment_id)
        events: list[HealthEvent] = []
        if state is not None:
            ejection.on_success(state, policy, True, now, events)
            self._changed(deployment_id)
        return events

    def status(self) -> dict[str, Any]:
        return {"backend": "memory", "shared": False}

    async def aclose(self) -> None:
        """Nothing to release: the records are this process's memory."""

    async def retain(self, ids: Collection[str]) -> None:
        keep = set(ids)
        for deployment_id in [d for d in self._states if d not in keep]:
            del self._states[deployment_id]
        self._views.clear()
        self._groups.clear()
        self._member_of.clear()
