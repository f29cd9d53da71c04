"""Writing an answer to the wire, broken as its fault says, in any provider's framing.

`send_whole` writes a JSON body and `send_stream` a list of already framed events (SSE lines,
AWS event-stream frames); both act only on the faults that strike after the headers, the server
having dealt with the others before an answer exists. Also the two ways to end a connection
early, a reset and a hang-up, and `forever` for the faults that fall silent.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from fakes.fake_server.faults import MID_STREAM_KINDS, WHOLE_ANSWER_KINDS, FaultBase

F = TypeVar("F", bound=FaultBase)

#: What a ``malformed`` fault sends instead of a whole JSON answer.
NOT_JSON_BODY = b"{not json"
#: The headers of a stream of server-sent events.
SSE_HEADERS: Mapping[str, str] = {
    "Content-Type": "text/event-stream; charset=utf-8",
    "Cache-Control": "no-cache",
}


async def send_whole(
    request: web.Request,
    answer: Any,
    headers: dict[str, str],
    fault: FaultBase | None,
    *,
    garbage: bytes = NOT_JSON_BODY,
) -> web.StreamResponse:
    """A JSON answer (encoded, or to encode), broken as its fault says when that is an
    after-header one; ``garbage`` is what a ``malformed`` fault sends instead."""
    body = answer if isinstance(answer, bytes) else msgspec.json.encode(answer)
    if fault is None or fault.kind not in WHOLE_ANSWER_KINDS:
        return json_response(body, headers)
    if fault.kind == "malformed":
        body = garbage
    response = web.StreamResponse(headers=headers)
    response.content_type, response.content_length = "application/json", len(body)
    await response.prepare(request)
    if fault.kind == "slow_first_token":
        await asyncio.sleep(fault.seconds)
    elif fault.kind == "stall":
        await forever()
    elif fault.kind == "cut":
        await response.write(body[: len(body) // 2])
        return hang_up(request, response)
    await response.write(body)
    await response.write_eof()
    return response


async def send_stream(
    request: web.Request,
    headers: dict[str, str],
    events: list[bytes],
    fault: F | None,
    chunk_delay: float,
    *,
    garbage: bytes,
    error_event: Callable[[F], bytes],
    done: bytes | None = None,
) -> web.StreamResponse:
    """Framed events, one real write each, so that clients see them arrive.

    A mid-stream fault strikes after the fault's count of events: ``malformed`` inserts
    ``garbage`` there, ``error_event`` replaces the rest with ``error_event(fault)``, ``cut`` and
    ``stall`` drop the rest. ``done`` ends a stream that none of them (nor ``no_finish`` or
    ``no_done``) broke. ``chunk_delay`` is the seconds between two events (not before the first).
    """
    kind = None if fault is None else fault.kind
    if fault is not None and kind in MID_STREAM_KINDS:
        at = min(fault.strikes_after, len(events))
        if kind == "malformed":
            events.insert(at, garbage)
        else:
            del events[at:]
        if kind == "error_event":
            events.append(error_event(fault))
    if done is not None and kind not in ("cut", "stall", "no_done", "no_finish", "error_event"):
        events.append(done)
    response = web.StreamResponse(headers=headers)
    await response.prepare(request)
    if fault is not None and kind == "slow_first_token":
        await asyncio.sleep(fault.seconds)
    for index, event in enumerate(events):
        if index and chunk_delay > 0:
            await asyncio.sleep(chunk_delay)
        await response.write(event)
    if kind == "cut":
        return hang_up(request, response)
    if kind == "stall":
        await forever()
    await response.write_eof()
    return response


async def forever() -> None:
    """Wait until cancelled: by the client leaving or by the server closing."""
    await asyncio.get_running_loop().create_future()


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
