"""Writing an answer to the wire: whole JSON or server-sent events, broken as its fault says.

Only the faults that strike after the headers act here (``slow_first_token``, ``cut``,
``stall``, ``malformed``, ``no_done``, ``no_finish``, ``error_event``); the server deals with
the others before an answer exists. The breaking itself is `fakes.fake_server`'s;
what is OpenAI's is the framing: ``data:`` lines, ended by ``[DONE]``.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from fakes.fake_openai.answers import Answer
from fakes.fake_openai.faults import Fault
from fakes.fake_openai.responses import error_event
from fakes.fake_server import sending
from fakes.fake_server.server import Exchange

#: The garbage event of a ``malformed`` fault: the start of a JSON object that never ends.
MALFORMED_EVENT = b"data: {not json\n\n"
DONE_EVENT = b"data: [DONE]\n\n"


async def send_whole(
    exchange: Exchange[Fault], answer: dict[str, Any], headers: dict[str, str]
) -> web.StreamResponse:
    """A JSON answer, broken as its fault says when that is an after-header one."""
    return await sending.send_whole(
        exchange.request, answer, headers, exchange.fault, garbage=MALFORMED_EVENT
    )


async def send_stream(
    exchange: Exchange[Fault], answer: Answer, headers: dict[str, str], chunk_delay: float
) -> web.StreamResponse:
    """The answer's chunks as ``data:`` events, ended by ``[DONE]`` unless a fault says not."""
    headers.update(sending.SSE_HEADERS)
    fault = exchange.fault
    content, closing = answer.events()
    payloads = content if fault is not None and fault.kind == "no_finish" else content + closing
    return await sending.send_stream(
        exchange.request,
        headers,
        [_event(data) for data in payloads],
        fault,
        chunk_delay,
        garbage=MALFORMED_EVENT,
        error_event=lambda fault: _event(msgspec.json.encode(fault.body())),
        done=DONE_EVENT,
    )


async def send_events(
    exchange: Exchange[Fault], framed: list[bytes], headers: dict[str, str], chunk_delay: float
) -> web.StreamResponse:
    """A Responses API stream: typed events, no ``[DONE]``; its error event is the Responses
    API's own (`fakes.fake_openai.responses.error_event`)."""
    headers.update(sending.SSE_HEADERS)
    fault = exchange.fault
    if fault is not None and fault.kind == "no_finish":
        framed = framed[:-1]
    return await sending.send_stream(
        exchange.request,
        headers,
        framed,
        fault,
        chunk_delay,
        garbage=MALFORMED_EVENT,
        error_event=error_event,
    )


def _event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"
