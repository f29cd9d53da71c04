"""Usage based: the candidate that has used the smallest share of its token budget this minute.

Optimises for staying under providers' tokens-per-minute limits: load goes where the most of the
minute's budget is left, so no deployment hits its limit (and a 429 with a cooldown) while
another idles. The rule, per candidate, on tokens used in the current wall-clock minute:

- with a ``tpm`` limit: ``tokens_used / tpm``;
- without one, when some candidate has a limit: ``tokens_used / largest_tpm_among_candidates``
  (an unlimited deployment is treated as at least as roomy as the roomiest limited one, but its
  own use still counts, so it does not take every request);
- when no candidate has a limit: raw ``tokens_used`` (the least used is the least loaded).

Lowest score wins; ties (every candidate unused, at the start of a minute) are broken at random.
(LiteLLM's ``usage-based-routing`` and ``usage-based-routing-v2``.)
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from turnout.config.router import Deployment, RoutingConfig
from turnout.health.snapshot import DeploymentSnapshot
from turnout.router.strategies.base import random_among_best
from turnout.wire import Request


class UsageBased:
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
        largest = 0
        for deployment in candidates:
            if deployment.tpm is not None and deployment.tpm > largest:
                largest = deployment.tpm
        scores: list[float] = []
        for deployment, state in zip(candidates, states, strict=True):
            used = state.usage_this_minute(wall)[1]
            limit = deployment.tpm or largest
            scores.append(used / limit if limit else float(used))
        return random_among_best(scores, self._rng)
