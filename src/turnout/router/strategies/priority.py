"""Priority: the lowest ``priority`` tier among the candidates, weighted random within it.

Optimises for an operator's stated preference: a committed-capacity or cheaper deployment first,
pay-as-you-go or another region only when the preferred ones cannot serve. The pre-filters have
already removed deployments that are cooling down, breaker-open or at a limit, so "the next tier
only when the whole tier is unavailable" needs no rule here: the lowest tier present among the
candidates is the best available one. Within the tier the pick is weighted random with the same
shares as ``weighted-random`` (weight, else rpm, else tpm, else equal).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from turnout.config.router import Deployment, RoutingConfig
from turnout.health.snapshot import DeploymentSnapshot
from turnout.router.strategies.base import weighted_index
from turnout.router.strategies.weighted import share
from turnout.wire import Request


class Priority:
    __slots__ = ("_rng",)

    def __init__(self, config: RoutingConfig, rng: random.Random) -> None:
        self._rng = rng

    def choose(
        self,
        group: str,
        candidates: Sequence[Deployment],
        states: Sequence[DeploymentSnapshot],
        request: Request,
        wall: float,
    ) -> int:
        if len(candidates) == 1:
            return 0
        best = candidates[0].priority
        for deployment in candidates:
            if deployment.priority < best:
                best = deployment.priority
        tier = [index for index, d in enumerate(candidates) if d.priority == best]
        if len(tier) == len(candidates):
            return weighted_index(share(candidates), self._rng)
        if len(tier) == 1:
            return tier[0]
        return tier[weighted_index(share([candidates[index] for index in tier]), self._rng)]
