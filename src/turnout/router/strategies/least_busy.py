"""Least busy: the candidate with the fewest requests in flight.

Optimises for queueing delay when deployments differ in speed or load that the router cannot see
ahead of time: a slow deployment holds its requests longer, so it accumulates in-flight requests
and is picked less. Ties (common when traffic is light) are broken uniformly at random, so idle
deployments share the load instead of the first one taking it all. (LiteLLM's ``least-busy``.)
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from turnout.config.router import Deployment, RoutingConfig
from turnout.health.snapshot import DeploymentSnapshot
from turnout.router.strategies.base import random_among_best
from turnout.wire import Request


class LeastBusy:
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
        return random_among_best([state.in_flight for state in states], self._rng)
