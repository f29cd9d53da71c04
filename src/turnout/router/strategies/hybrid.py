"""Hybrid: the best balance of cost, latency and reliability, by configured weights.

Optimises for operators who care about more than one thing: a slightly dearer deployment that
answers twice as fast and never fails may be worth it. Each candidate gets

    value = w_cost * (1 - norm_cost) + w_latency * (1 - norm_latency) + w_rel * reliability

with the weights of ``routing.hybrid`` scaled to sum to 1, where

- cost is the estimate of ``lowest-cost`` (an unpriced deployment counts as the dearest priced
  one: an unknown price earns no advantage; with no prices at all, cost is equal for all);
- latency is the score of ``lowest-latency`` (time to first token for streams, unknown = mean);
- both are min-max normalised across the candidates, so they are comparable whatever their
  units; a dimension on which all candidates are equal adds the same to every value;
- reliability is the recent success share, already in [0, 1] and 1.0 with no data.

Highest value wins; ties at random.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from turnout.config.router import Deployment, RoutingConfig
from turnout.health.snapshot import DeploymentSnapshot, window_position
from turnout.pricing.price import price
from turnout.router.strategies.base import random_among_best
from turnout.router.strategies.latency import latency_scores
from turnout.wire import Request


def _normalised_costs(
    candidates: Sequence[Deployment], prompt_tokens: int, completion_tokens: int
) -> list[float]:
    """Each candidate's cost, min-max scaled to [0, 1]; unpriced = the dearest priced."""
    costs: list[float | None] = []
    dearest: float | None = None
    cheapest = 0.0
    for deployment in candidates:
        cost = price(deployment, prompt_tokens, completion_tokens)
        costs.append(cost)
        if cost is not None:
            if dearest is None:
                dearest = cheapest = cost
            elif cost > dearest:
                dearest = cost
            elif cost < cheapest:
                cheapest = cost
    if dearest is None or dearest == cheapest:
        return [0.0] * len(costs)
    span = dearest - cheapest
    return [1.0 if cost is None else (cost - cheapest) / span for cost in costs]


def _normalise(values: list[float]) -> list[float]:
    """Min-max scaled to [0, 1]; all 0.0 when the values are equal."""
    low = min(values)
    span = max(values) - low
    if span <= 0.0:
        return [0.0] * len(values)
    scale = 1.0 / span
    return [(value - low) * scale for value in values]


class Hybrid:
    __slots__ = ("_default_completion", "_rng", "_w_cost", "_w_latency", "_w_reliability")

    def __init__(self, config: RoutingConfig, rng: random.Random) -> None:
        self._rng = rng
        self._default_completion = config.default_completion_tokens
        weights = config.hybrid
        total = weights.cost + weights.latency + weights.reliability
        self._w_cost = weights.cost / total
        self._w_latency = weights.latency / total
        self._w_reliability = weights.reliability / total

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
        completion = request.max_completion_tokens or self._default_completion
        costs = _normalised_costs(candidates, request.prompt_tokens, completion)
        latencies = _normalise(latency_scores(states, request.stream))
        w_cost, w_latency, w_reliability = self._w_cost, self._w_latency, self._w_reliability
        # Negated, so that the lowest score is the highest value. Reliability costs most to
        # compute, so it is skipped when it carries no weight.
        if w_reliability > 0.0:
            minute, carry = window_position(wall)
            scores = [
                -(
                    w_cost * (1.0 - cost)
                    + w_latency * (1.0 - latency)
                    + w_reliability * state.reliability_at(minute, carry)
                )
                for cost, latency, state in zip(costs, latencies, states, strict=True)
            ]
        else:
            scores = [
                -(w_cost * (1.0 - cost) + w_latency * (1.0 - latency))
                for cost, latency in zip(costs, latencies, strict=True)
            ]
        return random_among_best(scores, self._rng)
