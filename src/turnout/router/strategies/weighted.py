"""Weighted random: the cheapest strategy and the default.

Each candidate's chance is its ``weight``; when the group sets no weights, its ``rpm``; else its
``tpm``; else all are equal. (LiteLLM's ``simple-shuffle``.)
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from turnout.config.router import Deployment, RoutingConfig
from turnout.health.snapshot import DeploymentSnapshot
from turnout.router.strategies.base import weighted_index
from turnout.wire import Request


def share(candidates: Sequence[Deployment]) -> list[float]:
    """Each candidate's relative share: weight, else rpm, else tpm, else equal."""
    if any(d.weight is not None for d in candidates):
        return [d.weight or 0.0 for d in candidates]
    if any(d.rpm is not None for d in candidates):
        return [float(d.rpm or 0) for d in candidates]
    if any(d.tpm is not None for d in candidates):
        return [float(d.tpm or 0) for d in candidates]
    return [1.0] * len(candidates)


class WeightedRandom:
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
        return weighted_index(share(candidates), self._rng)
