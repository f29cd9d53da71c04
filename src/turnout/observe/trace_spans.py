"""Attempt spans from the router's events: one CLIENT span per upstream attempt.

`AttemptStarted` opens a span named ``{gen_ai.operation.name} {gen_ai.request.model}`` with the
attributes samplers read set at its start (operation, provider, model, server); `AttemptFinished`
sets what the answer told (response id and model, finish reasons, usage, time to first chunk,
``error.type``) and ends it. Retries, fallbacks, hedges and stream continuations are each their
own span, siblings under the request's SERVER span, with ``turnout.attempt.reason`` saying why.
Fallbacks, retries, hedges, stream failovers and cooldowns become span events on the SERVER span.

Each span's parent is the context current when the request entered the router (the gateway's
SERVER span, or a library caller's own span), kept per request until `RequestFinished`, so an
attempt started from a hedge's task or while a stream is iterated finds the same parent. The
observer runs inline and only creates, annotates and ends spans: the span pipe
(`turnout.observe.span_pipe`) exports them from another process. The bus calls its handlers
directly, by event type (`event_handlers`). No credential and no message content reaches a span,
except content when capture was explicitly configured.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags

from turnout.errors import FailureKind
from turnout.health.record import BreakerPhase
from turnout.observe.events import (
    AttemptFinished,
    AttemptStarted,
    BreakerTransition,
    CooldownEntered,
    Event,
    FallbackTaken,
    HedgeFired,
    HedgeSettled,
    RequestFinished,
    RequestStarted,
    RetryScheduled,
    StreamFailover,
)
from turnout.observe.genai_names import operation_name, provider_name
from turnout.observe.lean_spans import LeanTracer
from turnout.observe.span_records import SpanRecord
from turnout.observe.trace_context import ATTEMPT, SERVER_SPAN, AttemptTrace

_BREAKER: dict[BreakerPhase, str] = {phase: phase.name.lower() for phase in BreakerPhase}
#: Abandoned attempts: cut off by the caller, a hedge's winner or the deadline, not failed.
_ABANDONED = frozenset({FailureKind.CANCELLED, FailureKind.DEADLINE})
_SAMPLED = TraceFlags.SAMPLED
_UNSET = StatusCode.UNSET.value
_ERROR = StatusCode.ERROR.value
_CLIENT = SpanKind.CLIENT.value


class _RequestTrace:
    """What a traced request's attempts need: their parent, and attempts per group."""

    __slots__ = ("open", "parent", "parent_span", "per_group", "server")

    def __init__(self, parent: otel_context.Context, server: Any) -> None:
        self.parent = parent
        #: The context of the span current in `parent` (its attempts' parent span).
        self.parent_span = trace.get_current_span(parent).get_span_context()
        #: The SERVER span, for span events (None for a library call).
        self.server = server
        self.per_group: dict[str, int] = {}
        #: Numbers of its attempts whose spans are open.
        self.open: set[int] = set()


class _OpenAttempt:
    """An attempt span between its start and its end: the values the transport reads and
    adds to (`AttemptTrace`), and the rest of its record."""

    __slots__ = ("name", "parent", "start", "trace")

    def __init__(self, trace: AttemptTrace, name: str, parent: SpanContext | None, start: int):
        self.trace = trace
        self.name = name
        #: The parent span's context (None for a root span).
        self.parent = parent
        #: Nanoseconds since the epoch.
        self.start = start


class SpanObserver:
    """Builds attempt spans from the bus's events (an `Observer`)."""

    __slots__ = ("_attempts", "_breakers", "_handlers", "_requests", "strategy", "tracer")

    def __init__(self, tracer: LeanTracer, strategy: str = "") -> None:
        self.tracer = tracer
        #: The routing strategy in force (``turnout.strategy``); the gateway updates it on reload.
        self.strategy = strategy
        self._requests: dict[str, _RequestTrace] = {}
        self._attempts: dict[tuple[str, int], _OpenAttempt] = {}
        #: Deployment id -> its breaker's phase, as last reported (closed until then).
        self._breakers: dict[str, str] = {}
        self._handlers: dict[type[Any], Callable[[Any], None]] = {
            AttemptStarted: self._started,
            AttemptFinished: self._finished,
            RequestStarted: self._request_started,
            RequestFinished: self._request_ended,
            FallbackTaken: self._fallback,
            RetryScheduled: self._retry,
            HedgeFired: self._hedge,
            HedgeSettled: self._hedge_settled,
            StreamFailover: self._stream_failover,
            BreakerTransition: self._breaker,
            CooldownEntered: self._cooldown,
        }

    @property
    def event_handlers(self) -> dict[type[Any], Callable[[Any], None]]:
        """The events it handles, each with its handler (the bus calls them directly)."""
        return self._handlers

    def on_event(self, event: Event) -> None:
        handler = self._handlers.get(type(event))
        if handler is not None:
            handler(event)

    def _request_started(self, event: RequestStarted) -> None:
        server = SERVER_SPAN.get()
        if server is not None:
            # The gateway's own id; its middleware names the span by the id the caller knows
            # when the answer is out.
            server.set_attribute("turnout.request_id", event.request_id)
        self._requests[event.request_id] = _RequestTrace(otel_context.get_current(), server)

    def _request_ended(self, event: RequestFinished) -> None:
        self._request_finished(event.request_id)

    def _fallback(self, event: FallbackTaken) -> None:
        self._mark(
            event.request_id,
            "turnout.fallback",
            {
                "turnout.fallback.from": event.from_group,
                "turnout.fallback.to": event.to_group,
                "turnout.fallback.kind": event.kind.value,
                "error.type": event.error.value,
            },
        )

    def _retry(self, event: RetryScheduled) -> None:
        self._mark(
            event.request_id,
            "turnout.retry",
            {
                "turnout.model_group": event.model_group,
                "turnout.deployment.id": event.failed_deployment,
                "turnout.retry.delay": event.delay,
                "error.type": event.error.value,
            },
        )

    def _hedge(self, event: HedgeFired) -> None:
        self._mark(
            event.request_id,
            "turnout.hedge",
            {
                "turnout.model_group": event.model_group,
                "turnout.hedge.primary": event.primary,
                "turnout.hedge.duplicate": event.hedge,
                "turnout.hedge.delay": event.delay,
            },
        )

    def _hedge_settled(self, event: HedgeSettled) -> None:
        attributes: dict[str, Any] = {"turnout.hedge.won": event.hedge_won}
        if event.winner is not None:
            attributes["turnout.hedge.winner"] = event.winner
        self._mark(event.request_id, "turnout.hedge_settled", attributes)

    def _stream_failover(self, event: StreamFailover) -> None:
        self._mark(
            event.request_id,
            "turnout.stream_failover",
            {
                "turnout.model_group": event.model_group,
                "turnout.deployment.id": event.failed,
                "turnout.stream_failover.method": event.method,
                "turnout.stream_failover.sent_chars": event.sent_chars,
                "error.type": event.error.value,
            },
        )

    def _breaker(self, event: BreakerTransition) -> None:
        self._breakers[event.deployment_id] = _BREAKER[event.current]

    def _cooldown(self, event: CooldownEntered) -> None:
        # Emitted while the attempt that caused it settles, in the request's context.
        server = SERVER_SPAN.get()
        if server is not None:
            server.add_event(
                "turnout.cooldown",
                {
                    "turnout.deployment.id": event.deployment_id,
                    "turnout.cooldown.reason": event.reason.value,
                    "turnout.cooldown.seconds": event.seconds,
                },
            )

    # ---- attempts ----------------------------------------------------------------------

    def _started(self, event: AttemptStarted) -> None:
        request = self._requests.get(event.request_id)
        if request is not None:
            parent, parent_span = request.parent, request.parent_span
        else:
            parent = otel_context.get_current()
            parent_span = trace.get_current_span(parent).get_span_context()
        operation = operation_name(event.operation)
        model = event.upstream_model
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.provider.name": provider_name(event.provider),
            "gen_ai.request.model": model,
            "turnout.deployment": event.deployment_name,
            "turnout.deployment.id": event.deployment_id,
            "turnout.model_group": event.model_group,
            "turnout.attempt": event.attempt,
            "turnout.attempt.reason": event.reason,
            "turnout.breaker.state": self._breakers.get(event.deployment_id, "closed"),
        }
        if event.stream:
            attributes["gen_ai.request.stream"] = True
        if self.strategy:
            attributes["turnout.strategy"] = self.strategy
        if event.probe:
            attributes["turnout.probe"] = True
        if event.server_address is not None:
            attributes["server.address"] = event.server_address
            if event.server_port is not None:
                attributes["server.port"] = event.server_port
        if request is not None:
            request.open.add(event.attempt)
            before = request.per_group.get(event.model_group, 0)
            request.per_group[event.model_group] = before + 1
            if before and event.reason == "retry":
                attributes["http.request.resend_count"] = before
        if event.input_messages is not None:
            attributes["gen_ai.input.messages"] = event.input_messages
        name = f"{operation} {model}"
        decided = self.tracer.decide(name, parent_span, SpanKind.CLIENT, attributes, context=parent)
        state = decided.state
        held = AttemptTrace(
            decided.trace_id,
            decided.span_id,
            decided.flags,
            state.to_header() if state else "",
            decided.attributes,
            event.server_address is not None,
        )
        self._attempts[event.request_id, event.attempt] = _OpenAttempt(
            held, name, decided.parent, time.time_ns()
        )
        # The provider is called next, in this task: the transport finds the span here.
        ATTEMPT.set(held)

    def _finished(self, event: AttemptFinished) -> None:
        open_attempt = self._attempts.pop((event.request_id, event.attempt), None)
        if open_attempt is None:
            return
        held = open_attempt.trace
        if ATTEMPT.get() is held:
            ATTEMPT.set(None)
        request = self._requests.get(event.request_id)
        if request is not None:
            request.open.discard(event.attempt)
        attributes = held.attributes
        if attributes is None or not held.flags & _SAMPLED:
            return  # not recorded, or recorded for a sampler that asks only that: not exported
        if event.response_model is not None:
            attributes["gen_ai.response.model"] = event.response_model
        if event.response_id is not None:
            attributes["gen_ai.response.id"] = event.response_id
        if event.finish_reasons:
            attributes["gen_ai.response.finish_reasons"] = list(event.finish_reasons)
        elif event.error is not None and event.stream:
            attributes["gen_ai.response.finish_reasons"] = ["error"]
        usage = event.usage
        if usage is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
            attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
            if usage.cached_tokens:
                attributes["gen_ai.usage.cache_read.input_tokens"] = usage.cached_tokens
        if event.ttft is not None:
            attributes["gen_ai.response.time_to_first_chunk"] = event.ttft
        if event.status is not None:
            attributes["http.response.status_code"] = event.status
        if event.upstream_request_id is not None:
            attributes["turnout.upstream_request_id"] = event.upstream_request_id
        if event.cost is not None:
            attributes["turnout.cost"] = event.cost
        if event.output_messages is not None:
            attributes["gen_ai.output.messages"] = event.output_messages
        error = event.error
        status, description = _UNSET, None
        if error is not None:
            attributes["error.type"] = error.value
            if error in _ABANDONED:
                attributes["turnout.attempt.outcome"] = error.value
            else:
                status, description = _ERROR, error.value
        self._submit(open_attempt, status, description)

    def _request_finished(self, request_id: str) -> None:
        request = self._requests.pop(request_id, None)
        if request is None:
            return
        # Every attempt settles before its request finishes; anything still open was lost.
        for number in request.open:
            open_attempt = self._attempts.pop((request_id, number), None)
            if open_attempt is None:
                continue
            held = open_attempt.trace
            if held.attributes is not None and held.flags & _SAMPLED:
                held.attributes["error.type"] = "_OTHER"
                self._submit(open_attempt, _UNSET, None)

    def _submit(self, open_attempt: _OpenAttempt, status: int, description: str | None) -> None:
        """The ended attempt span, as the record a `LeanSpan` would have made of it."""
        held, parent = open_attempt.trace, open_attempt.parent
        assert held.attributes is not None
        self.tracer.sink.submit(
            SpanRecord(
                held.trace_id.to_bytes(16, "big"),
                held.span_id,
                held.flags,
                held.trace_state,
                0 if parent is None else parent.span_id,
                False if parent is None else parent.is_remote,
                open_attempt.name,
                _CLIENT,
                open_attempt.start,
                time.time_ns(),
                held.attributes,
                [],
                status,
                description,
                [],
            )
        )

    def _mark(self, request_id: str, name: str, attributes: dict[str, Any]) -> None:
        request = self._requests.get(request_id)
        server = request.server if request is not None else None
        if server is None:
            server = trace.get_current_span()
            if not server.is_recording():
                return
        server.add_event(name, attributes)
