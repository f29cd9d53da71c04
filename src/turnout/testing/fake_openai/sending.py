"""Writing an answer to the wire: whole JSON or server-sent events, broken as its fault says.

Only the faults that strike after the headers act here (``slow_first_token``, ``cut``,
``stall``, ``malformed``, ``no_done``, ``no_finish``, ``error_event``); the server deals with
the others before an answer exists. Also the two ways to end a connection early: a reset and
a hang-up.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import dataclass
from typing import Any

import msgspec
from aiohttp import web

from turnout.testing.fake_openai.answers import Answer
from turnout.testing.fake_openai.faults import Fault

#: The garbage event of a ``malformed`` fault: the start of a JSON object that never ends.
MALFORMED_EVENT = b"data: {not json\n\n"
DONE_EVENT = b"data: [DONE]\n\n"


@dataclass(frozen=True, slots=True)
class Exchange:
    """One request being answered: what arrived, when, and the fault it drew."""

    request: web.Request
    body: Any
    fault: Fault | None
    arrived: float


async def send_whole(
    exchange: Exchange, answer: dict[str, Any], headers: dict[str, str]
) -> web.StreamResponse:
    """A JSON answer, broken as its fault says when that is an after-header one."""
    body = msgspec.json.encode(answer)
    fault = exchange.fault
    if fault is None or fault.kind not in ("slow_first_token", "cut", "stall", "malformed"):
        return json_response(body, headers)
    if fault.kind == "malformed":
        body = MALFORMED_EVENT
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
    """Server-sent events, one real write per event, so that clients see them arrive.

    ``chunk_delay`` is the seconds between two events (not before the first).
    """
    headers["Content-Type"] = "text/event-stream; charset=utf-8"
    headers["Cache-Control"] = "no-cache"
    response = web.StreamResponse(headers=headers)
    await response.prepare(exchange.request)
    fault = exchange.fault
    kind = None if fault is None else fault.kind
    content, closing = answer.events()
    events = [_event(data) for data in (content if kind == "no_finish" else content + closing)]
    if fault is not None and kind in ("cut", "stall", "malformed", "error_event"):
        at = min(fault.after_chunks, len(events))
        if kind == "malformed":
            events.insert(at, MALFORMED_EVENT)
        else:
            del events[at:]
        if kind == "error_event":
            events.append(_event(msgspec.json.encode(fault.body())))
    if kind not in ("cut", "stall", "no_done", "no_finish", "error_event"):
        events.append(DONE_EVENT)
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


def reset_connection(request: web.Request) -> web.StreamResponse:
    """Reset the connection: SO_LINGER 0 makes the close send RST instead of FIN."""
    transport = request.transport
    if transport is not None:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()
    return web.Response()  # aiohttp finds the connection gone and gives up quietly


def hang_up(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Close mid-answer: a FIN after what was written, so the client reads it all, then EOF."""
    if request.transport is not None:
        request.transport.close()
    return response


def json_response(body: Any, headers: dict[str, str], status: int = 200) -> web.Response:
    encoded = body if isinstance(body, bytes) else msgspec.json.encode(body)
    return web.Response(
        body=encoded, status=status, headers=headers, content_type="application/json"
    )


def _event(data: bytes) -> bytes:
    return b"data: " + data + b"\n\n"
