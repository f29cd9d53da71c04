"""The steps every routed request takes between its router request and the router, whichever
API it came by (Chat Completions, the Responses API, Anthropic's Messages API), and the
headers that say who answered it.

In one place so that a request is admitted and described alike on every route: a virtual
key's model grants, the deadline, the model group, budgets and rate limits held before routing,
and the ``x-turnout-*`` headers of a whole answer.
"""

from __future__ import annotations

import time
from typing import Any

from aiohttp import web

from turnout.gateway.body import read_body
from turnout.gateway.exchange import EXCHANGE, Exchange
from turnout.gateway.gateway import Gateway
from turnout.gateway.request_ids import id_headers
from turnout.gateway.requests import parse_body
from turnout.gateway.turnout_headers import served_headers
from turnout.gateway.virtual_keys import Caller, admit
from turnout.governance.ledger import rate_limit_headers
from turnout.router.result import Response
from turnout.wire import Request


async def read_call(
    http: web.Request, gateway: Gateway, route: str
) -> tuple[Exchange, Caller, Any]:
    """The request's exchange (told its route's name), who calls (authenticated first: a
    caller without a valid key never has its body read) and the decoded JSON body."""
    exchange = http[EXCHANGE]
    exchange.route = route
    caller = await gateway.identify(http.headers)
    exchange.principal = caller.principal
    body = parse_body(await read_body(http, gateway.config.server.max_body_bytes))
    return exchange, caller, body


async def admitted(
    gateway: Gateway, exchange: Exchange, caller: Caller, request: Request, started: float
) -> dict[str, str]:
    """Admit `request` (the caller's grants, then its budgets and limits, held until it ends)
    and set its deadline and model group on `exchange`; the answer's own headers (its ids,
    and its key's limits when it has any)."""
    router = gateway.router
    if caller.grant is not None:
        admit(caller.grant, request, router.group_of)
    limit = request.timeout if request.timeout is not None else router.config.timeout
    exchange.deadline = started + limit
    group = exchange.model_group = router.group_of(request.model)
    ticket = await gateway.hold(caller, request, group)
    headers = id_headers(exchange.ids)
    if ticket is not None:
        headers.update(rate_limit_headers(ticket.limits))
    return headers


def served_by(answer: Response, started: float) -> dict[str, str]:
    """The ``x-turnout-*`` headers of an answer sent whole: who served it, after how many
    attempts, the gateway's own time (all but the upstream's) and the cost."""
    upstream = sum(attempt.duration for attempt in answer.attempts)
    return served_headers(
        answer.deployment.name,
        answer.deployment.model_name,
        len(answer.attempts),
        time.perf_counter() - started - upstream,
        answer.cost,
    )
