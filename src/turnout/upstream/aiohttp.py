"""The HTTP transport: turnout's one user of the aiohttp client.

It owns one connection pool with keep-alive shared by all upstreams, connect timeouts, and the
mapping of aiohttp's failures into turnout's error tree, done here and only here. Adapters build
requests and read replies; they never see a socket.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit

import aiohttp

from turnout.config.router import Timeouts
from turnout.errors import (
    ProviderError,
    StreamInterruptedError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from turnout.upstream import UpstreamReply, UpstreamRequest

#: Applied when a deployment sets no connect timeout: a dead host should fail fast.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: Most bytes of a streamed body handed on at once (whatever has arrived, up to this).
PIECE_BYTES = 16 * 1024
#: Largest reply body read whole. The largest real ones are embedding batches (2,048 inputs of
#: 3,072 dimensions are about 130 MB of JSON); anything beyond is a broken or hostile upstream
#: that would otherwise hold the gateway's memory.
MAX_REPLY_BYTES = 256 * 1024 * 1024
#: Most of an error reply's body kept: providers' error bodies are a few hundred bytes, and only
#: their message is ever used.
MAX_ERROR_BYTES = 64 * 1024


class AiohttpStream:
    """An open streamed reply (`turnout.upstream.UpstreamStream`) over an aiohttp response."""

    __slots__ = ("_response", "_url", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self._response = response
        self._url = url
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def read(self) -> bytes:
        """The body of an error reply, its first `MAX_ERROR_BYTES` at most."""
        try:
            return await _read_capped(self._response, MAX_ERROR_BYTES, truncate=True)
        except (TimeoutError, aiohttp.ClientError, ConnectionError):
            return b""

    async def pieces(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive, at most `PIECE_BYTES` at a time; a broken connection
        raises `StreamInterruptedError`.

        Each piece is decoded into events at once, and they are held until the caller has
        taken them all: small pieces keep that to a few kilobytes while the caller waits on a
        slow client, where the whole read buffer (hundreds of kilobytes after a burst) would be
        decoded instead. Slicing here costs nothing measurable; small reads from aiohttp
        (`iter_chunked`) cost the relay about a fifth more CPU.
        """
        try:
            async for piece in self._response.content.iter_any():
                if len(piece) <= PIECE_BYTES:
                    yield piece
                    continue
                for start in range(0, len(piece), PIECE_BYTES):
                    yield piece[start : start + PIECE_BYTES]
        except (aiohttp.ClientError, ConnectionError) as exc:
            raise StreamInterruptedError(
                f"the stream from {_host(self._url)} broke: {type(exc).__name__}"
            ) from None

    def close(self) -> None:
        """Drop the connection (a stream read to its end is released to the pool instead)."""
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpTransport:
    """The shared HTTP client, a `turnout.upstream.Transport`. Its session is made at the first
    call, inside the running event loop; `aclose` releases it for good."""

    __slots__ = ("_closed", "_connector_limits", "_session")

    def __init__(self, *, max_connections: int = 1000, per_host: int = 0) -> None:
        self._connector_limits = (max_connections, per_host)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _client(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            if self._closed:
                # Opening a new pool here would leak it: nobody closes this transport again.
                raise RuntimeError("the upstream transport is closed")
            limit, per_host = self._connector_limits
            connector = aiohttp.TCPConnector(
                limit=limit, limit_per_host=per_host, keepalive_timeout=60, ttl_dns_cache=300
            )
            session = self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=True,
                timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=("User-Agent",),
            )
        return session

    @property
    def closed(self) -> bool:
        return self._closed

    async def aclose(self) -> None:
        """Close the pool and every connection in it. Idempotent."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def send(self, call: UpstreamRequest, timeouts: Timeouts) -> UpstreamReply:
        """One call, read whole."""
        client = self._client()
        try:
            async with client.request(
                call.method,
                call.url,
                data=call.body,
                headers=call.headers,
                timeout=_timeout(timeouts),
            ) as response:
                failed = response.status >= 400
                cap = MAX_ERROR_BYTES if failed else MAX_REPLY_BYTES
                body = await _read_capped(response, cap, truncate=failed)
                return UpstreamReply(response.status, response.headers, body)
        except ProviderError:
            raise
        except Exception as exc:
            raise transport_error(exc, _host(call.url)) from None

    async def open(self, call: UpstreamRequest, timeouts: Timeouts) -> AiohttpStream:
        """A call whose body will be streamed: returns once the headers arrived."""
        client = self._client()
        try:
            response = await client.request(
                call.method,
                call.url,
                data=call.body,
                headers=call.headers,
                timeout=_timeout(timeouts),
            )
        except Exception as exc:
            raise transport_error(exc, _host(call.url)) from None
        return AiohttpStream(response, call.url)


async def _read_capped(response: aiohttp.ClientResponse, cap: int, *, truncate: bool) -> bytes:
    """The body, at most `cap` bytes: beyond it the rest is dropped with the connection
    (`truncate`, for error replies whose message is all that is used) or the reply fails."""
    declared = response.content_length
    if declared is not None and declared <= cap:
        return await response.read()
    if declared is not None and not truncate:
        response.close()
        raise _too_large(response, cap)
    pieces: list[bytes] = []
    size = 0
    async for piece in response.content.iter_any():
        size += len(piece)
        if size > cap:
            response.close()
            if truncate:
                pieces.append(piece[: cap - (size - len(piece))])
                break
            raise _too_large(response, cap)
        pieces.append(piece)
    return b"".join(pieces)


def _too_large(response: aiohttp.ClientResponse, cap: int) -> UpstreamConnectionError:
    return UpstreamConnectionError(
        f"{_host(str(response.url))} sent a reply of more than {cap // (1024 * 1024)} MiB"
    )


def transport_error(exc: BaseException, host: str) -> ProviderError:
    """Transport failures, mapped once: what failed and where, never a URL's credentials."""
    if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeoutError(f"{host} did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectionError(f"could not connect to {host}")
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, ConnectionError)):
        return UpstreamConnectionError(f"{host} closed the connection ({type(exc).__name__})")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamConnectionError(f"{host} sent a broken body")
    return UpstreamConnectionError(f"calling {host} failed: {type(exc).__name__}")


def _host(url: str) -> str:
    parts = urlsplit(url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "?"


_TIMEOUTS: dict[float, aiohttp.ClientTimeout] = {}


def _timeout(timeouts: Timeouts) -> aiohttp.ClientTimeout:
    """The client's timeout for a deployment's connect limit (built once per distinct limit)."""
    connect = timeouts.connect or DEFAULT_CONNECT_TIMEOUT
    found = _TIMEOUTS.get(connect)
    if found is None:
        found = _TIMEOUTS[connect] = aiohttp.ClientTimeout(
            total=None, connect=connect, sock_connect=connect
        )
    return found
