"""Relaying a routed stream to its caller as server-sent events.

The response begins only once the router has the stream's first chunk, so every earlier
failure stayed invisible and the routing headers are known. After that, a failure ends the
stream with an error event and no ``data: [DONE]``, so it cannot pass for complete. Either way
the stream's last line before that end is its summary (`turnout.gateway.turnout_headers`).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Mapping

import msgspec
from aiohttp import web

from turnout.errors import DeadlineExceededError, TurnoutError
from turnout.gateway.exchange import Exchange
from turnout.gateway.gateway import Gateway
from turnout.gateway.requests import sdk_wait
from turnout.gateway.turnout_headers import served_headers, stream_summary
from turnout.router.streaming import Stream
from turnout.wire import Request, StreamChunk

logger = logging.getLogger("turnout.gateway")

_ENCODE = msgspec.json.Encoder().encode
_SSE_DONE = b"data: [DONE]\n\n"


async def relay_stream(
    http: web.Request,
    gateway: Gateway,
    request: Request,
    started: float,
    headers: Mapping[str, str],
    exchange: Exchange,
    capture: bool,
) -> web.StreamResponse:
    """Relay chunk by chunk (see the module docstring). `headers`: the answer's own (its ids,
    its key's limits); `exchange`: learns how the stream went; `capture`: gather its text."""
    stream = await open_stream(gateway, request, started, http.headers, exchange)
    response = stream_response(stream, started, headers, exchange)
    text: list[str] | None = [] if capture else None
    try:
        bound_send_buffer(http, gateway.config.server.stream_send_buffer_bytes)
        await response.prepare(http)
        try:
            async for chunk in stream:
                if text is not None:
                    _gather(chunk, text)
                await response.write(b"data: " + chunk.encode() + b"\n\n")
        except TurnoutError as error:
            stream_broken(exchange, stream, error)
            body = gateway.redactor.error_body(error)
            await response.write(end_summary(request, stream) + b"data: " + _ENCODE(body) + b"\n\n")
            return response
        await response.write(end_summary(request, stream) + _SSE_DONE)
    except ConnectionError:
        # The client went away: close the upstream, free the deployment, write nothing more.
        exchange.error = "cancelled"
        await stream.aclose()
        return response
    finally:
        await stream.aclose()
        if text is not None:
            exchange.answer = "".join(text)
    return response


def stream_response(
    stream: Stream, started: float, headers: Mapping[str, str], exchange: Exchange
) -> web.StreamResponse:
    """The (unprepared) response relaying `stream`, whose first chunk is in: event-stream
    headers, who serves it and the gateway's time so far, then the answer's own `headers`;
    `exchange` learns the time to its first byte."""
    first_byte = exchange.first_byte = time.perf_counter() - started
    upstream = stream.ttft + sum(a.duration for a in stream.attempts)
    deployment = stream.deployment
    return web.StreamResponse(
        headers={
            "content-type": "text/event-stream",
            "cache-control": "no-cache",
            **served_headers(
                deployment.name,
                deployment.model_name,
                len(stream.attempts) + 1,
                first_byte - upstream,
                None,
            ),
            **headers,
        }
    )


def stream_broken(exchange: Exchange, stream: Stream, error: TurnoutError) -> None:
    """Note and log a stream that broke after its answer began (too late to fail over)."""
    exchange.error = error.kind.value
    logger.warning("stream-broken deployment=%s error=%s", stream.deployment.name, error.kind.value)


def end_summary(request: Request, stream: Stream) -> bytes:
    """The stream's summary comment line, written just before its last event, whether it
    ended well or broke (`turnout.gateway.turnout_headers.stream_summary`)."""
    deployment = stream.deployment
    return stream_summary(
        request.public_id, deployment.name, deployment.model_name, stream.attempts, stream.usage
    )


def _gather(chunk: StreamChunk, text: list[str]) -> None:
    """The first choice's text of a chunk, kept for the request log (content capture only)."""
    choices = chunk.data.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return
    first = choices[0]
    delta = first.get("delta")
    piece = delta.get("content") if isinstance(delta, dict) else first.get("text")
    if isinstance(piece, str):
        text.append(piece)


async def open_stream(
    gateway: Gateway,
    request: Request,
    started: float,
    headers: Mapping[str, str],
    exchange: Exchange,
) -> Stream:
    """The router's stream once its first chunk is in, within the SDK's read timeout: the
    response begins with that chunk, and an SDK that sees nothing by then gives up and
    repeats the request. Past it, the caller gets a 504 that advises no repeat."""
    wait = sdk_wait(headers)
    deadline = exchange.deadline
    if wait is None or (deadline is not None and deadline <= started + wait):
        return await gateway.router.stream(request)
    exchange.deadline = started + wait
    clock = gateway.clock
    try:
        async with clock.timeout_at(clock.now() + started + wait - time.perf_counter()):
            return await gateway.router.stream(request)
    except TimeoutError:
        raise DeadlineExceededError(
            f"No answer began within the client's read timeout (of which {wait:.3g}s are "
            "kept, the rest being the answer's way back)"
        ) from None


def bound_send_buffer(http: web.Request, size: int) -> None:
    """Fix the connection's kernel send buffer at `size` bytes (0: leave it self-tuning).

    Between the upstream and the client a stream is buffered only in fixed amounts: the
    upstream client's read buffer, the transport's write buffer (``response.write`` waits for it
    to drain) and the kernel's socket buffers. The kernel tunes its send buffer up to megabytes
    for a client that stops reading; fixed, it bounds what a stalled client holds up, and a token
    stream never needs more to keep a reading client fed.
    """
    transport = http.transport
    sock = None if not size or transport is None else transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
