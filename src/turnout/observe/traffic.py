"""Recent traffic per deployment, kept for the status page: rates, errors, latency, failovers.

An observer on the bus. `/metrics` gives a scraper counters since start; an operator looking at
the gateway now wants the last minutes: how many requests each deployment takes, how many fail,
how slow it is, which requests needed more than one attempt and why. So each deployment keeps a
ring of time buckets (`BUCKET_SECONDS` wide, `BUCKETS` of them: ten minutes), and each bucket
counts attempts, failures and successes and holds a latency and a time-to-first-token histogram
of fixed logarithmic bins (`bin_of`). Percentiles of any window are read from the summed bins,
so they merge exactly across buckets and across worker processes (`turnout.observe.traffic_view`),
at the price of a bin's width (about ±9%, `BIN_GROWTH`).

Memory is bounded whatever the traffic: a ring per deployment (a bucket is reused once it is ten
minutes old), histograms that hold only their non-empty bins (at most `BINS`), the last
`FAILOVERS` multi-attempt requests, and at most `MAX_PENDING` requests in flight whose attempts
are being collected (beyond that, a request's chain is not recorded; its counts still are).

On the hot path an event costs a clock read, a few dictionary lookups and additions, and for a
success a logarithm: no allocation but a bucket's when its ten seconds begin. Buckets are keyed
by wall-clock time, so that the workers of one gateway bucket alike and their rings add up.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

import msgspec

from turnout.errors import FailureKind
from turnout.observe.events import (
    AttemptFinished,
    Event,
    FallbackTaken,
    HedgeFired,
    HttpRequestFinished,
    RequestFinished,
    RequestStarted,
    StreamFailover,
)

#: Width of one time bucket, and how many a ring keeps: ten minutes of history.
BUCKET_SECONDS = 10
BUCKETS = 60
#: Histogram bins: bin ``i`` holds values in ``[LOWEST * BIN_GROWTH**i, ... * BIN_GROWTH)``.
LOWEST = 0.0005
BIN_GROWTH = 1.2
BINS = 80
#: The last multi-attempt requests kept, and the requests whose attempts are collected at once.
FAILOVERS = 20
MAX_PENDING = 10_000
#: Attempts kept in one recorded chain (a request that tried more shows its first ones).
MAX_CHAIN = 12

_LOG_GROWTH = math.log(BIN_GROWTH)
#: Failures that say nothing about the deployment: the caller left.
_NOT_A_VERDICT = frozenset({FailureKind.CANCELLED})


def bin_of(seconds: float) -> int:
    """The histogram bin of a duration (the lowest and highest bins take what lies beyond)."""
    if seconds <= LOWEST:
        return 0
    return min(BINS - 1, int(math.log(seconds / LOWEST) / _LOG_GROWTH))


def bin_value(index: int) -> float:
    """A bin's representative value: its geometric middle, in seconds."""
    value: float = LOWEST * BIN_GROWTH ** (index + 0.5)
    return value


class Bucket(msgspec.Struct):
    """One deployment's attempts in one time bucket (``slot``: wall seconds // bucket width)."""

    slot: int
    attempts: int = 0
    #: Failed attempts, the caller's cancellations left out.
    errors: int = 0
    served: int = 0
    latency: dict[int, int] = msgspec.field(default_factory=dict)
    ttft: dict[int, int] = msgspec.field(default_factory=dict)


class GatewayBucket(msgspec.Struct):
    """The gateway's requests in one time bucket: routed requests, their fallbacks, hedges and
    stream failovers, and the HTTP answers with their status and latency."""

    slot: int
    requests: int = 0
    fallbacks: int = 0
    hedges: int = 0
    failovers: int = 0
    answers: int = 0
    #: Answers that failed on the gateway's or providers' side: 5xx and 429.
    failed: int = 0
    latency: dict[int, int] = msgspec.field(default_factory=dict)


class Totals(msgspec.Struct):
    """Counts since the process started."""

    attempts: int = 0
    errors: int = 0
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class LastError(msgspec.Struct, frozen=True):
    kind: str
    status: int | None
    #: Wall-clock time (Unix seconds).
    at: float


class DeploymentTraffic(msgspec.Struct):
    """One deployment's ring of buckets, totals, last error and last success."""

    id: str
    group: str
    buckets: list[Bucket] = msgspec.field(default_factory=list)
    totals: Totals = msgspec.field(default_factory=Totals)
    last_error: LastError | None = None
    last_success: float | None = None


class Step(msgspec.Struct, frozen=True):
    """One attempt of a recorded chain."""

    #: The deployment's readable name.
    deployment: str
    #: Why it started: primary, retry, fallback, hedge or failover.
    reason: str
    #: The failure kind, or None when this attempt served the request.
    error: str | None
    status: int | None
    duration: float


class Failover(msgspec.Struct, frozen=True):
    """A request that took more than one attempt (a retry, a fallback, a hedge or a stream
    failover), with its attempts in the order they ended."""

    at: float
    request_id: str
    model: str
    steps: list[Step]
    #: The deployment that served it, or None when it failed.
    served_by: str | None
    fallback: bool
    hedged: bool
    stream_failover: bool
    #: Seconds from its first attempt's start to its last attempt's end.
    latency: float


class TrafficExport(msgspec.Struct):
    """Everything one process knows of recent traffic: what a worker publishes, and what
    `turnout.observe.traffic_view` merges and reads windows from."""

    at: float
    started: float
    deployments: list[DeploymentTraffic]
    gateway: list[GatewayBucket]
    failovers: list[Failover]


class _Pending:
    """A request in flight whose attempts are being collected."""

    __slots__ = ("attempts", "fallback", "hedged", "stream_failover")

    def __init__(self) -> None:
        self.attempts: list[AttemptFinished] = []
        self.fallback = self.hedged = self.stream_failover = False


class TrafficObserver:
    """Keeps the recent traffic of every deployment it sees; see the module docstring."""

    def __init__(self, wall: Callable[[], float] = time.time) -> None:
        self._wall = wall
        self.started = wall()
        self._deployments: dict[str, DeploymentTraffic] = {}
        self._rings: dict[str, list[Bucket | None]] = {}
        self._gateway: list[GatewayBucket | None] = [None] * BUCKETS
        self._pending: dict[str, _Pending] = {}
        self._failovers: deque[Failover] = deque(maxlen=FAILOVERS)
        self._handlers: dict[type, Callable[[Event], None]] = {
            AttemptFinished: self._attempt,  # type: ignore[dict-item]
            RequestStarted: self._request,  # type: ignore[dict-item]
            RequestFinished: self._finished,  # type: ignore[dict-item]
            FallbackTaken: self._fallback,  # type: ignore[dict-item]
            HedgeFired: self._hedge,  # type: ignore[dict-item]
            StreamFailover: self._stream_failover,  # type: ignore[dict-item]
            HttpRequestFinished: self._answer,  # type: ignore[dict-item]
        }

    def on_event(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    # ---- buckets ---------------------------------------------------------------------------

    def _bucket(
        self, deployment_id: str, group: str, slot: int
    ) -> tuple[DeploymentTraffic, Bucket]:
        traffic = self._deployments.get(deployment_id)
        if traffic is None:
            traffic = self._deployments[deployment_id] = DeploymentTraffic(deployment_id, group)
            self._rings[deployment_id] = [None] * BUCKETS
        ring = self._rings[deployment_id]
        index = slot % BUCKETS
        bucket = ring[index]
        if bucket is None or bucket.slot != slot:
            bucket = ring[index] = Bucket(slot)
        return traffic, bucket

    def _gateway_bucket(self) -> GatewayBucket:
        slot = int(self._wall() // BUCKET_SECONDS)
        index = slot % BUCKETS
        bucket = self._gateway[index]
        if bucket is None or bucket.slot != slot:
            bucket = self._gateway[index] = GatewayBucket(slot)
        return bucket

    # ---- events ----------------------------------------------------------------------------

    def _attempt(self, event: AttemptFinished) -> None:
        wall = self._wall()
        traffic, bucket = self._bucket(
            event.deployment_id, event.model_group, int(wall // BUCKET_SECONDS)
        )
        totals = traffic.totals
        bucket.attempts += 1
        totals.attempts += 1
        error = event.error
        if error is None:
            bucket.served += 1
            traffic.last_success = wall
            latency = bucket.latency
            index = bin_of(event.duration)
            latency[index] = latency.get(index, 0) + 1
            if event.ttft is not None:
                ttft = bucket.ttft
                index = bin_of(event.ttft)
                ttft[index] = ttft.get(index, 0) + 1
        elif error not in _NOT_A_VERDICT:
            bucket.errors += 1
            totals.errors += 1
            traffic.last_error = LastError(error.value, event.status, wall)
        if event.cost is not None:
            totals.cost += event.cost
        usage = event.usage
        if usage is not None:
            totals.prompt_tokens += usage.prompt_tokens
            totals.completion_tokens += usage.completion_tokens
        pending = self._pending.get(event.request_id)
        if pending is None:
            if len(self._pending) >= MAX_PENDING:
                return
            pending = self._pending[event.request_id] = _Pending()
        # The event itself is kept (it is immutable): a chain is built only for a failover.
        if len(pending.attempts) < MAX_CHAIN:
            pending.attempts.append(event)

    def _request(self, event: RequestStarted) -> None:
        self._gateway_bucket().requests += 1

    def _finished(self, event: RequestFinished) -> None:
        pending = self._pending.pop(event.request_id, None)
        if pending is None:
            return
        attempts = pending.attempts
        if len(attempts) < 2 and not (
            pending.fallback or pending.hedged or pending.stream_failover
        ):
            return
        steps = [
            Step(
                a.deployment_name or a.deployment_id,
                a.reason,
                None if a.error is None else a.error.value,
                a.status,
                round(a.duration, 4),
            )
            for a in attempts
        ]
        served = next((step.deployment for step in steps if step.error is None), None)
        start = min((a.at - a.duration for a in attempts), default=event.at)
        self._failovers.append(
            Failover(
                at=self._wall(),
                request_id=event.request_id,
                model=event.model,
                steps=steps,
                served_by=served,
                fallback=pending.fallback,
                hedged=pending.hedged,
                stream_failover=pending.stream_failover,
                latency=round(max(0.0, event.at - start), 4),
            )
        )

    def _flag(self, request_id: str) -> _Pending | None:
        pending = self._pending.get(request_id)
        if pending is None and len(self._pending) < MAX_PENDING:
            pending = self._pending[request_id] = _Pending()
        return pending

    def _fallback(self, event: FallbackTaken) -> None:
        self._gateway_bucket().fallbacks += 1
        pending = self._flag(event.request_id)
        if pending is not None:
            pending.fallback = True

    def _hedge(self, event: HedgeFired) -> None:
        self._gateway_bucket().hedges += 1
        pending = self._flag(event.request_id)
        if pending is not None:
            pending.hedged = True

    def _stream_failover(self, event: StreamFailover) -> None:
        self._gateway_bucket().failovers += 1
        pending = self._flag(event.request_id)
        if pending is not None:
            pending.stream_failover = True

    def _answer(self, event: HttpRequestFinished) -> None:
        bucket = self._gateway_bucket()
        bucket.answers += 1
        if event.status >= 500 or event.status == 429:
            bucket.failed += 1
        latency = bucket.latency
        index = bin_of(event.duration)
        latency[index] = latency.get(index, 0) + 1

    # ---- reading ---------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        """Requests whose attempts are being collected now."""
        return len(self._pending)

    def export(self) -> TrafficExport:
        """A copy of the live buckets (those of the last `BUCKETS` slots), totals and chains."""
        wall = self._wall()
        oldest = int(wall // BUCKET_SECONDS) - BUCKETS + 1
        deployments = []
        for deployment_id, traffic in self._deployments.items():
            ring = self._rings[deployment_id]
            deployments.append(
                DeploymentTraffic(
                    traffic.id,
                    traffic.group,
                    [_copy(b) for b in ring if b is not None and b.slot >= oldest],
                    msgspec.structs.replace(traffic.totals),
                    traffic.last_error,
                    traffic.last_success,
                )
            )
        gateway = [
            msgspec.structs.replace(b, latency=dict(b.latency))
            for b in self._gateway
            if b is not None and b.slot >= oldest
        ]
        return TrafficExport(wall, self.started, deployments, gateway, list(self._failovers))

    def forget(self, keep: set[str]) -> None:
        """Drop the deployments not in `keep` (a reload removed them)."""
        for deployment_id in [d for d in self._deployments if d not in keep]:
            del self._deployments[deployment_id]
            del self._rings[deployment_id]


def _copy(bucket: Bucket) -> Bucket:
    return msgspec.structs.replace(bucket, latency=dict(bucket.latency), ttft=dict(bucket.ttft))
