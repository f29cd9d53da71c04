"""A `Transport` that wraps another and puts the attempt span's ``traceparent`` on every
upstream call, so the provider's own traces join the request's: no adapter changes.

Only installed when tracing is on (`turnout.observe.otel_setup`); without tracing the providers
speak to the pooled transport directly. It also reads what only the wire knows onto the attempt
span: the host and port actually called (when the deployment names no base URL, the adapter's
default endpoint) and the upstream's own request id.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final
from urllib.parse import urlsplit

from turnout.config.router import Timeouts
from turnout.observe.trace_context import ATTEMPT, AttemptTrace
from turnout.upstream import Transport, UpstreamReply, UpstreamRequest, UpstreamStream

#: Where providers put their own request id (OpenAI and most compatible APIs, Anthropic,
#: Bedrock, Azure's API management and Azure itself), in the order tried.
UPSTREAM_ID_HEADERS: Final = (
    "x-request-id",
    "request-id",
    "x-amzn-requestid",
    "apim-request-id",
    "x-ms-request-id",
)


class TracingTransport:
    """Adds ``traceparent`` (and ``tracestate``) of the current attempt span to each call."""

    __slots__ = ("inner",)

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    async def send(self, call: UpstreamRequest, timeouts: Timeouts) -> UpstreamReply:
        attempt = ATTEMPT.get()
        if attempt is None:
            return await self.inner.send(call, timeouts)
        reply = await self.inner.send(_traced(call, attempt), timeouts)
        _note_reply(attempt, reply.headers)
        return reply

    async def open(self, call: UpstreamRequest, timeouts: Timeouts) -> UpstreamStream:
        attempt = ATTEMPT.get()
        if attempt is None:
            return await self.inner.open(call, timeouts)
        reply = await self.inner.open(_traced(call, attempt), timeouts)
        _note_reply(attempt, reply.headers)
        return reply

    async def aclose(self) -> None:
        await self.inner.aclose()


def _traced(call: UpstreamRequest, attempt: AttemptTrace) -> UpstreamRequest:
    span = attempt.span
    if not attempt.server_known:
        attempt.server_known = True
        try:
            parts = urlsplit(call.url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            parts, port = None, None
        if parts is not None and parts.hostname:
            span.set_attribute("server.address", parts.hostname)
            span.set_attribute("server.port", port)
    # W3C Trace Context, as its propagator writes it (the span's context is always valid).
    context = span.get_span_context()
    headers = dict(call.headers)
    headers["traceparent"] = (
        f"00-{context.trace_id:032x}-{context.span_id:016x}-{context.trace_flags:02x}"
    )
    if context.trace_state:
        headers["tracestate"] = context.trace_state.to_header()
    return replace(call, headers=headers)


def _note_reply(attempt: AttemptTrace, headers: object) -> None:
    get = getattr(headers, "get", None)
    if get is None:
        return
    for name in UPSTREAM_ID_HEADERS:
        value = get(name)
        if isinstance(value, str) and value:
            attempt.span.set_attribute("turnout.upstream_request_id", value[:128])
            return
