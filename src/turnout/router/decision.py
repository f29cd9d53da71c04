"""One routing decision, pure: pre-filter a group, prefer what fits the time left, let the
strategy pick.

It reads immutable snapshots and does no I/O, so a state store can run it inside the one call
that also starts the chosen deployment's attempt (`turnout.state.base.StateStore.begin`): a
`Choice` is that chooser, and afterwards what it decided.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from turnout.config.router import Deployment
from turnout.health.snapshot import DeploymentSnapshot
from turnout.router.attempt import Attempt
from turnout.router.filters import Rejections, eligible
from turnout.router.runtime import ConfigBundle
from turnout.router.strategies.round_robin import RoundRobin
from turnout.wire import Request


def decide(
    bundle: ConfigBundle,
    group: str,
    request: Request,
    states: Sequence[DeploymentSnapshot],
    exclude: Collection[str],
    now: float,
    wall: float,
    time_left: float | None,
    rejections: Rejections,
    turn: list[str] | None = None,
) -> Deployment | None:
    """The deployment of `group` to try (None: none may serve; `rejections` says why).

    `states` are the group's, in the table's order. With `time_left`, deployments predicted
    to answer within it are preferred when some are and some are not. `turn`: filled with the
    candidates' ids when the strategy takes turns among them (round robin), so that a shared
    store can give the turn fleet-wide.
    """
    table = bundle.table
    candidates, candidate_states = eligible(
        table.groups[group],
        states,
        request,
        table.config.breaker,
        now,
        wall,
        exclude,
        rejections,
        table.lacks,
    )
    if not candidates:
        return None
    if time_left is not None and len(candidates) > 1:
        candidates, candidate_states = _fitting(candidates, candidate_states, time_left)
    if len(candidates) == 1:
        return candidates[0]
    strategy = bundle.strategy
    if turn is not None and isinstance(strategy, RoundRobin):
        turn.extend(d.id for d in candidates)
    index = strategy.choose(group, candidates, candidate_states, request, wall)
    return candidates[index]


def can_finish(states: Sequence[DeploymentSnapshot], time_left: float) -> bool:
    """Whether some deployment is predicted to answer within `time_left` seconds."""
    return time_left > 0 and any(s.latency is None or s.latency <= time_left for s in states)


def _fitting(
    candidates: list[Deployment], states: list[DeploymentSnapshot], time_left: float
) -> tuple[list[Deployment], list[DeploymentSnapshot]]:
    """Candidates predicted to answer within `time_left`, when some are and some are not."""
    fits = [s.latency is None or s.latency <= time_left for s in states]
    if all(fits) or not any(fits):
        return candidates, states
    return (
        [d for d, ok in zip(candidates, fits, strict=True) if ok],
        [s for s, ok in zip(states, fits, strict=True) if ok],
    )


class Choice:
    """One routing decision: the chooser a store's `begin` calls, then what it decided.

    `deployment` is None when nothing could serve (`rejections` says why), or when, asked to
    `must_fit`, no deployment of the group is predicted to answer in the time left (`fits`).
    `attempt` is None also when the chosen deployment's breaker refused it.
    """

    __slots__ = (
        "attempt",
        "bundle",
        "chosen",
        "deployment",
        "exclude",
        "fits",
        "group",
        "must_fit",
        "now",
        "only",
        "rejections",
        "request",
        "time_left",
        "turn",
        "wall",
    )

    def __init__(
        self,
        bundle: ConfigBundle,
        group: str,
        request: Request,
        exclude: Collection[str],
        now: float,
        wall: float,
        time_left: float | None,
        must_fit: bool,
        only: Deployment | None,
    ) -> None:
        self.bundle = bundle
        self.group = group
        self.request = request
        self.exclude = exclude
        self.now = now
        self.wall = wall
        self.time_left = time_left
        self.must_fit = must_fit
        self.only = only
        self.rejections = Rejections()
        self.deployment: Deployment | None = None
        self.attempt: Attempt | None = None
        self.fits = True
        #: Whether it decided once already: a shared store may ask again on fresher records
        #: (its pick was refused meanwhile), and the rejections are the last decision's.
        self.chosen = False
        self.turn: list[str] = []

    def __call__(self, states: Sequence[DeploymentSnapshot]) -> tuple[str | None, Sequence[str]]:
        if self.only is not None:
            self.deployment = self.only
            return self.only.id, ()
        if self.must_fit and not can_finish(states, self.time_left or 0.0):
            self.fits = False
            return None, ()
        rejections = self.rejections
        if self.chosen:
            rejections = self.rejections = Rejections()
        self.chosen = True
        self.turn = []
        deployment = self.deployment = decide(
            self.bundle,
            self.group,
            self.request,
            states,
            self.exclude,
            self.now,
            self.wall,
            self.time_left,
            rejections,
            self.turn,
        )
        return (deployment.id if deployment is not None else None), rejections.expired

    def turn_falls_on(self, deployment_id: str) -> None:
        self.deployment = self.bundle.table.by_id[deployment_id]
