"""The strategy protocol: pick one deployment among candidates that passed the pre-filters.

A strategy sees read-only data (the candidates' configs and runtime states, the request) and an
injected random generator; it never does I/O and never logs. It returns an index into the
candidates, and runs in O(n) of them. Candidates are never empty when a strategy is called.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Protocol

from turnout.config.router import Deployment, RoutingConfig
from turnout.health.snapshot import DeploymentSnapshot
from turnout.wire import Request


class Strategy(Protocol):
    def choose(
        self,
        group: str,
        candidates: Sequence[Deployment],
        states: Sequence[DeploymentSnapshot],
        request: Request,
        wall: float,
    ) -> int:
        """Index of the chosen candidate. `states[i]` belongs to `candidates[i]`."""
        ...


#: Builds a strategy from the routing config and the router's random generator.
StrategyFactory = Callable[[RoutingConfig, random.Random], Strategy]


def weighted_index(weights: Sequence[float], rng: random.Random) -> int:
    """Index drawn with probability proportional to its weight (uniform when all are zero)."""
    total = 0.0
    for weight in weights:
        total += weight
    if total <= 0.0:
        return rng.randrange(len(weights))
    point = rng.random() * total
    for index, weight in enumerate(weights):
        point -= weight
        if point < 0.0 and weight > 0.0:
            return index
    # Floating-point leftovers land on the last index with weight.
    for index in range(len(weights) - 1, -1, -1):
        if weights[index] > 0.0:
            return index
    return len(weights) - 1


def random_among_best(scores: Sequence[float], rng: random.Random) -> int:
    """Index of the lowest score; ties broken uniformly at random with a single draw."""
    best = scores[0]
    ties = [0]
    for index in range(1, len(scores)):
        score = scores[index]
        if score < best:
            best = score
            ties = [index]
        elif score == best:
            ties.append(index)
    if len(ties) == 1:
        return ties[0]
    return ties[rng.randrange(len(ties))]
