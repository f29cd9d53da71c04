"""Serving a non-chat ingress format (the Responses API, say) through the chat router.

Such a route translates its body into a chat body and its answer back; everything between
(authentication, a virtual key's model grants and budgets, the deadline, routing with its
retries, fallbacks, hedging and mid-stream failover, spend, the stream relay's first-chunk wait
and send buffer) is the chat route's own machinery, called here in the chat route's order, so
that a request is admitted, routed and accounted the same whichever API it arrived by.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from aiohttp import web

from turnout.errors import TurnoutError
from turnout.gateway.body import read_body
from turnout.gateway.exchange import EXCHANGE, Exchange
from turnout.gateway.gateway import Gateway
from turnout.gateway.request_ids import id_headers
from turnout.gateway.requests import build_request, parse_body, prompt_of
from turnout.gateway.stream_relay import bound_send_buffer, end_summary, open_stream
from turnout.gateway.turnout_headers import served_headers
from turnout.gateway.virtual_keys import Caller, admit
from turnout.governance.ledger import rate_limit_headers
from turnout.router.result import Response
from turnout.wire import Operation, Request, StreamChunk, Usage

logger = logging.getLogger("turnout.gateway")


class EventRenderer(Protocol):
    """Writes one answer's stream in an ingress format, from chat chunks."""

    def opening(self) -> bytes:
        """The events before the first chunk's (may be empty)."""

    def chunk(self, chunk: StreamChunk) -> bytes:
        """The events saying what one chunk says (may be empty)."""

    def finished(self, usage: Usage | None) -> bytes:
        """The events ending a stream that ended well."""

    def failed(self, error: dict[str, Any]) -> bytes:
        """The events ending a stream that broke; `error`: OpenAI's redacted error body."""


async def read_call(http: web.Request, gateway: Gateway, route: str) -> tuple[Caller, Any]:
    """Who calls and their decoded JSON body, with the exchange told the route's name."""
    exchange = http[EXCHANGE]
    exchange.route = route
    caller = await gateway.identify(http.headers)
    exchange.principal = caller.principal
    body = parse_body(await read_body(http, gateway.config.server.max_body_bytes))
    return caller, body


async def admit_chat(
    http: web.Request, gateway: Gateway, caller: Caller, chat: dict[str, Any], started: float
) -> tuple[Request, dict[str, str]]:
    """The router request for a translated chat body, admitted as the chat route admits one
    (grants, deadline, budgets), and the answer's own headers."""
    exchange = http[EXCHANGE]
    ids = exchange.ids
    request = build_request(
        chat, Operation.CHAT, http.headers, caller.principal, ids=(ids.own, ids.given)
    )
    exchange.model = request.model
    if gateway.capture_content:
        exchange.messages = prompt_of(chat)
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
    return request, headers


async def complete(
    gateway: Gateway, request: Request, started: float, headers: dict[str, str]
) -> Response:
    """The routed answer, sent whole; `headers` gain who served it."""
    try:
        answer = await gateway.router.complete(request)
    finally:
        if gateway.spend is not None:
            gateway.spend.never_routed(request.request_id)
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
    return answer


async def relay_events(
    http: web.Request,
    gateway: Gateway,
    request: Request,
    started: float,
    headers: dict[str, str],
    render: EventRenderer,
) -> web.StreamResponse:
    """Relay the routed stream as `render` writes it. As for chat: the response begins with
    the first chunk, and a stream that breaks after that ends with `render.failed`."""
    exchange = http[EXCHANGE]
    exchange.stream = True
    try:
        stream = await open_stream(gateway, request, started, http.headers, exchange)
    finally:
        if gateway.spend is not None:
            gateway.spend.never_routed(request.request_id)
    first_byte = exchange.first_byte = time.perf_counter() - started
    upstream = stream.ttft + sum(a.duration for a in stream.attempts)
    deployment = stream.deployment
    served = served_headers(
        deployment.name,
        deployment.model_name,
        len(stream.attempts) + 1,
        first_byte - upstream,
        None,
    )
    response = web.StreamResponse(
        headers={"content-type": "text/event-stream", "cache-control": "no-cache"}
        | served
        | headers
    )
    try:
        bound_send_buffer(http, gateway.config.server.stream_send_buffer_bytes)
        await response.prepare(http)
        await response.write(render.opening())
        try:
            async for chunk in stream:
                events = render.chunk(chunk)
                if events:
                    await response.write(events)
        except TurnoutError as error:
            _broken(exchange, stream.deployment.name, error)
            body = gateway.redactor.error_body(error)
            await response.write(end_summary(request, stream) + render.failed(body))
            return response
        await response.write(end_summary(request, stream) + render.finished(stream.usage))
    except ConnectionError:
        exchange.error = "cancelled"  # the client went away: write nothing more
    finally:
        await stream.aclose()
    return response


def _broken(exchange: Exchange, deployment: str, error: TurnoutError) -> None:
    exchange.error = error.kind.value
    logger.warning("stream-broken deployment=%s error=%s", deployment, error.kind.value)
