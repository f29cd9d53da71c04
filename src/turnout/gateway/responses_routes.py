"""The Responses API: ``POST /v1/responses``, ``GET`` and ``DELETE /v1/responses/{id}``, and
``GET /v1/responses/{id}/input_items``.

A request is translated to chat (`turnout.gateway.responses_request`, as one
`turnout.gateway.responses_translation.ResponsesTranslation`), served by the chat router
through the chat route's own machinery (`turnout.gateway.ingress`), and answered as a
`response` object (`turnout.gateway.responses_output`) or its event stream
(`turnout.gateway.responses_events`). Unless the caller says ``store: false``, the response and
its conversation are kept (`turnout.gateway.responses_store`) for ``previous_response_id`` and
for reading back, in the store every worker and instance shares
(`turnout.gateway.responses_store_choice`); see docs/responses-api.md for why state, not
deployment affinity.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from turnout.gateway.gateway import Gateway
from turnout.gateway.ingress import translated_route
from turnout.gateway.responses_listing import page
from turnout.gateway.responses_store import ResponseStore, Stored
from turnout.gateway.responses_store_choice import response_store
from turnout.gateway.responses_translation import (
    ResponseNotFoundError,
    ResponsesTranslation,
    translation,
)
from turnout.wire import Principal

#: The paths a client posts a Responses request to (traced like the chat paths).
RESPONSES_PATHS = ("/v1/responses", "/responses")
STORE: web.AppKey[ResponseStore] = web.AppKey("responses_store")
_ENCODE = msgspec.json.Encoder().encode
ExpectHandler = Callable[[web.Request], Awaitable[web.StreamResponse | None]]
_JSON = "application/json"


def add_responses_routes(
    app: web.Application,
    key: web.AppKey[Gateway],
    expect: ExpectHandler,
    shared_dir: str | None = None,
) -> None:
    """Serve the Responses API from the gateway at `app[key]`, with its store (closed with the
    application); `expect` answers a client's ``Expect: 100-continue`` as on the chat route;
    `shared_dir`: the directory the gateway's workers share, when it runs several."""
    app[STORE] = response_store(app[key].config, shared_dir)

    async def close_store(_app: web.Application) -> None:
        await app[STORE].aclose()

    app.on_cleanup.append(close_store)

    async def translate(body: dict[str, Any], caller: Principal) -> ResponsesTranslation:
        return await translation(body, caller, app[STORE])

    create = translated_route("responses", translate, key)

    async def retrieve(http: web.Request) -> web.StreamResponse:
        entry = await _entry(http, app[key], app[STORE])
        return web.Response(body=_ENCODE(entry.response), content_type=_JSON)

    async def delete(http: web.Request) -> web.StreamResponse:
        response_id = http.match_info["response_id"]
        principal = (await app[key].identify(http.headers)).principal
        if not await app[STORE].delete(principal, response_id):
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


async def _entry(http: web.Request, gateway: Gateway, store: ResponseStore) -> Stored:
    response_id = http.match_info["response_id"]
    principal = (await gateway.identify(http.headers)).principal
    entry = await store.get(principal, response_id)
    if entry is None:
        raise _not_found(response_id)
    return entry


def _not_found(response_id: str) -> ResponseNotFoundError:
    return ResponseNotFoundError(f"No response found with id '{response_id}'.", param="response_id")
