"""Serving an API format other than Chat Completions over the chat router.

A non-chat ingress (Anthropic's Messages API, OpenAI's Responses API) is a `Translation`: the
chat body the router routes, and the answer and stream events in the ingress's own shape.
Everything between is the chat route's, called in the chat route's order so that a request is
admitted, routed and accounted the same whichever API it arrived by: the caller's key, body
limits, virtual-key admission and budgets, the deadline and the SDK's read timeout, routing with
its retries, fallbacks, hedging and mid-stream failover, spend, the stream relay's first-chunk
wait, send buffer and summary line, the ``x-turnout-*`` headers and the request's report. Errors
leave through the application's error middleware, which writes them in the shape the route set
in `ERROR_SHAPE` (OpenAI's when none is set).

A translation is made knowing who calls, for an ingress that keeps state per caller (the
Responses API continues a caller's stored conversation), and is told when its answer is
complete, whole or streamed to its end, so that it can keep what it keeps of it.

A translation may hand the router a request that carries the caller's own body too
(`Translation.routed`), for deployments that speak the ingress's format natively; their answers
then come back as they were sent, and the translation's `answer` and stream events relay them.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from turnout.errors import TurnoutError
from turnout.gateway.admission import admitted, read_call, served_by
from turnout.gateway.exchange import EXCHANGE, Exchange
from turnout.gateway.gateway import Gateway
from turnout.gateway.requests import build_request
from turnout.gateway.stream_relay import (
    bound_send_buffer,
    end_summary,
    open_stream,
    stream_broken,
    stream_response,
)
from turnout.router.result import Response
from turnout.wire import Operation, Principal, Request, StreamChunk, Usage

#: An error answer's body in a route's own shape: from the status, the (redacted) message and
#: the error, when the failure was a `TurnoutError`.
ErrorShape = Callable[[int, str, TurnoutError | None], bytes]
#: Set by a route whose errors are not OpenAI-shaped; read by the error middleware.
ERROR_SHAPE: web.RequestKey[ErrorShape] = web.RequestKey("error_shape")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StreamEvents(Protocol):
    """A routed stream's chunks as the ingress's events; one per stream."""

    def chunk(self, chunk: StreamChunk) -> bytes:
        """The events for one chunk (the stream's opening ones with the first; may be empty)."""
        ...

    def closing(self, usage: Usage | None) -> bytes:
        """The events that end a complete stream."""
        ...

    def failure(self, error: TurnoutError, body: dict[str, Any]) -> bytes:
        """The events that end a stream broken after it began; `body`: OpenAI's error body for
        `error`, redacted (the only text of the error a client may see)."""
        ...

    def captured(self) -> str | None:
        """The answer's text as sent, for a request log that captures content."""
        ...


class Translation(Protocol):
    """One ingress request, translated: its chat body, and how to answer it."""

    #: The chat body the router routes (OpenAI's shape).
    chat: dict[str, Any]
    #: What the caller asked, for a request log that captures content.
    prompt: object

    def routed(self, request: Request, headers: Mapping[str, str]) -> Request:
        """The request the router gets: `request`, or one carrying more for providers that
        speak the ingress format natively."""
        ...

    def answer(self, response: Response, request: Request) -> tuple[bytes, str | None]:
        """The answer's body and its text (for content capture)."""
        ...

    def events(self, request: Request) -> StreamEvents: ...

    async def keep(self) -> None:
        """The answer is complete (sent whole, or its stream closed well, just before its
        closing events go out): keep what the ingress keeps of it."""
        ...


#: Makes the `Translation` of a request's decoded body, for the caller it names (it may read
#: what the ingress keeps: the stored response a follow-up continues).
Translate = Callable[[dict[str, Any], Principal], Awaitable[Translation]]


def translated_route(
    route: str,
    translate: Translate,
    key: web.AppKey[Gateway],
    shape: ErrorShape | None = None,
) -> Handler:
    """The handler of an ingress route named `route` whose bodies `translate` turns into
    chat; `key` finds the gateway on the application; `shape` writes its errors (None:
    OpenAI's shape)."""

    async def handle(http: web.Request) -> web.StreamResponse:
        if shape is not None:
            http[ERROR_SHAPE] = shape
        started = time.perf_counter()
        gateway = http.app[key]
        exchange, caller, body = await read_call(http, gateway, route)
        translation = await translate(body, caller.principal)
        ids = exchange.ids
        chat = build_request(
            translation.chat,
            Operation.CHAT,
            http.headers,
            caller.principal,
            ids=(ids.own, ids.given),
        )
        request = translation.routed(chat, http.headers)
        exchange.model = request.model
        capture = gateway.capture_content
        if capture:
            exchange.messages = translation.prompt
        headers = await admitted(gateway, exchange, caller, request, started)
        try:
            if request.stream:
                exchange.stream = True
                return await _relay(http, gateway, request, translation, started, headers)
            answer = await gateway.router.complete(request)
        finally:
            if gateway.spend is not None:
                gateway.spend.never_routed(request.request_id)
        body_out, text = translation.answer(answer, request)
        await translation.keep()
        if capture:
            exchange.answer = text
        headers.update(served_by(answer, started))
        return web.Response(body=body_out, content_type="application/json", headers=headers)

    return handle


async def _relay(
    http: web.Request,
    gateway: Gateway,
    request: Request,
    translation: Translation,
    started: float,
    headers: dict[str, str],
) -> web.StreamResponse:
    """Relay a routed stream as the ingress's events, as `turnout.gateway.stream_relay` relays
    chat: the response begins with the first chunk, a break after it ends the stream with the
    ingress's failure events, and the summary comment line precedes the stream's last event."""
    exchange: Exchange = http[EXCHANGE]
    stream = await open_stream(gateway, request, started, http.headers, exchange)
    response = stream_response(stream, started, headers, exchange)
    events = translation.events(request)
    try:
        bound_send_buffer(http, gateway.config.server.stream_send_buffer_bytes)
        await response.prepare(http)
        try:
            async for chunk in stream:
                out = events.chunk(chunk)
                if out:
                    await response.write(out)
        except TurnoutError as error:
            stream_broken(exchange, stream, error)
            failure = events.failure(error, gateway.redactor.error_body(error))
            await response.write(end_summary(request, stream) + failure)
            return response
        closing = events.closing(stream.usage)
        await translation.keep()
        await response.write(end_summary(request, stream) + closing)
    except ConnectionError:
        exchange.error = "cancelled"  # the client went away: write nothing more
    finally:
        await stream.aclose()
        if gateway.capture_content:
            exchange.answer = events.captured()
    return response
