"""One routing decision, pure: pre-filter a group, prefer what fits the time left, let the
strategy pick.

It reads immutable snapshots and does no I/O, so a state store can run it inside the one call
that also starts the chosen deployment's attempt (`turnout.state.base.StateStore.begin`).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from turnout.config.router import Deployment
from turnout.health.snapshot import DeploymentSnapshot
from turnout.observe.stats import RouterStats
from turnout.router.filters import Rejections, eligible
from turnout.router.runtime import ConfigBundle
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
    stats: RouterStats,
) -> Deployment | None:
    """The deployment of `group` to try (None: none may serve; `rejections` says why).

    `states` are the group's, in the table's order. With `time_left`, deployments predicted
    to answer within it are preferred when some are and some are not.
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
    )
    if not candidates:
        return None
    if time_left is not None and len(candidates) > 1:
        candidates, candidate_states = _fitting(candidates, candidate_states, time_left)
    if len(candidates) == 1:
        return candidates[0]
    stats.strategy_evaluations += 1
    index = bundle.strategy.choose(group, candidates, candidate_states, request, wall)
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
