"""A broken or hostile upstream cannot hold the gateway's memory: bodies read whole are capped,
error bodies are cut to what their message needs, and an event stream's event is bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from turnout.config.router import Timeouts
from turnout.errors import StreamInterruptedError, UpstreamConnectionError
from turnout.providers import sse
from turnout.providers.sse import SSEDecoder
from turnout.upstream import UpstreamRequest
from turnout.upstream import aiohttp as transport_module
from turnout.upstream.aiohttp import AiohttpTransport

TIMEOUTS = Timeouts(connect=2.0)
PIECE = b"x" * 1024


@asynccontextmanager
async def upstream(status: int, pieces: int, *, declared: bool) -> AsyncIterator[str]:
    """Answers `pieces` KiB, with a Content-Length (`declared`) or chunked."""

    async def answer(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(status=status)
        if declared:
            response.content_length = pieces * len(PIECE)
        await response.prepare(request)
        for _ in range(pieces):
            await response.write(PIECE)
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_post("/{path:.*}", answer)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/v1/chat/completions"
    finally:
        await runner.cleanup()


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_a_reply_over_the_cap_fails_as_a_connection_fault(
    declared: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(transport_module, "MAX_REPLY_BYTES", 64 * 1024)
    transport = AiohttpTransport()
    try:
        async with upstream(200, 100, declared=declared) as url:
            with pytest.raises(UpstreamConnectionError, match="more than"):
                await transport.send(UpstreamRequest(url, b"{}"), TIMEOUTS)
        async with upstream(200, 60, declared=declared) as url:
            reply = await transport.send(UpstreamRequest(url, b"{}"), TIMEOUTS)
            assert len(reply.body) == 60 * 1024
    finally:
        await transport.aclose()


@pytest.mark.parametrize("declared", [True, False], ids=["content-length", "chunked"])
async def test_an_error_body_is_cut_to_its_cap(declared: bool) -> None:
    transport = AiohttpTransport()
    cap = transport_module.MAX_ERROR_BYTES
    try:
        async with upstream(500, 200, declared=declared) as url:
            reply = await transport.send(UpstreamRequest(url, b"{}"), TIMEOUTS)
            assert reply.status == 500
            assert len(reply.body) == cap
            stream = await transport.open(UpstreamRequest(url, b"{}"), TIMEOUTS)
            try:
                assert len(await stream.read()) == cap
            finally:
                stream.close()
    finally:
        await transport.aclose()


def test_an_event_stream_line_without_end_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sse, "MAX_EVENT_BYTES", 4096)
    decoder = SSEDecoder()
    assert decoder.feed(b"data: {}\n\n")[0].data == b"{}"
    with pytest.raises(StreamInterruptedError, match="larger than"):
        for _ in range(10):
            decoder.feed(b"data: " + PIECE)
    decoder = SSEDecoder()
    with pytest.raises(StreamInterruptedError, match="larger than"):
        for _ in range(10):
            decoder.feed(b"data: " + PIECE + b"\n")
    decoder = SSEDecoder()
    for _ in range(10):  # many events, each small: nothing accumulates
        assert len(decoder.feed(b"data: " + PIECE + b"\n\n")) == 1
