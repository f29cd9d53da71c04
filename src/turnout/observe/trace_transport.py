"""A `Transport` that wraps another and puts the attempt span's ``traceparent`` on every
upstream call, so the provider's own traces join the request's: no adapter changes.

Only installed when tracing is on (`turnout.observe.otel_setup`); without tracing the providers
speak to the pooled transport directly. It also reads what only the wire knows onto the attempt
span: the host and port actually called (when the deployment names no base URL, the adapter's
default endpoint). The upstream's own request id reaches the span with the attempt's end
(`AttemptFinished.upstream_request_id`, read once by the provider layer).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from turnout.config.router import Timeouts
from turnout.observe.trace_context import ATTEMPT, AttemptTrace
from turnout.upstream import Transport, UpstreamReply, UpstreamRequest, UpstreamStream


class TracingTransport:
    """Adds ``traceparent`` (and ``tracestate``) of the current attempt span to each call."""

    __slots__ = ("inner",)

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    async def send(self, call: UpstreamRequest, timeouts: Timeouts) -> UpstreamReply:
        attempt = ATTEMPT.get()
        if attempt is None:
            return await self.inner.send(call, timeouts)
        return await self.inner.send(_traced(call, attempt), timeouts)

    async def open(self, call: UpstreamRequest, timeouts: Timeouts) -> UpstreamStream:
        attempt = ATTEMPT.get()
        if attempt is None:
            return await self.inner.open(call, timeouts)
        return await self.inner.open(_traced(call, attempt), timeouts)

    async def aclose(self) -> None:
        await self.inner.aclose()


def _traced(call: UpstreamRequest, attempt: AttemptTrace) -> UpstreamRequest:
    if not attempt.server_known:
        attempt.server_known = True
        try:
            parts = urlsplit(call.url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            parts, port = None, None
        attributes = attempt.attributes
        if parts is not None and parts.hostname and attributes is not None:
            attributes["server.address"] = parts.hostname
            attributes["server.port"] = port
    # W3C Trace Context, as its propagator writes it (the span's context is always valid).
    parent = f"00-{attempt.trace_id:032x}-{attempt.span_id:016x}-{attempt.flags:02x}"
    headers = {**call.headers, "traceparent": parent}
    if attempt.trace_state:
        headers["tracestate"] = attempt.trace_state
    # Built directly: `dataclasses.replace` costs more than the rest of this function.
    return UpstreamRequest(call.url, call.body, headers, call.method)
