"""Rate-limit aware: the candidate with the most quota left, by what the provider last said.

Optimises for avoiding 429s. A provider's rate-limit headers (remaining and limit, for requests
and tokens) are the truth about its quota, which other clients of the same key also spend; our
own per-minute counters against the configured ``rpm``/``tpm`` are the fallback when a provider
said nothing. Headroom is the smaller of two fractions left, so a deployment is as roomy as its
tighter limit:

- requests: ``remaining / limit`` from the provider (its limit, else our ``rpm``; with neither,
  1.0 while anything remains, else 0.0); else ``1 - used_this_minute / rpm``; else 1.0;
- tokens: the same with ``tpm``, counting this request's prompt as about to be used.

Fractions are capped at 1.0 (a provider limit above our configured one is no extra reason to
prefer a deployment) but not floored at 0.0: a request that would overshoot one deployment's
quota by less than another's still ranks that deployment higher. Largest headroom wins; ties at
random.

Provider hints are read as valid whenever present: expired hints must be cleared before a
strategy runs (strategies receive the wall clock, and hint expiry is kept in monotonic time).
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from turnout.config import Deployment, RoutingConfig
from turnout.router.strategies.base import random_among_best
from turnout.state.record import DeploymentState
from turnout.wire import Request


def _reported_fraction(left: int, limit: int | None) -> float:
    """Fraction of a provider-reported quota left (`limit` None or 0: unknown)."""
    if limit:
        return min(1.0, left / limit)
    return 1.0 if left > 0 else 0.0


def request_headroom(deployment: Deployment, state: DeploymentState, wall: float) -> float:
    """Fraction of the request quota left."""
    if state.remaining_requests is not None:
        return _reported_fraction(state.remaining_requests, state.limit_requests or deployment.rpm)
    if deployment.rpm:
        return 1.0 - state.usage_this_minute(wall)[0] / deployment.rpm
    return 1.0


def token_headroom(
    deployment: Deployment, state: DeploymentState, wall: float, prompt_tokens: int
) -> float:
    """Fraction of the token quota left once this request's prompt is spent."""
    if state.remaining_tokens is not None:
        left = state.remaining_tokens - prompt_tokens
        return _reported_fraction(left, state.limit_tokens or deployment.tpm)
    if deployment.tpm:
        return 1.0 - (state.usage_this_minute(wall)[1] + prompt_tokens) / deployment.tpm
    return 1.0


class RateLimitAware:
    __slots__ = ("_rng",)

    def __init__(self, config: RoutingConfig, rng: random.Random) -> None:
        self._rng = rng

    def choose(
        self,
        group: str,
        candidates: Sequence[Deployment],
        states: Sequence[DeploymentState],
        request: Request,
        wall: float,
    ) -> int:
        if len(candidates) == 1:
            return 0
        prompt = request.prompt_tokens
        # Negated, so that the lowest score is the largest headroom.
        scores = [
            -min(
                request_headroom(deployment, state, wall),
                token_headroom(deployment, state, wall, prompt),
            )
            for deployment, state in zip(candidates, states, strict=True)
        ]
        return random_among_best(scores, self._rng)
