"""The Responses API: ``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``, and
``GET /v1/responses/{id}/input_items``.

A request is translated to chat (`turnout.gateway.responses_request`), served by the chat
router through the chat route's own machinery (`turnout.gateway.ingress`), and answered as a
`response` object (`turnout.gateway.responses_output`) or its event stream
(`turnout.gateway.responses_events`). Unless the caller says ``store: false``, the response and
its conversation are kept (`turnout.gateway.responses_store`) for ``previous_response_id`` and
for reading back; see docs/responses-api.md for why state, not deployment affinity.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from turnout.errors import InvalidRequestError
from turnout.gateway.exchange import EXCHANGE
from turnout.gateway.gateway import Gateway
from turnout.gateway.ingress_steps import admit_chat, complete, read_call, relay_events
from turnout.gateway.responses_events import ResponseEvents
from turnout.gateway.responses_listing import page
from turnout.gateway.responses_output import Draft, conversation_of, input_items, whole_response
from turnout.gateway.responses_request import chat_body
from turnout.gateway.responses_store import ResponseStore, Stored
from turnout.wire import Principal

#: The paths a client posts a Responses request to (traced like the chat paths).
RESPONSES_PATHS = ("/v1/responses", "/responses")
STORE = web.AppKey("responses_store", ResponseStore)
_ENCODE = msgspec.json.Encoder().encode
ExpectHandler = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
_JSON = "application/json"


class ResponseNotFoundError(InvalidRequestError):
    """A response id this caller has no stored response for (unknown, expired, deleted, not
    stored, or another caller's: all look the same, so ids reveal nothing)."""

    status = 404
    openai_code = "response_not_found"


class PreviousResponseNotFoundError(ResponseNotFoundError):
    openai_code = "previous_response_not_found"


def add_responses_routes(
    app: web.Application, key: web.AppKey[Gateway], expect: ExpectHandler
) -> None:
    """Serve the Responses API from the gateway at `app[key]`, with its own store; `expect`
    answers a client's ``Expect: 100-continue`` as on the chat route."""
    app[STORE] = ResponseStore(app[key].config.server.responses_store)

    async def create(http: web.Request) -> web.StreamResponse:
        return await _create(http, app[key], app[STORE])

    async def retrieve(http: web.Request) -> web.StreamResponse:
        entry = await _entry(http, app[key], app[STORE])
        return web.Response(body=_ENCODE(entry.response), content_type=_JSON)

    async def delete(http: web.Request) -> web.StreamResponse:
        response_id = http.match_info["response_id"]
        principal = (await app[key].identify(http.headers)).principal
        if not app[STORE].delete(principal, response_id):
            raise _not_found(response_id)
        body = {"id": response_id, "object": "response.deleted", "deleted": True}
        return web.Response(body=_ENCODE(body), content_type=_JSON)

    async def listed(http: web.Request) -> web.StreamResponse:
        items = (await _entry(http, app[key], app[STORE])).input_items
        return web.Response(body=_ENCODE(page(items, http.query)), content_type=_JSON)

    for path in RESPONSES_PATHS:
        app.router.add_post(path, create, expect_handler=expect)
        app.router.add_get(path + "/{response_id}", retrieve)
        app.router.add_delete(path + "/{response_id}", delete)
        app.router.add_get(path + "/{response_id}/input_items", listed)


async def _create(http: web.Request, gateway: Gateway, store: ResponseStore) -> web.StreamResponse:
    started = time.perf_counter()
    caller, body = await read_call(http, gateway, "responses")
    history = _history(store, caller.principal, body.get("previous_response_id"))
    chat, turn = chat_body(body, history)
    request, headers = await admit_chat(http, gateway, caller, chat, started)
    draft = Draft(body)
    exchange = http[EXCHANGE]
    if request.stream:
        events = ResponseEvents(draft)
        response = await relay_events(http, gateway, request, started, headers, events)
        final = events.final
        if final is not None and final["status"] != "failed":
            _keep(store, caller.principal, body, final, [*history, *turn])
            exchange.answer = _text(final) if gateway.capture_content else None
        return response
    answer = await complete(gateway, request, started, headers)
    final = whole_response(draft, answer.body)
    _keep(store, caller.principal, body, final, [*history, *turn])
    if gateway.capture_content:
        exchange.answer = _text(final)
    return web.Response(body=_ENCODE(final), content_type=_JSON, headers=headers)


def _history(store: ResponseStore, principal: Principal, previous: Any) -> list[dict[str, Any]]:
    """The conversation `previous_response_id` continues (none without one)."""
    if previous is None:
        return []
    if not isinstance(previous, str) or not previous:
        raise InvalidRequestError(
            "`previous_response_id` must be a string", param="previous_response_id"
        )
    entry = store.get(principal, previous)
    if entry is None:
        raise PreviousResponseNotFoundError(
            f"Previous response with id '{previous}' not found.", param="previous_response_id"
        )
    return entry.conversation


def _keep(
    store: ResponseStore,
    principal: Principal,
    body: dict[str, Any],
    response: dict[str, Any],
    conversation: list[dict[str, Any]],
) -> None:
    if body.get("store", True) is not False:
        whole = [*conversation, *conversation_of(response["output"])]
        store.put(principal, response, whole, input_items(body["input"]))


async def _entry(http: web.Request, gateway: Gateway, store: ResponseStore) -> Stored:
    response_id = http.match_info["response_id"]
    principal = (await gateway.identify(http.headers)).principal
    entry = store.get(principal, response_id)
    if entry is None:
        raise _not_found(response_id)
    return entry


def _not_found(response_id: str) -> ResponseNotFoundError:
    return ResponseNotFoundError(f"No response found with id '{response_id}'.", param="response_id")


def _text(response: dict[str, Any]) -> str:
    """The response's text, for a request log that captures content."""
    return "".join(
        part.get("text", "")
        for item in response["output"]
        if item.get("type") == "message"
        for part in item.get("content", [])
    )
