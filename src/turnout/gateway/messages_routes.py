"""Anthropic's Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

A Messages request is translated into chat (`turnout.gateway.messages_request`), routed like
any chat request (`turnout.gateway.ingress`), and answered in Anthropic's shape: a ``message``
object (`turnout.gateway.messages_answer`) or its stream of events
(`turnout.gateway.messages_stream`); errors, mid-stream ones included, in Anthropic's error
shape (`turnout.gateway.messages_errors`). The request also carries the caller's own body and
its ``anthropic-version`` and ``anthropic-beta`` headers, which an Anthropic deployment is sent
instead of the translation, and whose answer is relayed as it came
(`turnout.providers.anthropic.native`). The caller's key may come as ``x-api-key`` (the
Anthropic SDKs' way) or as a bearer token.

``count_tokens`` is answered by Anthropic itself when the model's group has an Anthropic
deployment, else by the gateway's own estimate (`turnout.gateway.messages_count`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from aiohttp import web

from turnout.gateway.body import read_body
from turnout.gateway.gateway import Gateway
from turnout.gateway.ingress import ERROR_SHAPE, Handler, StreamEvents, translated_route
from turnout.gateway.messages_answer import message
from turnout.gateway.messages_count import COUNTED_BY_HEADER, count_input_tokens
from turnout.gateway.messages_errors import error_body
from turnout.gateway.messages_request import chat_body, stop_sequences
from turnout.gateway.messages_stream import MessageEvents
from turnout.gateway.requests import parse_body
from turnout.gateway.virtual_keys import admit
from turnout.providers.anthropic.native import carrying, takes_messages
from turnout.router.result import Response
from turnout.wire import Operation, Principal, Request

MESSAGES_PATH = "/v1/messages"
COUNT_TOKENS_PATH = "/v1/messages/count_tokens"
_ENCODE = msgspec.json.Encoder().encode


class MessagesTranslation:
    """One Messages request, translated for the chat router, carrying itself along for the
    deployments that take it natively."""

    __slots__ = ("_native", "_stops", "chat", "prompt")

    def __init__(self, body: dict[str, Any]) -> None:
        self.chat = chat_body(body)
        self._native = body
        self.prompt: object = body.get("messages")
        self._stops = stop_sequences(body)

    def routed(self, request: Request, headers: Mapping[str, str]) -> Request:
        return carrying(request, self._native, headers)

    def answer(self, response: Response, request: Request) -> tuple[bytes, str | None]:
        raw = response.raw
        if raw is not None and takes_messages(response.deployment):
            return raw, response.text  # the upstream's own Message
        answer = message(
            response.body, response.usage, request.public_id, request.model, self._stops
        )
        texts = [block["text"] for block in answer["content"] if block["type"] == "text"]
        return _ENCODE(answer), "".join(texts)

    def events(self, request: Request) -> StreamEvents:
        return MessageEvents(self._stops, request.public_id, request.model, request.prompt_tokens)

    async def keep(self) -> None:
        """The Messages API is stateless: nothing of an answer outlives its request."""


def add_messages_routes(app: web.Application, key: web.AppKey[Gateway]) -> None:
    """Serve the Messages API on `app`, whose gateway is `app[key]`."""
    handler = translated_route("messages", _translate, key, error_body)
    app.router.add_post(MESSAGES_PATH, handler)
    app.router.add_post(COUNT_TOKENS_PATH, _count_tokens(key))


async def _translate(body: dict[str, Any], _caller: Principal) -> MessagesTranslation:
    """A Messages request's translation, the same whoever calls (the API keeps no state)."""
    return MessagesTranslation(body)


def _count_tokens(key: web.AppKey[Gateway]) -> Handler:
    async def count_tokens(http: web.Request) -> web.Response:
        http[ERROR_SHAPE] = error_body
        gateway = http.app[key]
        caller = await gateway.identify(http.headers)
        body = parse_body(await read_body(http, gateway.config.server.max_body_bytes))
        chat = chat_body(body, counting=True)
        request = Request(model=chat["model"], body=chat, operation=Operation.CHAT)
        router = gateway.router
        if caller.grant is not None:
            admit(caller.grant, request, router.group_of)
        group = router.group_of(request.model)
        native = carrying(request, body, http.headers)
        tokens, counted_by = await count_input_tokens(router, group, native)
        return web.Response(
            body=_ENCODE({"input_tokens": tokens}),
            content_type="application/json",
            headers={COUNTED_BY_HEADER: counted_by},
        )

    return count_tokens
