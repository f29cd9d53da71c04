"""Typed events the router and the gateway emit (through `turnout.observe.bus`).

The core never calls a metrics, tracing or logging library. It emits these plain records to its
observers; metrics, logs, traces and spend tracking subscribe. Observers are called inline on the
hot path, so they must be cheap: queue anything slow.

A request's events come in a fixed frame: `RequestStarted` first, before any of its attempts;
then its attempts, retries, fallbacks, hedges and failovers; `RequestFinished` last, once,
however it ended. Both carry the request's `Principal` (the caller the gateway authenticated;
None for library calls), as does each `AttemptFinished`, so that spend can be attributed.
No event carries a credential, and none carries a request's content unless an observer asked
for it explicitly (`Bus.content`, set only when content capture is configured): ids, names,
numbers and error kinds only.
The health events (cooldowns, breaker transitions) are defined with the health rules that
produce them, and re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass

from turnout.errors import FailureKind, FallbackKind
from turnout.health.events import BreakerTransition as BreakerTransition
from turnout.health.events import CooldownEntered as CooldownEntered
from turnout.health.events import CooldownLeft as CooldownLeft
from turnout.health.events import HealthEvent as HealthEvent
from turnout.wire import Principal, Usage


@dataclass(frozen=True, slots=True)
class RequestStarted:
    """A request reached the router. Emitted once per request, before any of its attempts."""

    request_id: str
    #: The model name the caller asked for: a model group or an alias.
    model: str
    #: Who the request is attributed to; None when the router is used as a library.
    principal: Principal | None
    #: Monotonic time on the router's clock.
    at: float
    stream: bool


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    request_id: str
    model_group: str
    deployment_id: str
    #: 1 for the first attempt of the request, counting retries and fallbacks.
    attempt: int
    at: float
    probe: bool
    #: Why it started: ``primary``, ``retry``, ``fallback``, ``hedge`` or ``failover`` (the
    #: continuation of a broken stream).
    reason: str = "primary"
    #: The deployment's readable name (`Deployment.name`), its provider, and the model the
    #: provider is asked for.
    deployment_name: str = ""
    provider: str = ""
    upstream_model: str = ""
    #: What is asked of the provider: ``chat``, ``completion`` or ``embedding``
    #: (`turnout.wire.Operation`).
    operation: str = "chat"
    stream: bool = False
    #: The upstream's host and port, when the deployment names its base URL (else the
    #: provider's default endpoint, known to its adapter only).
    server_address: str | None = None
    server_port: int | None = None
    #: The messages sent, as JSON: only when an observer asked for content
    #: (`Bus.content`), never by default.
    input_messages: str | None = None


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
    #: Who the request is attributed to (what spend is charged to).
    principal: Principal | None = None
    #: As in `AttemptStarted`.
    reason: str = "primary"
    deployment_name: str = ""
    provider: str = ""
    upstream_model: str = ""
    operation: str = "chat"
    #: As in `AttemptStarted`.
    server_address: str | None = None
    server_port: int | None = None
    #: The upstream's own request id (``x-request-id``, ``request-id``...), when it sent one.
    upstream_request_id: str | None = None
    #: What the answer said of itself, filled only when an observer asked for details
    #: (`Bus.details`): its id, the model that answered, and each choice's finish reason.
    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: tuple[str, ...] = ()
    #: The answer's messages, as JSON: only when an observer asked for content
    #: (`Bus.content`), never by default.
    output_messages: str | None = None


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
    #: The model name the caller asked for, as in `RequestStarted`.
    model: str
    principal: Principal | None
    #: Monotonic time on the router's clock.
    at: float


@dataclass(frozen=True, slots=True)
class HttpRequestFinished:
    """The gateway answered an HTTP request on a routed path (a completion, a stream, an
    embedding), whichever way: served, refused (401, 400) or failed. Emitted once per such
    request, when its answer was written."""

    #: The route's name (``chat_completions``, ``completions``, ``embeddings``, ``responses``,
    #: ``messages``).
    route: str
    #: The model group asked for, or ``unknown`` when the request never named a valid one.
    model_group: str
    status: int
    #: Seconds from receiving the request to finishing its answer.
    duration: float
    stream: bool
    #: Seconds to the first byte of a stream's answer; None when none was sent.
    ttft: float | None = None
    #: The gateway's own id for the request (the `RequestStarted` id of a routed one).
    request_id: str = ""
    #: The id the caller gave it (its ``x-request-id``), when it gave a usable one.
    client_request_id: str | None = None
    #: The model name asked for, once the body was read.
    model: str | None = None
    #: Who made it, once authenticated.
    principal: Principal | None = None
    #: The failure kind when it failed (or a stream broke after it began), else None.
    error: str | None = None
    #: The trace it belongs to, when requests are traced.
    trace_id: str | None = None


Event = (
    RequestStarted
    | AttemptStarted
    | AttemptFinished
    | FallbackTaken
    | RetryScheduled
    | HedgeFired
    | HedgeSettled
    | StreamFailover
    | BudgetExhausted
    | PoisonRequest
    | RequestFinished
    | HttpRequestFinished
    | HealthEvent
)
