"""A client that stops reading a stream holds the gateway to a fixed buffer.

The gateway relays with backpressure: it reads from the upstream only as fast as its client
takes the answer, so a client that stalls stalls the upstream too, after a fixed buffer (the
upstream client's read buffer, the server's transport buffer and the kernels' socket buffers),
however long the answer. Progress is read at the fake's end: how many bytes it managed to write.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

import msgspec
import pytest
from aiohttp import web

from fakes.fake_openai import FakeOpenAI, Fault
from fakes.fake_server.server import Exchange
from gateway_harness import gateway_config, running_gateway
from turnout import Deployment, Secret

#: Words of the long answer, each about a hundred characters: ~40 MB of events in all.
_WORDS = 130_000
_WORD = "x" * 99
#: Bytes of the kernel buffers the test controls: the fake's send and the client's receive.
_KERNEL_BUFFER = 64 * 1024
#: The answer's events carry its text and at least this much JSON each.
_ENVELOPE = 150


class _ProgressFake(FakeOpenAI):
    """`FakeOpenAI`, noting the request it answers so that its send progress can be read."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.answering: web.Request | None = None

    async def _answer(self, exchange: Exchange[Fault]) -> web.StreamResponse:
        self.answering = exchange.request
        _small_buffer(exchange.request.transport, socket.SO_SNDBUF)
        return await super()._answer(exchange)

    @property
    def sent(self) -> int:
        """Bytes of the answer handed to the socket so far (headers included)."""
        request = self.answering
        return 0 if request is None else request.writer.output_size


def _small_buffer(transport: asyncio.BaseTransport | None, option: int) -> None:
    """Fix a socket's kernel buffer small, so that the kernels' share of what is in flight stays
    far below the answer's size."""
    sock = None if transport is None else transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, option, _KERNEL_BUFFER)


async def _settled(fake: _ProgressFake, *, quiet_polls: int = 8, limit: float = 30.0) -> int:
    """The fake's progress once it stopped moving (or the limit passed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    last, quiet = -1, 0
    while quiet < quiet_polls and loop.time() < deadline:
        await asyncio.sleep(0.1)
        now = fake.sent
        quiet = quiet + 1 if now == last else 0
        last = now
    return last


@pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="finds the gateway's socket through /proc"
)
async def test_a_client_that_stops_reading_stops_the_upstream_after_a_fixed_buffer() -> None:
    reply = " ".join([_WORD] * _WORDS)
    async with _ProgressFake(reply=reply) as fake:
        deployment = Deployment(
            model_name="chat",
            provider="openai-compatible",
            model="gpt-4o-mini",
            id="long",
            base_url=fake.url,
            api_key=Secret("sk-fake"),
        )
        async with running_gateway(gateway_config(deployment)) as gateway:
            writer = await _stalled_client(gateway.url)
            try:
                # The client now reads nothing more: the answer must stop flowing.
                sent = await _settled(fake)
                held = _send_buffer_of_peer(writer.get_extra_info("socket"))
            finally:
                writer.close()
            total = len(reply) + _WORDS * _ENVELOPE
            assert 0 < sent < total // 4, (sent, total)
            # The gateway's kernel buffer towards the client stayed at its configured size
            # (Linux reports twice the size set, its bookkeeping included), where the kernel
            # would have grown it to megabytes for a client that reads nothing.
            assert held <= 2 * gateway.gateway.config.server.stream_send_buffer_bytes, held


def _send_buffer_of_peer(client: socket.socket) -> int:
    """SO_SNDBUF of the gateway's end of the client's connection: this process holds both."""
    mine = client.getsockname()
    for name in os.listdir("/proc/self/fd"):
        try:
            probe = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue  # not a socket
        with probe:
            try:
                if probe.type == socket.SOCK_STREAM and probe.getpeername() == mine:
                    return probe.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            except OSError:
                continue  # not connected
    raise AssertionError("the gateway's end of the connection was not found")


async def _stalled_client(url: str) -> asyncio.StreamWriter:
    """A client with a small, fixed receive buffer that asks for a stream, reads its first
    bytes and then nothing more."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _KERNEL_BUFFER)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock, limit=_KERNEL_BUFFER)
    body = msgspec.json.encode(
        {"model": "chat", "messages": [{"role": "user", "content": "Go on"}], "stream": True}
    )
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    writer.write(head.encode() + body)
    assert (await reader.readline()).startswith(b"HTTP/1.1 200")
    assert b"data: " in await reader.readuntil(b"\n\n")
    return writer
