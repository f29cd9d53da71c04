"""Where a request's spans are found from the code that runs it: two context variables.

The gateway's tracing middleware puts the request's SERVER span in `SERVER_SPAN`; the span
observer puts each attempt's CLIENT span, as plain values, in `ATTEMPT` when the attempt
starts, in the task that then calls the provider (the router emits `AttemptStarted` there: in
the request's task, in a hedge's task, or while the caller iterates a stream that continues
elsewhere), so the wrapping transport injects the ``traceparent`` of the very attempt it
carries. Context variables follow asyncio tasks, so concurrent requests and a hedge's racing
attempts never see each other's. This module imports nothing of OpenTelemetry.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class AttemptTrace:
    """An open attempt span, kept as plain values until it ends (a span object and a method
    call per attribute cost more, on every request, than the span itself): its ids, its trace
    state, its attributes so far, and what the transport may still add to them."""

    trace_id: int
    span_id: int
    #: W3C trace flags (sampled, random trace id).
    flags: int
    #: The W3C ``tracestate`` header ("" when empty).
    trace_state: str
    #: Its attributes so far; None when the span does not record (not sampled).
    attributes: dict[str, Any] | None
    #: Whether ``server.address`` is on the span already (else the transport sets it from the
    #: URL it sends to).
    server_known: bool = False


#: The request's SERVER span, while the gateway serves it (None: not traced, or a library call).
SERVER_SPAN: ContextVar[Any] = ContextVar("turnout_server_span", default=None)
#: The attempt whose upstream call runs in this task.
ATTEMPT: ContextVar[AttemptTrace | None] = ContextVar("turnout_attempt", default=None)
