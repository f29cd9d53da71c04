"""Typed events the router emits, and the observer interface that receives them.

The core never calls a metrics, tracing or logging library. It emits these plain records to its
observers; metrics, logs, traces and spend tracking subscribe. Observers are called inline on the
hot path, so they must be cheap: queue anything slow. The health events (cooldowns, breaker
transitions) are defined with the health rules that produce them, and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from turnout.errors import FailureKind, FallbackKind
from turnout.health.events import BreakerTransition as BreakerTransition
from turnout.health.events import CooldownEntered as CooldownEntered
from turnout.health.events import CooldownLeft as CooldownLeft
from turnout.health.events import HealthEvent as HealthEvent
from turnout.wire import Usage


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    request_id: str
    model_group: str
    deployment_id: str
    #: 1 for the first attempt of the request, counting retries and fallbacks.
    attempt: int
    at: float
    probe: bool


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    request_id: str
    model_group: str
    deployment_id: str
    attempt: int
    at: float
    duration: float
    #: None when the attempt succeeded.
    error: FailureKind | None
    status: int | None
    usage: Usage | None
    cost: float | None
    #: Time to first token, for streams.
    ttft: float | None
    stream: bool


@dataclass(frozen=True, slots=True)
class FallbackTaken:
    request_id: str
    from_group: str
    to_group: str
    kind: FallbackKind
    error: FailureKind


@dataclass(frozen=True, slots=True)
class RetryScheduled:
    request_id: str
    model_group: str
    failed_deployment: str
    delay: float
    error: FailureKind


@dataclass(frozen=True, slots=True)
class HedgeFired:
    """The first attempt was slow: a duplicate started on another deployment."""

    request_id: str
    model_group: str
    primary: str
    hedge: str
    #: Seconds the primary had run when the hedge fired.
    delay: float


@dataclass(frozen=True, slots=True)
class HedgeSettled:
    """A hedged race ended: who delivered first, and which attempt was cancelled."""

    request_id: str
    model_group: str
    #: The deployment that answered, or None when both failed.
    winner: str | None
    hedge_won: bool
    cancelled: str | None


@dataclass(frozen=True, slots=True)
class StreamFailover:
    """A stream broke after content was sent, and continues from another deployment."""

    request_id: str
    model_group: str
    failed: str
    error: FailureKind
    #: Characters of content the caller had received when it broke.
    sent_chars: int
    #: How the continuation was asked for: "prefill" or "instruction".
    method: str


@dataclass(frozen=True, slots=True)
class BudgetExhausted:
    """A retry, fallback or hedge was skipped because its budget was spent."""

    request_id: str
    model_group: str
    #: "retry" or "hedge".
    kind: str


@dataclass(frozen=True, slots=True)
class PoisonRequest:
    """A request failed with a server error on deployments that answer other requests: it was
    failed as the cause, and counted against none of them."""

    request_id: str
    #: The model group the request asked for.
    model_group: str
    #: The deployments that failed it, in order.
    deployments: tuple[str, ...]
    #: Attempts the request made.
    attempts: int


@dataclass(frozen=True, slots=True)
class RequestFinished:
    """A request ended, whichever way: served, failed, judged poison, cut by its deadline or
    given up by its caller; a stream when its iteration ended or it was closed. Emitted once
    per request, after its last attempt settled, so that observers keeping per-request state
    know when to drop it."""

    request_id: str


Event = (
    AttemptStarted
    | AttemptFinished
    | FallbackTaken
    | RetryScheduled
    | HedgeFired
    | HedgeSettled
    | StreamFailover
    | BudgetExhausted
    | PoisonRequest
    | RequestFinished
    | HealthEvent
)


class Observer(Protocol):
    """Receives every event the router emits."""

    def on_event(self, event: Event) -> None: ...
