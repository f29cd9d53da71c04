"""Writing an answer to the wire: a whole Message or its named SSE events, broken as told.

Only the faults that strike after the headers act here (``slow_first_token``, ``cut``,
``stall``, ``malformed``, ``no_stop``, ``no_finish``, ``error_event``); the server deals with the
others before an answer exists. Connection resets and hang-ups are `FakeOpenAI`'s, reused.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from turnout.testing.fake_anthropic.answers import Answer
from turnout.testing.fake_anthropic.faults import Fault
from turnout.testing.fake_openai.sending import hang_up, json_response

#: The garbage event of a ``malformed`` fault: the start of a JSON object that never ends.
MALFORMED_EVENT = b"event: content_block_delta\ndata: {not json\n\n"
_AFTER_HEADERS = ("slow_first_token", "cut", "stall", "malformed")


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request being answered: what arrived, when, and the fault it drew."""

    request: web.Request
    body: Any
    fault: Fault | None
    arrived: float
    request_id: str


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    """One named server-sent event, as Anthropic writes them."""
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


async def send_whole(
    exchange: Exchange, answer: dict[str, Any], headers: dict[str, str]
) -> web.StreamResponse:
    """A JSON answer, broken as its fault says when that is an after-header one."""
    body = msgspec.json.encode(answer)
    fault = exchange.fault
    if fault is None or fault.kind not in _AFTER_HEADERS:
        return json_response(body, headers)
    if fault.kind == "malformed":
        body = b"{not json"
    response = web.StreamResponse(headers=headers)
    response.content_type, response.content_length = "application/json", len(body)
    await response.prepare(exchange.request)
    if fault.kind == "slow_first_token":
        await asyncio.sleep(fault.seconds)
    elif fault.kind == "stall":
        await asyncio.get_running_loop().create_future()
    elif fault.kind == "cut":
        await response.write(body[: len(body) // 2])
        return hang_up(exchange.request, response)
    await response.write(body)
    await response.write_eof()
    return response


async def send_stream(
    exchange: Exchange, answer: Answer, headers: dict[str, str], chunk_delay: float
) -> web.StreamResponse:
    """The answer's events, one real write each, so that clients see them arrive.

    ``chunk_delay`` is the seconds between two events (not before the first).
    """
    headers["Content-Type"] = "text/event-stream; charset=utf-8"
    headers["Cache-Control"] = "no-cache"
    response = web.StreamResponse(headers=headers)
    await response.prepare(exchange.request)
    fault = exchange.fault
    kind = None if fault is None else fault.kind
    content, closing = answer.events()
    if kind == "no_finish":
        closing = []
    elif kind == "no_stop":
        closing = closing[:-1]
    events = [sse_event(name, data) for name, data in content + closing]
    if fault is not None and kind in ("cut", "stall", "malformed", "error_event"):
        at = min(fault.after_chunks, len(events))
        if kind == "malformed":
            events.insert(at, MALFORMED_EVENT)
        else:
            del events[at:]
        if kind == "error_event":
            events.append(sse_event("error", fault.body()))
    if fault is not None and kind == "slow_first_token":
        await asyncio.sleep(fault.seconds)
    for index, event in enumerate(events):
        if index and chunk_delay > 0:
            await asyncio.sleep(chunk_delay)
        await response.write(event)
    if kind == "cut":
        return hang_up(exchange.request, response)
    if kind == "stall":
        await asyncio.get_running_loop().create_future()
    await response.write_eof()
    return response
