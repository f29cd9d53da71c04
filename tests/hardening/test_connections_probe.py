"""No connection is held forever: idle and half-sent requests are closed on time, connections
are capped, and a body announced over the limit is refused before it is sent.

Each test runs a real `turnout serve` process (the limits belong to the server it builds) in
front of the fake OpenAI upstream, and talks to it over raw sockets on 127.0.0.1. Timeouts are
configured short; every wait has a generous upper bound, so a slow machine does not fail a
test, and a gateway that never closes does.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import openai
import pytest
from probe_kit import (
    ServedProcess,
    chat_body,
    fake_openai_process,
    http_request,
    openai_error,
    read_answer,
    turnout_serve,
    write_config,
)

from turnout.config.load import parse_config

# The server settings under test, in the `server:` section: `header_timeout` (seconds to
# receive a request's line and headers), `body_timeout` (seconds to receive its body),
# `keepalive_timeout` (seconds an idle kept-alive connection stays open) and `max_connections`
# (connections one process holds at once).
HEADER_TIMEOUT = "header_timeout"
BODY_TIMEOUT = "body_timeout"
KEEPALIVE_TIMEOUT = "keepalive_timeout"
MAX_CONNECTIONS = "max_connections"
SERVER_SETTINGS: dict[str, Any] = {
    HEADER_TIMEOUT: 1.0,
    BODY_TIMEOUT: 1.0,
    KEEPALIVE_TIMEOUT: 1.0,
    MAX_CONNECTIONS: 64,
}
#: Above its timeout, how long a connection may still take to be closed.
GRACE = 4.0
CHAT = "/v1/chat/completions"
JSON_TYPE = ("Content-Type", "application/json")


@pytest.fixture(scope="module")
def upstream() -> Iterator[ServedProcess]:
    with fake_openai_process() as process:
        yield process


def _gateway(
    tmp_path: Path, upstream: ServedProcess, *, fd_limit: int | None = None, **server: Any
) -> AbstractContextManager[ServedProcess]:
    config = write_config(tmp_path / "turnout.yaml", upstream.url, server=server)
    return turnout_serve(config, fd_limit=fd_limit)


async def _closed_within(reader: asyncio.StreamReader, bound: float) -> float:
    """Seconds until the server closed the connection (an answer before the close, such as a
    408, is allowed); fails when it is still open after `bound` seconds."""
    started = time.monotonic()
    try:
        async with asyncio.timeout(bound):
            while await reader.read(65536):
                pass
    except TimeoutError:
        raise AssertionError(f"the connection was still open after {bound:g}s") from None
    except ConnectionError:
        pass
    return time.monotonic() - started


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


def _abort(writer: asyncio.StreamWriter) -> None:
    writer.transport.abort()


# ---- a body over the limit -----------------------------------------------------------------

LIMIT = 4096


def _quotes(message: str, limit: int) -> bool:
    """Whether the message states the limit, in bytes or in KiB/MiB."""
    renderings = {
        str(limit),
        f"{limit:,}",
        f"{limit:_}",
        f"{limit / 1024:g} KiB",
        f"{limit / 1024:g}KiB",
    }
    renderings |= {f"{limit / 1024 / 1024:g} MiB", f"{limit / 1024 / 1024:g}MiB"}
    return any(rendering in message for rendering in renderings)


async def test_a_content_length_over_the_limit_is_refused_before_the_body(
    tmp_path: Path, upstream: ServedProcess
) -> None:
    with _gateway(tmp_path, upstream, max_body_bytes=LIMIT) as gateway:
        reader, writer = await _connect(gateway.port)
        try:
            # Only the headers: a gateway that waits for the body never answers.
            head = http_request(CHAT, b"", headers=[JSON_TYPE], content_length=False)
            writer.write(head[:-2] + b"Content-Length: 50000000\r\n\r\n")
            await writer.drain()
            async with asyncio.timeout(5):
                answer = await read_answer(reader)
        finally:
            _abort(writer)
    assert answer.status == 413, answer.body[:500]
    message = openai_error(answer.body)["message"]
    assert _quotes(message, LIMIT), f"the 413 does not say the limit ({LIMIT}): {message!r}"


async def test_a_body_within_the_limit_is_still_served(
    tmp_path: Path, upstream: ServedProcess
) -> None:
    with _gateway(tmp_path, upstream, max_body_bytes=LIMIT) as gateway:
        reader, writer = await _connect(gateway.port)
        try:
            writer.write(http_request(CHAT, chat_body("x" * 1000), headers=[JSON_TYPE]))
            await writer.drain()
            async with asyncio.timeout(10):
                answer = await read_answer(reader)
        finally:
            _abort(writer)
    assert answer.status == 200, answer.body[:500]


# ---- slow and silent clients ---------------------------------------------------------------


@pytest.fixture
def guarded(tmp_path: Path, upstream: ServedProcess) -> Iterator[ServedProcess]:
    """A gateway with the short limits of `SERVER_SETTINGS`."""
    with _gateway(tmp_path, upstream, **SERVER_SETTINGS) as gateway:
        yield gateway


async def test_a_silent_connection_is_closed(guarded: ServedProcess) -> None:
    reader, writer = await _connect(guarded.port)
    try:
        await _closed_within(reader, SERVER_SETTINGS[HEADER_TIMEOUT] + GRACE)
    finally:
        _abort(writer)


async def test_half_a_request_line_is_closed(guarded: ServedProcess) -> None:
    reader, writer = await _connect(guarded.port)
    try:
        writer.write(b"POST /v1/chat/comp")
        await writer.drain()
        await _closed_within(reader, SERVER_SETTINGS[HEADER_TIMEOUT] + GRACE)
    finally:
        _abort(writer)


async def test_headers_trickled_forever_are_cut_off(guarded: ServedProcess) -> None:
    """Slowloris: a byte of header every 0.2 s keeps a per-read timeout happy forever; the
    limit is on the time to receive all the headers."""
    bound = SERVER_SETTINGS[HEADER_TIMEOUT] + GRACE
    reader, writer = await _connect(guarded.port)

    async def trickle() -> None:
        writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        for _ in range(int(bound / 0.2) + 20):
            writer.write(b"a")
            await writer.drain()
            await asyncio.sleep(0.2)

    sender = asyncio.create_task(trickle())
    try:
        await _closed_within(reader, bound)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        _abort(writer)


async def test_a_half_sent_body_is_closed(guarded: ServedProcess) -> None:
    reader, writer = await _connect(guarded.port)
    try:
        head = http_request(CHAT, b"", headers=[JSON_TYPE], content_length=False)
        writer.write(head[:-2] + b"Content-Length: 2000\r\n\r\n" + chat_body()[:20])
        await writer.drain()
        await _closed_within(reader, SERVER_SETTINGS[BODY_TIMEOUT] + GRACE)
    finally:
        _abort(writer)


async def test_a_body_trickled_forever_is_cut_off(guarded: ServedProcess) -> None:
    bound = SERVER_SETTINGS[BODY_TIMEOUT] + GRACE
    reader, writer = await _connect(guarded.port)

    async def trickle() -> None:
        head = http_request(CHAT, b"", headers=[JSON_TYPE], content_length=False)
        writer.write(head[:-2] + b"Content-Length: 100000\r\n\r\n")
        for _ in range(int(bound / 0.2) + 20):
            writer.write(b" ")
            await writer.drain()
            await asyncio.sleep(0.2)

    sender = asyncio.create_task(trickle())
    try:
        await _closed_within(reader, bound)
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
        _abort(writer)


async def test_an_idle_kept_alive_connection_is_closed(guarded: ServedProcess) -> None:
    reader, writer = await _connect(guarded.port)
    try:
        writer.write(http_request("/health/live", method="GET", content_length=False))
        await writer.drain()
        async with asyncio.timeout(10):
            answer = await read_answer(reader)
        assert answer.status == 200
        assert answer.headers.get("connection", "").lower() != "close"
        await _closed_within(reader, SERVER_SETTINGS[KEEPALIVE_TIMEOUT] + GRACE)
    finally:
        _abort(writer)


async def test_a_slow_but_steady_client_is_still_served(guarded: ServedProcess) -> None:
    """The limits cut off stalls, not clients that take a moment: headers in two parts and a
    body in two parts, each well within its limit, get their answer."""
    body = chat_body()
    head = http_request(CHAT, body, headers=[JSON_TYPE])[: -len(body)]
    reader, writer = await _connect(guarded.port)
    try:
        pause = SERVER_SETTINGS[HEADER_TIMEOUT] / 4
        for part in (head[:20], head[20:], body[:10], body[10:]):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(pause)
        async with asyncio.timeout(10):
            answer = await read_answer(reader)
    finally:
        _abort(writer)
    assert answer.status == 200, answer.body[:500]


async def test_silent_sockets_over_the_file_limit_do_not_starve_real_requests(
    tmp_path: Path, upstream: ServedProcess
) -> None:
    """300 silent sockets against a process limited to 256 open files: the connection cap
    keeps files for real work, the cap is logged, and once the silent sockets time out real
    requests are served again."""
    settings = {**SERVER_SETTINGS, MAX_CONNECTIONS: 100}
    with _gateway(tmp_path, upstream, fd_limit=256, **settings) as gateway:
        sockets = []
        try:
            for _ in range(300):
                try:
                    sockets.append(await asyncio.wait_for(_connect(gateway.port), 2))
                except (OSError, TimeoutError):
                    break
            # Three rounds of silent sockets timing out, and then some.
            deadline = time.monotonic() + 3 * settings[HEADER_TIMEOUT] + 2 * GRACE + 5
            served = False
            async with openai.AsyncOpenAI(
                base_url=f"{gateway.url}/v1", api_key="sk-x", max_retries=0, timeout=5
            ) as client:
                while not served and time.monotonic() < deadline:
                    try:
                        completion = await client.chat.completions.create(
                            model="chat", messages=[{"role": "user", "content": "Hello"}]
                        )
                        served = bool(completion.choices)
                    except openai.APIError:
                        await asyncio.sleep(0.5)
            assert served, "no real request was served while silent sockets were open"
        finally:
            for _, writer in sockets:
                _abort(writer)
        await asyncio.sleep(0.3)
        capped = [
            line for line in gateway.lines if re.search(r"connection", line, re.I) and "100" in line
        ]
        assert capped, "no log line says the connection cap (100) was hit:\n" + gateway.log


# ---- defaults ------------------------------------------------------------------------------

#: Upper bounds for a "sane default": a stalled client is cut off within a minute or so, and a
#: process never lets connections grow without bound.
SANE_DEFAULTS = {
    HEADER_TIMEOUT: 60.0,
    BODY_TIMEOUT: 300.0,
    KEEPALIVE_TIMEOUT: 300.0,
    MAX_CONNECTIONS: 100_000,
}


@pytest.mark.parametrize("name", list(SANE_DEFAULTS))
def test_the_limits_are_on_by_default(name: str) -> None:
    deployment = {"model_name": "chat", "provider": "openai", "model": "gpt-4o-mini"}
    config = parse_config({"model_list": [{**deployment, "api_key": "sk-x"}]})
    value = getattr(config.server, name, None)
    if name == MAX_CONNECTIONS and value is None:
        # Unset means "derived from the process's open-file limit when the server starts".
        from turnout.gateway.connections import default_max_connections

        value = default_max_connections()
    assert value is not None, f"server.{name} has no default: the limit is off"
    assert 0 < value <= SANE_DEFAULTS[name], f"server.{name} defaults to {value}"
