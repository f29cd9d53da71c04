"""The SERVER span of each routed HTTP request, continuing the caller's trace.

Installed only when tracing is on (`create_app` asks `tracing_middlewares`, which returns
nothing otherwise): a gateway without tracing runs no code of this module per request. The
caller's ``traceparent`` and ``tracestate`` are read with the W3C propagator; a malformed one is
ignored and the request starts a trace of its own. The span is current while the handler runs,
so every attempt span the router opens is its child, and it ends when the answer (a stream's
last byte included) has been written: an error status for 5xx answers, with
``http.response.status_code`` and the request id the answer carries.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Middleware

from turnout.gateway.exchange import exchange_of
from turnout.gateway.request_ids import TRACE_ID
from turnout.observe.trace_context import SERVER_SPAN

if TYPE_CHECKING:
    from turnout.observe.otel_setup import Tracing

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def tracing_middlewares(tracing: Tracing | None, paths: Collection[str]) -> list[Middleware]:
    """The middleware tracing the routed `paths`, or none when tracing is off."""
    if tracing is None:
        return []
    return [_middleware(tracing, frozenset(paths))]


def _middleware(tracing: Tracing, paths: frozenset[str]) -> Middleware:
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagator = TraceContextTextMapPropagator()
    tracer = tracing.tracer

    @web.middleware
    async def trace_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path not in paths:
            return await handler(request)
        carrier: dict[str, Any] = {}
        for name in ("traceparent", "tracestate"):
            value = request.headers.get(name)
            if value is not None:
                carrier[name] = value
        parent = propagator.extract(carrier) if carrier else None
        route = f"{request.method} {request.path}"
        span = tracer.start_span(
            route,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
                "http.route": request.path,
                "url.path": request.path,
                "url.scheme": request.scheme,
                "network.protocol.version": f"{request.version.major}.{request.version.minor}",
            },
        )
        # The request log names the trace, and the span the id the answer carries.
        request[TRACE_ID] = format(span.get_span_context().trace_id, "032x")
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        server_token = SERVER_SPAN.set(span)
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__qualname__)
            raise
        finally:
            SERVER_SPAN.reset(server_token)
            otel_context.detach(token)
            span.set_attribute("turnout.request_id", exchange_of(request).ids.public)
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                span.set_attribute("error.type", str(status))
                span.set_status(Status(StatusCode.ERROR))
            span.end()

    return trace_request
