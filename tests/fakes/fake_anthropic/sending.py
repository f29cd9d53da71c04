"""Writing an answer's named SSE events to the wire, broken as told (a whole Message is written
by `fakes.fake_server.sending.send_whole`).

Only the faults that strike after the headers act here (``slow_first_token``, ``cut``,
``stall``, ``malformed``, ``no_stop``, ``no_finish``, ``error_event``); the server deals with the
others before an answer exists. The breaking itself is `fakes.fake_server`'s; what is
Anthropic's is the framing: named events, and which of them a ``no_stop`` or ``no_finish`` drops.
"""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from fakes.fake_anthropic.answers import Answer
from fakes.fake_anthropic.faults import Fault
from fakes.fake_server import sending
from fakes.fake_server.server import Exchange

#: The garbage event of a ``malformed`` fault: the start of a JSON object that never ends.
MALFORMED_EVENT = b"event: content_block_delta\ndata: {not json\n\n"


def sse_event(name: str, data: dict[str, Any]) -> bytes:
    """One named server-sent event, as Anthropic writes them."""
    return b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"


async def send_stream(
    exchange: Exchange[Fault], answer: Answer, headers: dict[str, str], chunk_delay: float
) -> web.StreamResponse:
    """The answer's named events, ``message_start`` to ``message_stop``, broken as told."""
    headers.update(sending.SSE_HEADERS)
    fault = exchange.fault
    kind = None if fault is None else fault.kind
    content, closing = answer.events()
    if kind == "no_finish":
        closing = []
    elif kind == "no_stop":
        closing = closing[:-1]
    return await sending.send_stream(
        exchange.request,
        headers,
        [sse_event(name, data) for name, data in content + closing],
        fault,
        chunk_delay,
        garbage=MALFORMED_EVENT,
        error_event=lambda fault: sse_event("error", fault.body()),
    )
