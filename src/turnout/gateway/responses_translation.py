"""One Responses API request as a `turnout.gateway.ingress.Translation`.

The request continues the conversation of the caller's stored response it names in
``previous_response_id`` (`turnout.gateway.responses_store`), which is why a translation is
made knowing who calls: another caller's response id is as unknown as one never issued. Its
answer is a ``response`` object, whole (`turnout.gateway.responses_output`) or as its event
stream (`turnout.gateway.responses_events`), and unless the caller says ``store: false`` that
response is kept, with the conversation it ends, once it is complete.

The routed request also carries a Responses body (`turnout.gateway.responses_native`), which a
deployment that speaks the Responses API is sent instead of the chat translation; its answer,
whole or streamed, is relayed as it came.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from turnout.errors import InvalidRequestError
from turnout.gateway.requests import prompt_of
from turnout.gateway.responses_events import ResponseEvents
from turnout.gateway.responses_native import as_sent, carried_body, replay_items, turn_items
from turnout.gateway.responses_output import (
    Draft,
    conversation_of,
    input_items,
    text_of,
    whole_response,
)
from turnout.gateway.responses_request import chat_body
from turnout.gateway.responses_store import ResponseStore, Stored
from turnout.providers.openai_responses import carrying, speaks_responses
from turnout.router.result import Response
from turnout.wire import Principal, Request

_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder(type=dict[str, Any]).decode


class ResponseNotFoundError(InvalidRequestError):
    """A response id this caller has no stored response for (unknown, expired, deleted, not
    stored, or another caller's: all look the same, so ids reveal nothing)."""

    status = 404
    openai_code = "response_not_found"


class PreviousResponseNotFoundError(ResponseNotFoundError):
    openai_code = "previous_response_not_found"


class ResponsesTranslation:
    """One Responses request of `caller`, translated to chat, continuing `previous` (made by
    `translation`, which reads it from `store`); its response is kept in `store` once complete
    (unless the request says ``store: false``)."""

    __slots__ = (
        "_body",
        "_caller",
        "_conversation",
        "_draft",
        "_events",
        "_items",
        "_store",
        "_whole",
        "chat",
        "prompt",
    )

    def __init__(
        self,
        body: dict[str, Any],
        caller: Principal,
        store: ResponseStore,
        previous: Stored | None = None,
    ) -> None:
        history = [] if previous is None else previous.conversation
        self.chat, turn = chat_body(body, history)
        self.prompt = prompt_of(self.chat)
        self._body = body
        self._caller = caller
        self._store = store
        #: The conversation the answer continues: the stored one and this request's turn.
        self._conversation = [*history, *turn]
        #: The stored conversation as Responses items, for a native deployment.
        self._items = [] if previous is None else previous.items
        self._draft = Draft(body)
        #: The whole answer's response, or the stream's events (whichever the request asked).
        self._whole: dict[str, Any] | None = None
        self._events: ResponseEvents | None = None

    def routed(self, request: Request, headers: Mapping[str, str]) -> Request:
        return carrying(request, carried_body(self._body, self._items))

    def answer(self, response: Response, request: Request) -> tuple[bytes, str | None]:
        if response.raw is not None and speaks_responses(response.deployment):
            # The upstream's own response object, with the caller's settings put back.
            whole = self._whole = as_sent(_DECODE(response.raw), self._body)
        else:
            whole = self._whole = whole_response(self._draft, response.body)
        return _ENCODE(whole), text_of(whole)

    def events(self, request: Request) -> ResponseEvents:
        events = self._events = ResponseEvents(self._draft)
        return events

    async def keep(self) -> None:
        final = self._whole if self._events is None else self._events.final
        if final is None or self._body.get("store", True) is False:
            return
        whole = [*self._conversation, *conversation_of(final["output"])]
        items = [*self._items, *turn_items(self._body["input"]), *replay_items(final["output"])]
        listed = input_items(self._body["input"])
        await self._store.put(self._caller, final, whole, listed, items)


async def translation(
    body: dict[str, Any], caller: Principal, store: ResponseStore
) -> ResponsesTranslation:
    """The translation of `caller`'s request `body`, continuing the stored response it names."""
    previous = await _previous(store, caller, body.get("previous_response_id"))
    return ResponsesTranslation(body, caller, store, previous)


async def _previous(store: ResponseStore, caller: Principal, previous: Any) -> Stored | None:
    """The stored response `previous_response_id` continues (none without one)."""
    if previous is None:
        return None
    if not isinstance(previous, str) or not previous:
        raise InvalidRequestError(
            "`previous_response_id` must be a string", param="previous_response_id"
        )
    entry = await store.get(caller, previous)
    if entry is None:
        raise PreviousResponseNotFoundError(
            f"Previous response with id '{previous}' not found.", param="previous_response_id"
        )
    return entry
