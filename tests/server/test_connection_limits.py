"""Slow, silent and surplus clients against the real gateway on loopback, with short limits.

Every limit is configured at a fraction of a second; the assertions allow several seconds, so
a loaded machine cannot make them flaky, while the unlimited gateway would hold every one of
these connections open for as long as the client likes.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from typing import Any

import msgspec
import pytest
from raw_http import BODY, WITHIN, closed_after, connection, read_response, request

from gateway_harness import RunningGateway, gateway_config, running_gateway, simulated
from turnout.config.server import GatewayConfig, ServerConfig
from turnout.gateway.connections import ConnectionLimits, GatewayProtocol

MESSAGES: Any = [{"role": "user", "content": "Hello"}]


def limited(*, behaviour: dict[str, Any] | None = None, **server: Any) -> GatewayConfig:
    config = gateway_config(simulated("a", **(behaviour or {})))
    settings = {"port": 0, "shutdown_timeout": 5, "max_body_bytes": 1024 * 1024, **server}
    return msgspec.structs.replace(config, server=ServerConfig(**settings))


async def test_a_silent_connection_is_closed_after_the_header_timeout() -> None:
    async with (
        running_gateway(limited(header_timeout=0.3, keepalive_timeout=60)) as gw,
        connection(gw) as (reader, _),
    ):
        elapsed, received = await closed_after(reader)
    assert received == b""
    assert elapsed >= 0.2


async def test_a_half_sent_request_line_is_closed() -> None:
    async with (
        running_gateway(limited(header_timeout=0.3, keepalive_timeout=60)) as gw,
        connection(gw) as (reader, writer),
    ):
        writer.write(b"POST /v1/chat/compl")
        elapsed, received = await closed_after(reader)
    assert received == b""
    assert elapsed >= 0.2


async def test_a_half_sent_request_after_a_kept_alive_one_is_closed() -> None:
    async with (
        running_gateway(limited(header_timeout=0.4, keepalive_timeout=60)) as gw,
        connection(gw) as (reader, writer),
    ):
        writer.write(request())
        status, headers, _ = await read_response(reader)
        assert status == 200
        assert headers.get("connection", "").lower() != "close"
        # A byte at a time restarts nothing: the limit counts from the first one.
        for byte in b"POST":
            writer.write(bytes([byte]))
            await asyncio.sleep(0.05)
        _, received = await closed_after(reader)
    assert received == b""


async def test_a_half_request_sent_while_the_previous_one_is_served_is_closed() -> None:
    config = limited(header_timeout=0.4, keepalive_timeout=60, behaviour={"latency": 0.2})
    async with running_gateway(config) as gw, connection(gw) as (reader, writer):
        writer.write(request())
        await asyncio.sleep(0.1)  # while the first is being served
        writer.write(b"POST /v1/chat/comp")
        status, _, _ = await read_response(reader)
        assert status == 200
        _, received = await closed_after(reader)
    assert received == b""


async def test_an_idle_kept_alive_connection_is_closed() -> None:
    async with (
        running_gateway(limited(header_timeout=60, keepalive_timeout=0.3)) as gw,
        connection(gw) as (reader, writer),
    ):
        writer.write(request())
        status, _, _ = await read_response(reader)
        assert status == 200
        elapsed, received = await closed_after(reader)
    assert received == b""
    assert elapsed >= 0.2


async def test_a_partial_body_gets_a_408_and_the_connection_closes() -> None:
    config = limited(header_timeout=60, body_timeout=0.3, body_min_rate=1_000_000)
    async with running_gateway(config) as gw, connection(gw) as (reader, writer):
        writer.write(request(body=BODY[:20], Content_Length=str(len(BODY))))
        status, headers, body = await read_response(reader)
        _, rest = await closed_after(reader)
        metrics = gw.gateway.metrics.render()[0].decode()
    assert status == 408
    assert headers["connection"].lower() == "close"
    error = msgspec.json.decode(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert "did not arrive in time" in error["message"]
    assert rest == b""
    assert 'status="500"' not in metrics


async def test_a_slow_body_that_keeps_the_minimum_rate_is_served() -> None:
    config = limited(header_timeout=60, body_timeout=0.3, body_min_rate=100)
    async with running_gateway(config) as gw, connection(gw) as (reader, writer):
        writer.write(request(body=b"", Content_Length=str(len(BODY))))
        for start in range(0, len(BODY), 20):
            writer.write(BODY[start : start + 20])
            await asyncio.sleep(0.1)
        status, _, _ = await read_response(reader)
    assert status == 200


async def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent() -> None:
    config = limited(max_body_bytes=1000)
    async with running_gateway(config) as gw, connection(gw) as (reader, writer):
        writer.write(request(body=b"{", Content_Length="5000"))
        status, headers, body = await read_response(reader)
        writer.write(b" " * 4999)  # the rest, only now: the gateway reads and drops it
    assert status == 413
    assert headers["connection"].lower() == "close"
    assert "limit of 1000 bytes" in msgspec.json.decode(body)["error"]["message"]


async def test_expect_continue_is_refused_before_the_body_when_it_is_too_large() -> None:
    config = limited(max_body_bytes=1000)
    async with running_gateway(config) as gw, connection(gw) as (reader, writer):
        writer.write(request(body=b"", Content_Length="5000", Expect="100-continue"))
        status, _, body = await read_response(reader)
        writer.write(b" " * 5000)
    assert status == 413
    assert "limit of 1000 bytes" in msgspec.json.decode(body)["error"]["message"]


async def test_expect_continue_within_the_limit_gets_its_answer() -> None:
    async with running_gateway(limited()) as gw, connection(gw) as (reader, writer):
        writer.write(request(body=b"", Expect="100-continue", Content_Length=str(len(BODY))))
        async with asyncio.timeout(WITHIN):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim.startswith(b"HTTP/1.1 100 Continue")
        writer.write(BODY)
        status, _, _ = await read_response(reader)
    assert status == 200


async def test_silent_sockets_over_the_cap_never_lock_out_a_real_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """300 silent sockets against a cap of 40: the oldest silent ones are closed to make room,
    real requests are served at once, and one warning says what happened."""
    caplog.set_level(logging.WARNING, logger="turnout.gateway")
    config = limited(header_timeout=60, keepalive_timeout=60, max_connections=40)
    async with running_gateway(config) as gw, AsyncExitStack() as silent:
        sockets = [await silent.enter_async_context(connection(gw)) for _ in range(300)]
        async with gw.client(timeout=WITHIN) as client:
            for _ in range(3):
                completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
                assert completion.choices
        most_open = open_connections(gw)
        closed = await asyncio.gather(*(_closed_soon(reader) for reader, _ in sockets))
    assert most_open <= 40
    assert sum(closed) >= 300 - 40
    # Rate-limited: a line now and then with counts, not one per connection.
    warnings = [r for r in caplog.records if "connection cap of 40 reached" in r.getMessage()]
    assert 1 <= len(warnings) <= 2


async def test_when_every_connection_is_busy_a_new_one_gets_a_503_then_service_resumes() -> None:
    config = limited(max_connections=2, behaviour={"latency": 1.0})
    async with running_gateway(config) as gw, gw.client(timeout=WITHIN) as client:
        busy = [
            asyncio.create_task(client.chat.completions.create(model="chat", messages=MESSAGES))
            for _ in range(2)
        ]
        await asyncio.sleep(0.3)
        async with connection(gw) as (reader, writer):
            writer.write(request())
            status, headers, body = await read_response(reader)
        assert status == 503
        assert headers["retry-after"] == "1"
        assert "connection limit" in msgspec.json.decode(body)["error"]["message"]
        for task in busy:
            assert (await task).choices
        completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
        assert completion.choices


async def _closed_soon(reader: asyncio.StreamReader) -> bool:
    if reader.at_eof():
        return True
    try:
        async with asyncio.timeout(0.5):
            return await reader.read(1) == b""
    except TimeoutError:
        return False
    except ConnectionError:
        return True


def open_connections(gw: RunningGateway) -> int:
    assert gw.site is not None
    return gw.site.guard.open_connections


@pytest.mark.parametrize("count", [40])
async def test_the_cap_is_not_reached_by_connections_that_are_closed(count: int) -> None:
    config = limited(max_connections=count)
    async with running_gateway(config) as gw:
        for _ in range(count * 2):
            async with connection(gw) as (reader, writer):
                writer.write(request(Connection="close"))
                status, _, _ = await read_response(reader)
                assert status == 200
        await asyncio.sleep(0.2)
        assert open_connections(gw) == 0


async def test_headers_without_their_body_never_lock_out_a_real_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Four POSTs that announce a body and never send it, against a cap of 4 and a 20 s body
    timeout: once they are behind the minimum rate, they make room for a real request."""
    caplog.set_level(logging.WARNING, logger="turnout.gateway")
    config = limited(max_connections=4, header_timeout=60, body_timeout=20)
    async with running_gateway(config) as gw, AsyncExitStack() as stalled:
        for _ in range(4):
            _, writer = await stalled.enter_async_context(connection(gw))
            writer.write(request(body=b"", Content_Length=str(len(BODY))))
        await asyncio.sleep(1.5)  # past the grace a body gets before it counts as stalled
        async with gw.client(timeout=WITHIN) as client:
            completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
        assert completion.choices
        assert open_connections(gw) <= 4
    assert "connection cap of 4 reached" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_a_stalled_body_is_closed_before_a_steady_one_at_the_cap() -> None:
    """At the cap, a body arriving at the minimum rate keeps its connection; the stalled one
    is closed to make room."""
    config = limited(max_connections=2, header_timeout=60, body_timeout=20, body_min_rate=100)
    async with (
        running_gateway(config) as gw,
        connection(gw) as (stalled, stalled_writer),
        connection(gw) as (steady, steady_writer),
    ):
        body = BODY + b" " * 400
        stalled_writer.write(request(body=b"", Content_Length=str(len(body))))
        steady_writer.write(request(body=b"", Content_Length=str(len(body))))
        sent = 0
        for _ in range(15):  # 300 bytes per second: three times the minimum rate
            steady_writer.write(body[sent : sent + 30])
            sent += 30
            await asyncio.sleep(0.1)
        async with gw.client(timeout=WITHIN) as client:
            completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
        assert completion.choices
        assert await _closed_soon(stalled)
        steady_writer.write(body[sent:])
        status, _, _ = await read_response(steady)
    assert status == 200


async def test_a_half_request_in_the_packet_ending_the_previous_one_is_closed() -> None:
    async with (
        running_gateway(limited(header_timeout=1, keepalive_timeout=60)) as gw,
        connection(gw) as (reader, writer),
    ):
        writer.write(request() + b"POST /v1/chat/comp")
        status, _, _ = await read_response(reader)
        assert status == 200
        elapsed, received = await closed_after(reader)
    assert received == b""
    assert elapsed < WITHIN


async def test_a_half_request_in_the_packet_ending_the_previous_body_is_closed() -> None:
    async with (
        running_gateway(limited(header_timeout=1, keepalive_timeout=60)) as gw,
        connection(gw) as (reader, writer),
    ):
        writer.write(request()[:-10])
        await asyncio.sleep(0.2)  # the body is being received
        writer.write(request()[-10:] + b"POST /v1/chat/comp")
        status, _, _ = await read_response(reader)
        assert status == 200
        elapsed, received = await closed_after(reader)
    assert received == b""
    assert elapsed < WITHIN


async def test_a_kept_alive_connection_still_waits_its_keepalive_timeout() -> None:
    """A request whose body came in its own packet ends exactly: the connection then waits
    for the next request as long as keep-alive allows, not just the header timeout."""
    async with (
        running_gateway(limited(header_timeout=0.3, keepalive_timeout=60)) as gw,
        connection(gw) as (reader, writer),
    ):
        whole = request()
        writer.write(whole[: -len(BODY)])
        await asyncio.sleep(0.1)
        writer.write(BODY)
        status, _, _ = await read_response(reader)
        assert status == 200
        writer.write(request())  # a complete request in one packet, too
        status, _, _ = await read_response(reader)
        assert status == 200
        assert not await _closed_soon(reader)
        await asyncio.sleep(1)
        assert not await _closed_soon(reader)
        writer.write(request())
        status, _, _ = await read_response(reader)
    assert status == 200


async def test_making_room_looks_at_each_busy_connection_once_not_at_every_accept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """At a cap of 10 busy connections, 30 refusals in a row look at the busy ones once in
    all (when they reach the front of the candidates), not once per accept."""
    looked_at = 0
    evictable = GatewayProtocol.evictable

    def counted(protocol: GatewayProtocol, now: float, limits: ConnectionLimits) -> bool:
        nonlocal looked_at
        looked_at += 1
        return evictable(protocol, now, limits)

    monkeypatch.setattr(GatewayProtocol, "evictable", counted)
    config = limited(max_connections=10, behaviour={"latency": 2.0})
    async with running_gateway(config) as gw, AsyncExitStack() as stack:
        for _ in range(10):
            _, writer = await stack.enter_async_context(connection(gw))
            writer.write(request())
        await asyncio.sleep(0.5)
        for _ in range(30):
            async with connection(gw) as (reader, writer):
                writer.write(request())
                status, _, _ = await read_response(reader)
            assert status == 503
    assert looked_at <= 10
