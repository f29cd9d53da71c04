"""Lowest cost: the candidate that would charge least for this request.

Optimises spend when deployments of a group differ in price (a provider's list price against a
committed-use one, a region that costs more). The estimate is
``input_cost_per_token * prompt_tokens + output_cost_per_token * completion_tokens``, where the
prompt size is the request's estimate and the completion size is its ``max_tokens`` (or
``max_completion_tokens``), else ``routing.default_completion_tokens``. Using the request's own
sizes matters: a deployment cheap on input but dear on output wins long prompts and loses long
answers.

A deployment with no price at all ranks after every priced one: an unknown price is no reason to
prefer it. Equal costs (including all unpriced) are broken by lower latency, unknown latency
counting as the mean of the tied ones' known latencies, then at random. (LiteLLM's
``cost-based-routing``.)
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from turnout.config.router import Deployment, RoutingConfig
from turnout.health.snapshot import DeploymentSnapshot
from turnout.pricing.price import price
from turnout.router.strategies.base import random_among_best
from turnout.router.strategies.latency import latency_scores
from turnout.wire import Request


class LowestCost:
    __slots__ = ("_default_completion", "_rng")

    def __init__(self, config: RoutingConfig, rng: random.Random) -> None:
        self._rng = rng
        self._default_completion = config.default_completion_tokens

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
        prompt = request.prompt_tokens
        completion = request.max_completion_tokens or self._default_completion
        best = math.inf
        tied: list[int] = []
        for index, deployment in enumerate(candidates):
            cost = price(deployment, prompt, completion)
            score = math.inf if cost is None else cost
            if score < best:
                best = score
                tied = [index]
            elif score == best:
                tied.append(index)
        if len(tied) == 1:
            return tied[0]
        latencies = latency_scores([states[index] for index in tied], stream=False)
        return tied[random_among_best(latencies, self._rng)]
