"""Lowest latency: the candidate that has answered fastest lately.

Optimises for the caller's wait. A streaming caller waits for the first token, so a streaming
request is ranked by time to first token; any other request by whole-request latency (both are
EWMAs kept by the health layer). One metric is used for all candidates of a decision: when the
request streams and at least one candidate has a time to first token, every candidate is ranked
by it, because comparing one deployment's first-token time with another's whole-request time
would always favour deployments that happen to have served streams before.

A candidate with no data yet is given the mean of those with data: neither favoured nor starved,
so it gets traffic and thereby data. With no data at all, the pick is uniform.

With ``latency_buffer`` > 0, the pick is uniform among candidates within that fraction of the
best (0.1: up to 10% slower). This spreads load over nearly-as-fast deployments instead of
piling onto the single fastest, whose average then lags behind its real load. (LiteLLM's
``latency-based-routing``.)
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from turnout.config.router import Deployment, RoutingConfig
from turnout.health.snapshot import DeploymentSnapshot
from turnout.router.strategies.base import random_among_best
from turnout.wire import Request

#: Marks a missing average while scores are built (averages of durations are never negative).
_UNKNOWN = -1.0


def latency_scores(states: Sequence[DeploymentSnapshot], stream: bool) -> list[float]:
    """Each candidate's expected latency in seconds; unknown ones get the mean of known ones.

    Ranked by time to first token when `stream` and some candidate has one, else by whole-request
    latency. All scores are 0.0 when no candidate has data.
    """
    use_ttft = False
    if stream:
        for state in states:
            if state.ttft is not None:
                use_ttft = True
                break
    scores: list[float] = []
    total = 0.0
    known = 0
    for state in states:
        value = state.ttft if use_ttft else state.latency
        if value is None:
            scores.append(_UNKNOWN)
        else:
            scores.append(value)
            total += value
            known += 1
    if known < len(scores):
        fill = total / known if known else 0.0
        for index, score in enumerate(scores):
            if score == _UNKNOWN:
                scores[index] = fill
    return scores


def within_buffer(scores: Sequence[float], buffer: float, rng: random.Random) -> int:
    """Uniformly random index among scores at most `buffer` (a fraction) above the lowest."""
    limit = min(scores) * (1.0 + buffer)
    eligible = [index for index, score in enumerate(scores) if score <= limit]
    return eligible[rng.randrange(len(eligible))]


class LowestLatency:
    __slots__ = ("_buffer", "_rng")

    def __init__(self, config: RoutingConfig, rng: random.Random) -> None:
        self._rng = rng
        self._buffer = config.latency_buffer

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
        scores = latency_scores(states, request.stream)
        if self._buffer > 0.0:
            return within_buffer(scores, self._buffer, self._rng)
        return random_among_best(scores, self._rng)
