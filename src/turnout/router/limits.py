"""Attempt limits learned per deployment, and the time an attempt leaves for the next one.

A silent upstream (it accepts and never answers), a stream that stalls and a first token that
takes far longer than usual all look, from the gateway, like an answer that is merely slow. No
fixed limit tells them apart for every model: a reasoning model's first token may take a
minute, a small model's a few hundred milliseconds. So each deployment's limits are learned
from what it has been doing (`LearnedLimits`), for three kinds of wait:

- ``first-token``: from sending a streaming request to its first chunk;
- ``idle``: the longest gap between two chunks of one stream (one sample per stream, its
  longest gap, so that a window of samples spans many streams rather than the last one);
- ``request``: a whole (non-streamed) answer. Its duration grows with its length, which the
  gateway cannot see coming: the limit is the quantile of recent whole-answer durations, or,
  when the request sets ``max_tokens``, the quantile of seconds per output token times it,
  whichever is longer, so that a long answer the caller asked for is not cut as a stall.

Each limit is a high quantile of the deployment's recent successful samples times a factor,
clamped to a floor and a cap, and a conservative cold value until enough samples exist. Only
successes are samples. An attempt cut at its limit is censored (it would have taken *at least*
that long, or forever): counting it as a sample at the limit would let silent upstreams drag
the limit up to the cap, and leaving it out could let a limit stay low after a deployment
became slower for good. That is why a learned limit applies only while something else could
answer the request: an attempt with nowhere else to go waits up to the cap (or the configured
limit), and its success, however slow, is a sample. The limit follows a slower deployment by
evidence, never by guesswork, and a learned limit never fails a request patience would have
answered.

Samples live in this process (like the hedger's), keyed by deployment id, and survive reloads
while the settings do not change. Recording a sample is O(1) into a fixed ring; a limit is a
quantile read, re-sorted at most once per 16 new samples.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Final, NamedTuple

from turnout.config.router import Deployment, LearnedTimeouts, LimitBounds
from turnout.errors import AttemptRecord
from turnout.router.latency_window import LatencyWindow
from turnout.router.table import ModelTable
from turnout.wire import Request

FIRST_TOKEN: Final = "first-token"
IDLE: Final = "idle"
REQUEST: Final = "request"

#: Output tokens an answer needs before its seconds per token are a sample: below it, the
#: fixed cost of the call would dominate.
MIN_RATE_TOKENS: Final = 32
#: The next candidate's usual time is kept for it this many times over.
RESERVE_FACTOR: Final = 2.0
#: Never more than this share of the time left is kept for the next candidate.
MAX_RESERVE_SHARE: Final = 0.5
#: Never less than this many seconds (within that share): a candidate's usual time is measured
#: on warm connections, and the next one may need a new connection (TLS included) first.
MIN_RESERVE: Final = 1.0


class Limit(NamedTuple):
    """One attempt's limit of one kind: seconds, and where the value came from (a tuple: one
    is made for every attempt, and a tuple is the cheapest value to make)."""

    kind: str
    seconds: float
    #: ``learned``, ``cold`` (not enough samples yet), ``configured`` (the deployment's
    #: `Timeouts`), ``cap`` (nothing else could answer), ``request`` (the caller's override).
    source: str
    #: Samples the learned value stands on.
    samples: int = 0

    def describe(self) -> str:
        """For error messages and attempt records: which limit, its value, and its origin."""
        if self.source == "learned":
            origin = f"learned from {self.samples} recent answers of this deployment"
        elif self.source == "cold":
            origin = "the default until this deployment has answers to learn from"
        elif self.source == "cap":
            origin = "the cap, as nothing else could answer"
        elif self.source == "request":
            origin = "set by the request"
        else:
            origin = "configured for this deployment"
        return f"{self.kind} limit of {self.seconds:.3g}s, {origin}"


class _Samples:
    """One deployment's recent successful samples, one ring per kind."""

    __slots__ = ("first_token", "gaps", "rates", "whole")

    def __init__(self, size: int) -> None:
        self.first_token = LatencyWindow(size)
        self.gaps = LatencyWindow(size)
        self.whole = LatencyWindow(size)
        #: Seconds per output token of whole answers of at least `MIN_RATE_TOKENS` tokens.
        self.rates = LatencyWindow(size)


@dataclass(frozen=True, slots=True)
class LimitsView:
    """A deployment's current limits, as `/health` shows them (None: no limit)."""

    first_token: Limit | None
    idle: Limit | None
    request: Limit | None


class LearnedLimits:
    """Per-deployment samples and the limits drawn from them, for the router's lifetime."""

    __slots__ = ("_by_id", "config", "reserve_free_share")

    def __init__(self, config: LearnedTimeouts) -> None:
        self.config = config
        self._by_id: dict[str, _Samples] = {}
        #: A limit ending within this share of the time left is never cut by the reserve,
        #: which keeps at most the larger of these shares back (`reserve`).
        self.reserve_free_share = 1.0 - max(MAX_RESERVE_SHARE, config.reserve_fraction)

    def _of(self, deployment_id: str) -> _Samples:
        samples = self._by_id.get(deployment_id)
        if samples is None:
            samples = self._by_id[deployment_id] = _Samples(self.config.samples)
        return samples

    def retain(self, ids: Collection[str]) -> None:
        """Forget the samples of deployments no longer configured (after a reload)."""
        for gone in [i for i in self._by_id if i not in ids]:
            del self._by_id[gone]

    # ---- samples (successes only) ---------------------------------------------------------

    def observe_first_token(self, deployment_id: str, seconds: float) -> None:
        if self.config.enabled:
            self._of(deployment_id).first_token.add(seconds)

    def observe_stream(self, deployment_id: str, longest_gap: float) -> None:
        """A stream that ended well, and the longest wait between two of its chunks."""
        if self.config.enabled:
            self._of(deployment_id).gaps.add(longest_gap)

    def observe_whole(self, deployment_id: str, seconds: float, output_tokens: int) -> None:
        if not self.config.enabled:
            return
        samples = self._of(deployment_id)
        samples.whole.add(seconds)
        if output_tokens >= MIN_RATE_TOKENS:
            samples.rates.add(seconds / output_tokens)

    # ---- limits ---------------------------------------------------------------------------

    def learned(
        self, kind: str, deployment_id: str, max_tokens: int | None = None
    ) -> tuple[float, int]:
        """The learned limit of `kind` (clamped), and the samples behind it (0: the cold
        value)."""
        config = self.config
        bounds = _bounds(config, kind)
        samples = self._by_id.get(deployment_id)
        if samples is None:
            return bounds.cold, 0
        window = _window(samples, kind)
        count = len(window)
        if count < config.min_samples:
            return bounds.cold, 0
        base = window.quantile(config.quantile) or 0.0
        if kind == REQUEST and max_tokens is not None and len(samples.rates) >= config.min_samples:
            rate = samples.rates.quantile(config.quantile) or 0.0
            base = max(base, rate * max_tokens)
        return min(bounds.cap, max(bounds.floor, base * config.factor)), count

    def expected(self, deployment_id: str, stream: bool) -> float | None:
        """The deployment's usual longest time to answer (a stream: to its first chunk), or
        None until it has enough samples."""
        samples = self._by_id.get(deployment_id)
        if samples is None:
            return None
        window = samples.first_token if stream else samples.whole
        if len(window) < self.config.min_samples:
            return None
        return window.quantile(self.config.quantile)

    def limit(
        self,
        kind: str,
        deployment: Deployment,
        request: Request,
        escape: bool,
    ) -> Limit | None:
        """The limit of `kind` for one attempt on `deployment` (None: none).

        The request's own limit, when it sets one, replaces the learned one; the deployment's
        configured limit is an upper bound on both. `escape`: whether something else could
        answer when this attempt is cut; without it, the attempt waits up to the cap.
        """
        configured = _configured(kind, deployment)
        asked = _asked(kind, request)
        if asked is not None:
            if configured is not None and configured < asked:
                return Limit(kind, configured, "configured")
            return Limit(kind, asked, "request")
        config = self.config
        if not config.enabled:
            return None if configured is None else Limit(kind, configured, "configured")
        if not escape:
            cap = _bounds(config, kind).cap
            if configured is not None and configured <= cap:
                return Limit(kind, configured, "configured")
            return Limit(kind, cap, "cap")
        max_tokens = request.max_completion_tokens if kind == REQUEST else None
        seconds, count = self.learned(kind, deployment.id, max_tokens)
        if configured is not None and configured < seconds:
            return Limit(kind, configured, "configured")
        return Limit(kind, seconds, "learned" if count else "cold", count)

    def view(self, deployment: Deployment) -> LimitsView:
        """The limits an attempt on `deployment` gets now, when something else could answer
        and the request sets none of its own."""
        request = Request(model=deployment.model_name, body={})
        return LimitsView(
            self.limit(FIRST_TOKEN, deployment, request, True),
            self.limit(IDLE, deployment, request, True),
            self.limit(REQUEST, deployment, request, True),
        )

    # ---- the time kept for the next candidate ---------------------------------------------

    def reserve(self, next_ids: Sequence[str], stream: bool, time_left: float) -> float:
        """Seconds of `time_left` an attempt leaves for the next candidate (one of
        `next_ids`): twice its usual time when known (the quickest of them; at least a
        second), else a fixed share; never more than half of what is left."""
        expected: float | None = None
        for deployment_id in next_ids:
            usual = self.expected(deployment_id, stream)
            if usual is not None and (expected is None or usual < expected):
                expected = usual
        if expected is None:
            return time_left * self.config.reserve_fraction
        return min(max(expected * RESERVE_FACTOR, MIN_RESERVE), time_left * MAX_RESERVE_SHARE)


def can_escape(
    table: ModelTable,
    group: str,
    deployment_id: str,
    attempts: Sequence[AttemptRecord],
    visited: set[str],
    hops: int,
) -> bool:
    """Whether `next_candidates` would find any, answered for every attempt without building
    them: the first attempt in a group of several needs no more than its size."""
    if len(table.ids[group]) > 1 and all(a.error is None for a in attempts):
        return True
    return bool(next_candidates(table, group, deployment_id, attempts, visited, hops))


def next_candidates(
    table: ModelTable,
    group: str,
    deployment_id: str,
    attempts: Sequence[AttemptRecord],
    visited: set[str],
    hops: int,
) -> Sequence[str]:
    """Deployments that could take the request if this attempt were cut: the others of its
    group not yet failed for it, else those of the first fallback group not yet visited (a
    timeout consults the general list). Health is not read: this costs no store call, and a
    candidate that turns out to be cooling down only means a learned limit cut a slow answer
    early, which the cap guards against when nothing at all is left."""
    ids = table.ids[group]
    if len(ids) > 1:
        failed = {a.deployment_id for a in attempts if a.error is not None}
        others = [i for i in ids if i != deployment_id and i not in failed]
        if others:
            return others
    config = table.config.fallbacks
    if hops >= config.max_depth:
        return ()
    targets = config.general.get(group)
    if targets is None:
        targets = config.general.get("*")
    for target in targets or ():
        name = table.aliases.get(target, target)
        if name not in visited and name != group and name in table.ids:
            return table.ids[name]
    return ()


def _bounds(config: LearnedTimeouts, kind: str) -> LimitBounds:
    if kind == FIRST_TOKEN:
        return config.first_token
    if kind == IDLE:
        return config.idle
    return config.request


def _window(samples: _Samples, kind: str) -> LatencyWindow:
    if kind == FIRST_TOKEN:
        return samples.first_token
    if kind == IDLE:
        return samples.gaps
    return samples.whole


def _configured(kind: str, deployment: Deployment) -> float | None:
    timeouts = deployment.timeouts
    if kind == FIRST_TOKEN:
        return timeouts.first_token or timeouts.request
    if kind == IDLE:
        return timeouts.idle
    return timeouts.request


def _asked(kind: str, request: Request) -> float | None:
    limits = request.limits
    if limits is None:
        return None
    if kind == FIRST_TOKEN:
        # As a deployment's `request` limit does, the request's bounds a stream's first chunk
        # unless it sets one for the first chunk itself.
        return limits.first_token if limits.first_token is not None else limits.request
    if kind == IDLE:
        return limits.idle
    return limits.request
