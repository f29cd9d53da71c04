"""Round robin: each candidate in turn, per model group.

Optimises for evenness when deployments are interchangeable and nothing is known about them: over
any stretch of requests, no candidate serves more than one request more than another. One counter
per group is enough because ``choose`` never awaits, so under asyncio no two calls interleave.

A group's counter starts at a random offset: replicas of a gateway started together would
otherwise all send their first request to the same deployment.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from turnout.config.router import Deployment, RoutingConfig
from turnout.health.snapshot import DeploymentSnapshot
from turnout.wire import Request


class RoundRobin:
    __slots__ = ("_next", "_rng")

    def __init__(self, config: RoutingConfig, rng: random.Random) -> None:
        self._rng = rng
        #: The next position to serve, per group (kept below the group's candidate count).
        self._next: dict[str, int] = {}

    def choose(
        self,
        group: str,
        candidates: Sequence[Deployment],
        states: Sequence[DeploymentSnapshot],
        request: Request,
        wall: float,
    ) -> int:
        count = len(candidates)
        position = self._next.get(group)
        if position is None:
            position = self._rng.randrange(count)
        index = position % count
        self._next[group] = index + 1
        return index
