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

Provider hints count only until they expire (``hint_expires``, wall-clock, the sooner of the
provider's reset times): after a reset, the old "3 left" would steer traffic away from a
deployment whose quota is full again. Expired hints fall back to our own counters.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from turnout.config.router import Deployment, RoutingConfig
from turnout.health.snapshot import DeploymentSnapshot
from turnout.router.strategies.base import random_among_best
from turnout.wire import Request


def _reported_fraction(left: int, limit: int | None) -> float:
    """Fraction of a provider-reported quota left (`limit` None or 0: unknown)."""
    if limit:
        return min(1.0, left / limit)
    return 1.0 if left > 0 else 0.0


def headroom(
    deployment: Deployment, state: DeploymentSnapshot, wall: float, prompt_tokens: int
) -> float:
    """The smaller of the request and token fractions left, once this request's prompt is spent."""
    rpm = deployment.rpm
    tpm = deployment.tpm
    if state.hint_expires > wall:
        remaining_requests = state.remaining_requests
        remaining_tokens = state.remaining_tokens
    else:
        remaining_requests = remaining_tokens = None
    used_requests = used_tokens = 0
    if (remaining_requests is None and rpm) or (remaining_tokens is None and tpm):
        used_requests, used_tokens = state.usage_this_minute(wall)

    if remaining_requests is not None:
        requests = _reported_fraction(remaining_requests, state.limit_requests or rpm)
    elif rpm:
        requests = 1.0 - used_requests / rpm
    else:
        requests = 1.0

    if remaining_tokens is not None:
        left = remaining_tokens - prompt_tokens
        tokens = _reported_fraction(left, state.limit_tokens or tpm)
    elif tpm:
        tokens = 1.0 - (used_tokens + prompt_tokens) / tpm
    else:
        tokens = 1.0

    return requests if requests < tokens else tokens


class RateLimitAware:
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
        prompt = request.prompt_tokens
        # Negated, so that the lowest score is the largest headroom.
        scores = [
            -headroom(deployment, state, wall, prompt)
            for deployment, state in zip(candidates, states, strict=True)
        ]
        return random_among_best(scores, self._rng)
