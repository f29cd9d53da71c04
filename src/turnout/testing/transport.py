"""A transport that answers from a function: provider and adapter tests without sockets.

``MockTransport(handler)`` hands each outgoing `UpstreamRequest` to ``handler``, which returns
the reply (an `UpstreamReply`, or a `MockStream` whose body comes in pieces), sync or async, or
raises what the call should fail with (an `UpstreamTimeoutError`, say). A `MockStream`'s
pieces may raise too, as a connection breaking mid-stream would (`StreamInterruptedError`).
Either reply serves either kind of call: read whole, a stream's pieces are joined; streamed,
a whole body is one piece. Reply headers are looked up without regard to case, as over HTTP.
The transport keeps every request it was given and how many
streams are still open, so a test can check what an adapter sent and that its reader let go.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from multidict import CIMultiDict, CIMultiDictProxy

from turnout.config.router import Timeouts
from turnout.upstream import UpstreamReply, UpstreamRequest


@dataclass(frozen=True, slots=True)
class MockStream:
    """A reply whose body arrives in `pieces` (an iterable, or an async one that may wait or
    raise between pieces)."""

    pieces: Iterable[bytes] | AsyncIterable[bytes]
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


Answer = UpstreamReply | MockStream
Handler = Callable[[UpstreamRequest], Answer | Awaitable[Answer]]


class MockTransport:
    """A `turnout.upstream.Transport` whose every call is answered by ``handler``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        #: Every request sent or opened, in order.
        self.requests: list[UpstreamRequest] = []
        #: Streams opened and not closed yet.
        self.open_streams = 0
        self.closed = False

    async def send(self, call: UpstreamRequest, timeouts: Timeouts) -> UpstreamReply:
        answer = await self._answer(call)
        if isinstance(answer, UpstreamReply):
            return UpstreamReply(answer.status, _headers(answer.headers), answer.body)
        body = b"".join([piece async for piece in _pieces(answer.pieces)])
        return UpstreamReply(answer.status, _headers(answer.headers), body)

    async def open(self, call: UpstreamRequest, timeouts: Timeouts) -> _OpenStream:
        answer = await self._answer(call)
        if isinstance(answer, UpstreamReply):
            answer = MockStream((answer.body,), answer.status, answer.headers)
        self.open_streams += 1
        return _OpenStream(self, answer)

    async def aclose(self) -> None:
        self.closed = True

    async def _answer(self, call: UpstreamRequest) -> Answer:
        if self.closed:
            raise RuntimeError("the upstream transport is closed")
        self.requests.append(call)
        answer = self.handler(call)
        if inspect.isawaitable(answer):
            answer = await answer
        return answer


class _OpenStream:
    """An opened `MockStream` (a `turnout.upstream.UpstreamStream`)."""

    def __init__(self, transport: MockTransport, answer: MockStream) -> None:
        self._transport = transport
        self._answer = answer
        self._open = True
        self.status = answer.status
        self.headers = _headers(answer.headers)

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.pieces()])

    async def pieces(self) -> AsyncIterator[bytes]:
        async for piece in _pieces(self._answer.pieces):
            yield piece

    def close(self) -> None:
        if self._open:
            self._open = False
            self._transport.open_streams -= 1


async def _pieces(pieces: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(pieces, AsyncIterable):
        async for piece in pieces:
            yield piece
    else:
        for piece in pieces:
            yield piece


def _headers(headers: Mapping[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(headers))
