"""`AiohttpTransport` over real HTTP: replies whole and streamed, its failures as turnout's
errors, and `aclose` releasing every pooled connection for good."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable

import msgspec
import pytest

from fakes.fake_openai import FakeOpenAI, Fault
from turnout.config.router import Timeouts
from turnout.errors import StreamInterruptedError, UpstreamConnectionError
from turnout.upstream import UpstreamRequest
from turnout.upstream.aiohttp import AiohttpTransport

KEY = "sk-fake"
TIMEOUTS = Timeouts(connect=2.0)


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(KEY) as server:
        yield server


def _call(fake: FakeOpenAI, stream: bool = False) -> UpstreamRequest:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    return UpstreamRequest(
        f"{fake.url}/chat/completions",
        msgspec.json.encode({**body, "stream": stream}),
        {"authorization": f"Bearer {KEY}", "content-type": "application/json"},
    )


async def _settled(count: Callable[[], int], expected: int) -> None:
    """Wait (briefly) for the server to see connections come or go."""
    for _ in range(200):
        if count() == expected:
            return
        await asyncio.sleep(0.01)
    assert count() == expected


async def test_a_reply_read_whole_and_a_stream_read_in_pieces(fake: FakeOpenAI) -> None:
    transport = AiohttpTransport()
    try:
        reply = await transport.send(_call(fake), TIMEOUTS)
        assert reply.status == 200
        assert msgspec.json.decode(reply.body)["object"] == "chat.completion"
        assert reply.headers["Content-Type"].startswith("application/json")
        stream = await transport.open(_call(fake, stream=True), TIMEOUTS)
        try:
            body = b"".join([piece async for piece in stream.pieces()])
        finally:
            stream.close()
        assert stream.status == 200
        assert body.endswith(b"data: [DONE]\n\n")
    finally:
        await transport.aclose()


async def test_aclose_releases_every_connection_and_is_final(fake: FakeOpenAI) -> None:
    transport = AiohttpTransport()
    await asyncio.gather(*(transport.send(_call(fake), TIMEOUTS) for _ in range(3)))
    await _settled(lambda: fake.open_connections, 3)  # kept alive in the pool
    await transport.aclose()
    await _settled(lambda: fake.open_connections, 0)
    assert transport.closed
    await transport.aclose()  # idempotent
    # A call after it is a programming error, not an upstream failure (and opens no new pool).
    with pytest.raises(RuntimeError, match="closed"):
        await transport.send(_call(fake), TIMEOUTS)
    with pytest.raises(RuntimeError, match="closed"):
        await transport.open(_call(fake), TIMEOUTS)
    assert fake.open_connections == 0


async def test_closing_an_unused_transport_opens_nothing() -> None:
    transport = AiohttpTransport()
    await transport.aclose()
    assert transport.closed


async def test_transport_failures_are_turnout_errors_naming_only_the_host(
    fake: FakeOpenAI,
) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    transport = AiohttpTransport()
    try:
        refused = UpstreamRequest(f"http://user:secret@127.0.0.1:{port}/v1/chat", b"{}")
        with pytest.raises(UpstreamConnectionError) as caught:
            await transport.send(refused, TIMEOUTS)
        assert caught.value.message == f"could not connect to 127.0.0.1:{port}"
        fake.enqueue(Fault("reset"))
        with pytest.raises(UpstreamConnectionError, match=r"127\.0\.0\.1:\d+ closed"):
            await transport.send(_call(fake), TIMEOUTS)
        fake.enqueue(Fault("cut", after_chunks=1))
        stream = await transport.open(_call(fake, stream=True), TIMEOUTS)
        try:
            with pytest.raises(StreamInterruptedError, match=r"the stream from 127\.0\.0\.1"):
                async for _ in stream.pieces():
                    pass
        finally:
            stream.close()
    finally:
        await transport.aclose()
