"""Serving an API format other than Chat Completions over the chat router.

A non-chat ingress (Anthropic's Messages API, say) is a `Translation`: the chat body the router
routes, and the answer and stream events in the ingress's own shape. Everything between is the
chat route's: the caller's key, body limits, virtual-key admission and budgets, the deadline
and the SDK's read timeout, routing with its retries, fallbacks, hedging and mid-stream
failover, spend, the ``x-turnout-*`` headers and the request's report. Errors leave through
the application's error middleware, which writes them in the shape the route set in
`ERROR_SHAPE` (OpenAI's when none is set).

A translation may hand the router a request that carries the caller's own body too
(`Translation.routed`), for deployments that speak the ingress's format natively; their answers
then come back as they were sent, and the translation's `answer` and stream events relay them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

from aiohttp import web

from turnout.errors import TurnoutError
from turnout.gateway.body import read_body
from turnout.gateway.exchange import EXCHANGE, Exchange
from turnout.gateway.gateway import Gateway
from turnout.gateway.request_ids import id_headers
from turnout.gateway.requests import build_request, parse_body
from turnout.gateway.stream_relay import bound_send_buffer, open_stream
from turnout.gateway.turnout_headers import served_headers, stream_summary
from turnout.gateway.virtual_keys import admit
from turnout.governance.ledger import rate_limit_headers
from turnout.router.result import Response
from turnout.router.streaming import Stream
from turnout.wire import Operation, Request, StreamChunk, Usage

logger = logging.getLogger("turnout.gateway")

#: An error answer's body in a route's own shape: from the status, the (redacted) message and
#: the error, when the failure was a `TurnoutError`.
ErrorShape = Callable[[int, str, TurnoutError | None], bytes]
#: Set by a route whose errors are not OpenAI-shaped; read by the error middleware.
ERROR_SHAPE: web.RequestKey[ErrorShape] = web.RequestKey("error_shape")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class StreamEvents(Protocol):
    """A routed stream's chunks as the ingress's events; one per stream."""

    #: The answer's text so far, for a request log that captures content.
    text: list[str]

    def chunk(self, chunk: StreamChunk) -> bytes:
        """The events for one chunk (the stream's opening ones with the first)."""
        ...

    def closing(self, usage: Usage | None) -> bytes:
        """The events that end a complete stream."""
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

    def failure(self, error: TurnoutError, message: str) -> bytes:
        """The event that ends a stream broken after it began (`message`: redacted)."""
        ...


def translated_route(
    route: str,
    translate: Callable[[dict[str, Any]], Translation],
    shape: ErrorShape,
    key: web.AppKey[Gateway],
) -> Handler:
    """The handler of an ingress route named `route` whose bodies `translate` turns into
    chat; `shape` writes its errors; `key` finds the gateway on the application."""

    async def handle(http: web.Request) -> web.StreamResponse:
        http[ERROR_SHAPE] = shape
        started = time.perf_counter()
        exchange = http[EXCHANGE]
        exchange.route = route
        gateway = http.app[key]
        caller = await gateway.identify(http.headers)
        exchange.principal = caller.principal
        translation = translate(
            parse_body(await read_body(http, gateway.config.server.max_body_bytes))
        )
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
        router = gateway.router
        if caller.grant is not None:
            admit(caller.grant, request, router.group_of)
        limit = request.timeout if request.timeout is not None else router.config.timeout
        exchange.deadline = started + limit
        group = exchange.model_group = router.group_of(request.model)
        ticket = await gateway.hold(caller, request, group)
        headers = id_headers(ids)
        if ticket is not None:
            headers.update(rate_limit_headers(ticket.limits))
        try:
            if request.stream:
                exchange.stream = True
                return await _relay(http, gateway, request, translation, started, headers)
            answer = await router.complete(request)
        finally:
            if gateway.spend is not None:
                gateway.spend.never_routed(request.request_id)
        body, text = translation.answer(answer, request)
        if capture:
            exchange.answer = text
        upstream = sum(attempt.duration for attempt in answer.attempts)
        headers.update(
            served_headers(
                answer.deployment.name,
                answer.deployment.model_name,
                len(answer.attempts),
                time.perf_counter() - started - upstream,
                answer.cost,
            )
        )
        return web.Response(body=body, content_type="application/json", headers=headers)

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
    ingress's error event, and a summary comment line precedes the stream's last event."""
    exchange: Exchange = http[EXCHANGE]
    stream = await open_stream(gateway, request, started, http.headers, exchange)
    first_byte = exchange.first_byte = time.perf_counter() - started
    upstream = stream.ttft + sum(a.duration for a in stream.attempts)
    deployment = stream.deployment
    response = web.StreamResponse(
        headers={
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
            **served_headers(
                deployment.name,
                deployment.model_name,
                len(stream.attempts) + 1,
                first_byte - upstream,
                None,
            ),
            **headers,
        }
    )
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
            exchange.error = error.kind.value
            logger.warning(
                "stream-broken deployment=%s error=%s", stream.deployment.name, error.kind.value
            )
            message = gateway.redactor.error_body(error)["error"]["message"]
            await response.write(
                _summary(request, stream, None) + translation.failure(error, message)
            )
            return response
        await response.write(_summary(request, stream, stream.usage) + events.closing(stream.usage))
    except ConnectionError:
        exchange.error = "cancelled"
    finally:
        await stream.aclose()
        if gateway.capture_content:
            exchange.answer = "".join(events.text)
    return response


def _summary(request: Request, stream: Stream, usage: Usage | None) -> bytes:
    """The stream's closing comment line (`turnout.gateway.turnout_headers.stream_summary`)."""
    deployment = stream.deployment
    return stream_summary(
        request.public_id, deployment.name, deployment.model_name, stream.attempts, usage
    )
