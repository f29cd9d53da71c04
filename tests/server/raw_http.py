"""Raw HTTP/1.1 over a socket to the gateway, for what an HTTP client library will not send."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway_harness import RunningGateway

BODY = b'{"model": "chat", "messages": [{"role": "user", "content": "Hello"}]}'
#: Generous bound for something configured to happen within a fraction of a second.
WITHIN = 5.0


def port_of(gw: RunningGateway) -> int:
    return int(gw.url.rsplit(":", 1)[1])


@asynccontextmanager
async def connection(
    gw: RunningGateway,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(gw))
    _OPENED[reader] = time.monotonic()
    try:
        yield reader, writer
    finally:
        writer.close()


#: When each test connection was opened: the gateway's timeouts count from then, so a test
#: that is slow to send its first bytes on a loaded machine still measures the whole wait.
_OPENED: weakref.WeakKeyDictionary[asyncio.StreamReader, float] = weakref.WeakKeyDictionary()


async def closed_after(reader: asyncio.StreamReader) -> tuple[float, bytes]:
    """Seconds from opening the connection until the gateway closed it, and everything it sent
    before."""
    started = _OPENED.get(reader, time.monotonic())
    received = b""
    async with asyncio.timeout(WITHIN):
        while chunk := await reader.read(65536):
            received += chunk
    return time.monotonic() - started, received


def request(path: bytes = b"/v1/chat/completions", body: bytes = BODY, **headers: str) -> bytes:
    lines = [b"POST " + path + b" HTTP/1.1", b"Host: gateway", b"Content-Type: application/json"]
    lines += [f"{name.replace('_', '-')}: {value}".encode() for name, value in headers.items()]
    if "Content_Length" not in headers:
        lines.append(b"Content-Length: " + str(len(body)).encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    async with asyncio.timeout(WITHIN):
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode().split("\r\n")
        headers = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(status_line.split()[1]), headers, body
