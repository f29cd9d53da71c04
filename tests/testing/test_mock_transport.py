"""`MockTransport`: replies from a function, whole or in pieces, sync or async, failures raised
as given; and the seam it stands in: a transport wrapping another sees every provider call
(the way a tracing transport adds ``traceparent``) without an adapter knowing."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from turnout import Deployment, Request, RouterConfig, Secret, open_router
from turnout.config.router import Timeouts
from turnout.errors import StreamInterruptedError, UpstreamTimeoutError
from turnout.providers.anthropic.adapter import create_adapter
from turnout.providers.http import HttpProvider
from turnout.testing import ManualClock, MockStream, MockTransport
from turnout.upstream import Transport, UpstreamReply, UpstreamRequest, UpstreamStream

CALL = UpstreamRequest("http://upstream.test/v1/chat", b"{}", {"x-one": "1"})
TIMEOUTS = Timeouts()
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_a_whole_reply_is_sent_or_streamed_as_one_piece() -> None:
    transport = MockTransport(lambda call: UpstreamReply(201, {"X-Kind": "whole"}, b"abc"))
    reply = await transport.send(CALL, TIMEOUTS)
    assert (reply.status, reply.body) == (201, b"abc")
    assert reply.headers["x-kind"] == "whole"  # looked up without regard to case
    stream = await transport.open(CALL, TIMEOUTS)
    assert (stream.status, stream.headers["X-KIND"]) == (201, "whole")
    assert [piece async for piece in stream.pieces()] == [b"abc"]
    assert transport.open_streams == 1
    stream.close()
    stream.close()
    assert transport.open_streams == 0
    assert transport.requests == [CALL, CALL]


async def test_a_stream_comes_in_its_pieces_or_joined_when_read_whole() -> None:
    transport = MockTransport(lambda call: MockStream([b"one ", b"two"], 200, {"a": "b"}))
    stream = await transport.open(CALL, TIMEOUTS)
    assert [piece async for piece in stream.pieces()] == [b"one ", b"two"]
    assert await stream.read() == b"one two"
    reply = await transport.send(CALL, TIMEOUTS)
    assert (reply.status, reply.body, reply.headers["A"]) == (200, b"one two", "b")


async def test_async_handlers_and_async_pieces_that_break() -> None:
    async def pieces() -> AsyncIterator[bytes]:
        yield b"first"
        await asyncio.sleep(0)
        raise StreamInterruptedError("the stream from upstream.test broke")

    async def handler(call: UpstreamRequest) -> MockStream:
        await asyncio.sleep(0)
        return MockStream(pieces())

    stream = await MockTransport(handler).open(CALL, TIMEOUTS)
    received = []
    with pytest.raises(StreamInterruptedError):
        async for piece in stream.pieces():
            received.append(piece)
    assert received == [b"first"]


async def test_what_the_handler_raises_is_the_calls_failure() -> None:
    def handler(call: UpstreamRequest) -> UpstreamReply:
        raise UpstreamTimeoutError("upstream.test did not answer in time")

    transport = MockTransport(handler)
    with pytest.raises(UpstreamTimeoutError):
        await transport.send(CALL, TIMEOUTS)
    with pytest.raises(UpstreamTimeoutError):
        await transport.open(CALL, TIMEOUTS)
    assert transport.open_streams == 0


async def test_a_closed_transport_refuses_calls() -> None:
    transport = MockTransport(lambda call: UpstreamReply(200, {}, b""))
    await transport.aclose()
    await transport.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await transport.send(CALL, TIMEOUTS)
    assert transport.requests == []


# -- a transport wrapping another --------------------------------------------------------------


class Traced:
    """Adds a ``traceparent`` header to every call, then hands it on: what a tracing transport
    does, written against the protocol alone."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner

    def _traced(self, call: UpstreamRequest) -> UpstreamRequest:
        return replace(call, headers={**call.headers, "traceparent": TRACEPARENT})

    async def send(self, call: UpstreamRequest, timeouts: Timeouts) -> UpstreamReply:
        return await self.inner.send(self._traced(call), timeouts)

    async def open(self, call: UpstreamRequest, timeouts: Timeouts) -> UpstreamStream:
        return await self.inner.open(self._traced(call), timeouts)

    async def aclose(self) -> None:
        await self.inner.aclose()


ANTHROPIC = Deployment(
    model_name="claude",
    provider="anthropic",
    model="claude-sonnet-4-5",
    api_key=Secret("sk-ant-secret"),
)
MESSAGE = (
    b'{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5",'
    b'"content":[{"type":"text","text":"Hi"}],"stop_reason":"end_turn","stop_sequence":null,'
    b'"usage":{"input_tokens":3,"output_tokens":1}}'
)
EVENTS = [
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
    b'"type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],'
    b'"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":0}}}\n\n',
    b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    b'"content_block":{"type":"text","text":""}}\n\n',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    b'"delta":{"type":"text_delta","text":"Hi"}}\n\n',
    b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n',
    b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",'
    b'"stop_sequence":null},"usage":{"output_tokens":1}}\n\n',
    b'event: message_stop\ndata: {"type":"message_stop"}\n\n',
]


def _anthropic(call: UpstreamRequest) -> UpstreamReply | MockStream:
    assert call.url == "https://api.anthropic.com/v1/messages"
    if b'"stream":true' in call.body:
        return MockStream(EVENTS, headers={"content-type": "text/event-stream"})
    return UpstreamReply(200, {"content-type": "application/json"}, MESSAGE)


def _chat(stream: bool = False) -> Request:
    body = {"model": "claude", "messages": [{"role": "user", "content": "Hi"}], "stream": stream}
    return Request(model="claude", body=body)


async def test_a_wrapping_transport_adds_a_header_no_adapter_knows_of() -> None:
    mock = MockTransport(_anthropic)
    provider = HttpProvider(create_adapter("anthropic", {}, ManualClock()), Traced(mock))
    answer = await provider.complete(ANTHROPIC, _chat())
    assert answer.body["choices"][0]["message"]["content"] == "Hi"
    chunks = [chunk async for chunk in provider.stream(ANTHROPIC, _chat(stream=True))]
    assert chunks[-1].finish_reason == "stop"
    assert [call.headers.get("traceparent") for call in mock.requests] == [TRACEPARENT] * 2
    assert all(call.headers["x-api-key"] == "sk-ant-secret" for call in mock.requests)
    assert mock.open_streams == 0


async def test_a_router_opened_on_a_wrapping_transport_traces_every_call_and_closes_it() -> None:
    mock = MockTransport(_anthropic)
    async with open_router(RouterConfig(model_list=(ANTHROPIC,)), transport=Traced(mock)) as router:
        answer = await router.complete(_chat())
        assert answer.deployment.provider == "anthropic"
        async with await router.stream(_chat(stream=True)) as stream:
            assert [chunk.finish_reason async for chunk in stream][-1] == "stop"
    assert [call.headers.get("traceparent") for call in mock.requests] == [TRACEPARENT] * 2
    assert mock.closed  # closing the router closed the transport, through the wrapper
