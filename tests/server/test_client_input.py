"""Whatever a client sends, the gateway answers a 4xx in OpenAI's shape and logs no error.

Real HTTP on loopback: raw bytes where an HTTP library would refuse to send them, the official
SDK where it can, and a fake OpenAI upstream behind the gateway.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
import openai
import pytest
from raw_http import BODY, WITHIN, connection, read_response, request

from fakes.fake_openai import FakeOpenAI
from gateway_harness import RunningGateway, gateway_config, running_gateway
from turnout import Deployment, Secret
from turnout.gateway.requests import MAX_NESTING

MESSAGES: Any = [{"role": "user", "content": "Hello"}]
MARKER = "ZQXJ-client-bytes"


@asynccontextmanager
async def gateway(
    master_key: str | None = None,
) -> AsyncIterator[tuple[RunningGateway, FakeOpenAI]]:
    async with FakeOpenAI() as fake:
        deployment = Deployment(
            model_name="chat",
            provider="openai-compatible",
            model="gpt-4o-mini",
            id="up",
            base_url=fake.url,
            api_key=Secret("sk-fake"),
        )
        async with running_gateway(gateway_config(deployment, master_key=master_key)) as gw:
            yield gw, fake


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


def assert_quiet(logs: pytest.LogCaptureFixture) -> None:
    """No warning, no error and no traceback: a client's mistake is not the gateway's."""
    loud = [r for r in logs.records if r.levelno >= logging.WARNING or r.exc_info]
    assert loud == [], [r.getMessage() for r in loud]


def openai_error(body: bytes) -> dict[str, Any]:
    error = msgspec.json.decode(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str)
    return dict(error)


async def exchange(gw: RunningGateway, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    async with connection(gw) as (reader, writer):
        writer.write(raw)
        return await read_response(reader)


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def deep_tools(depth: int) -> bytes:
    schema = b'{"type": "object", "properties": {"a": ' * depth + b"{}" + b"}}" * depth
    return (
        b'{"model": "chat", "messages": [{"role": "user", "content": "x"}], "tools": '
        b'[{"type": "function", "function": {"name": "f", "parameters": ' + schema + b"}}]}"
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"model": "chat", "messages": [{"role": "user", "content": "x"}], "metadata": {"a": '
        + nested(1000)
        + b"}}",
        deep_tools(500),
        b'{"model": "chat", "messages": [{"role": "user", "content": ' + nested(1000) + b"}]}",
        b'{"model": "chat", "messages": [{"role": "user", "content": "x"}], "n": '
        + nested(100_000)
        + b"}",
    ],
    ids=["metadata", "tools", "content", "very-deep"],
)
async def test_deeply_nested_json_is_a_400(body: bytes, logs: pytest.LogCaptureFixture) -> None:
    async with gateway() as (gw, fake):
        status, _, answer = await exchange(gw, request(body=body))
    assert status == 400
    assert f"more than {MAX_NESTING} levels deep" in openai_error(answer)["message"]
    assert fake.requests == []
    assert_quiet(logs)


async def test_nesting_within_the_limit_reaches_the_upstream() -> None:
    async with gateway() as (gw, fake):
        status, _, _ = await exchange(gw, request(body=deep_tools(MAX_NESTING // 2 - 4)))
    assert status == 200
    assert len(fake.requests) == 1


@pytest.mark.parametrize("header", ["Authorization", "api-key", "x-api-key"])
@pytest.mark.parametrize("master_key", [None, "sk-gateway-master"])
async def test_credentials_that_are_not_utf8_are_a_401(
    header: str, master_key: str | None, logs: pytest.LogCaptureFixture
) -> None:
    value = b"Bearer \xff\xfe\xc3(" if header == "Authorization" else b"\xff\xfe\xc3("
    raw = request().replace(
        b"Host: gateway", b"Host: gateway\r\n" + header.encode() + b": " + value
    )
    async with gateway(master_key) as (gw, fake):
        status, _, answer = await exchange(gw, raw)
    assert status == 401
    error = openai_error(answer)
    assert error["type"] == "authentication_error"
    assert "UTF-8" in error["message"]
    assert fake.requests == []
    assert_quiet(logs)


async def test_tags_that_are_not_utf8_are_a_400(logs: pytest.LogCaptureFixture) -> None:
    raw = request().replace(b"Host: gateway", b"Host: gateway\r\nx-turnout-tags: paid,\xff")
    async with gateway() as (gw, _):
        status, _, answer = await exchange(gw, raw)
    assert status == 400
    assert openai_error(answer)["param"] == "x-turnout-tags"
    assert_quiet(logs)


async def test_a_body_that_is_not_the_gzip_it_claims_is_a_400(
    logs: pytest.LogCaptureFixture,
) -> None:
    async with gateway() as (gw, fake):
        status, _, answer = await exchange(gw, request(Content_Encoding="gzip"))
        good, _, _ = await exchange(gw, request(body=gzip.compress(BODY), Content_Encoding="gzip"))
    assert status == 400
    assert "Content-Encoding" in openai_error(answer)["message"]
    assert good == 200
    assert len(fake.requests) == 1
    assert_quiet(logs)


async def test_a_gzip_bomb_is_held_to_the_body_limit(logs: pytest.LogCaptureFixture) -> None:
    bomb = gzip.compress(BODY[:-1] + b" " * (4 * 1024 * 1024) + b"}")
    async with gateway() as (gw, _):
        status, _, answer = await exchange(gw, request(body=bomb, Content_Encoding="gzip"))
    assert status == 413
    assert "limit of 1048576 bytes" in openai_error(answer)["message"]
    assert_quiet(logs)


async def test_a_client_that_leaves_while_uploading_is_no_server_error(
    logs: pytest.LogCaptureFixture,
) -> None:
    async with gateway() as (gw, fake):
        async with connection(gw) as (_, writer):
            writer.write(request(body=BODY[:10], Content_Length="5000"))
            await writer.drain()
            await asyncio.sleep(0.2)
        metrics = await _metrics_once(gw, 'status="499"')
    assert 'status="500"' not in metrics
    assert fake.requests == []
    assert_quiet(logs)


async def _metrics_once(gw: RunningGateway, showing: str) -> str:
    """The metrics text once it shows `showing` (the gateway notices a gone client soon)."""
    for _ in range(int(WITHIN / 0.05)):
        text = gw.gateway.metrics.render()[0].decode()
        if showing in text:
            return text
        await asyncio.sleep(0.05)
    raise AssertionError(f"the metrics never showed {showing}")


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 12"
            + MARKER.encode(),
            400,
        ),
        (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
            b"Content-Length: 3\r\nX-Note: " + MARKER.encode() + b"\r\n\r\n{}",
            400,
        ),
        (b"GET /" + MARKER.encode() * 1000 + b" HTTP/1.1\r\nHost: x", 414),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + MARKER.encode() * 1000, 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)), 431),
        (b"G@T /" + MARKER.encode() + b" HTTP/1.1\r\nHost: x", 400),
        (b"\x16\x03\x01\x02\x00" + MARKER.encode(), 400),
        (
            b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz" + MARKER.encode(),
            400,
        ),
        (b"GET / HTTP/1.1\r\nHost: x\r\nX-Bad\x01Name: " + MARKER.encode(), 400),
    ],
    ids=[
        "bad-content-length",
        "duplicate-content-length",
        "long-url",
        "long-header",
        "many-headers",
        "bad-method",
        "tls-on-http",
        "bad-chunk",
        "bad-header-name",
    ],
)
async def test_malformed_http_is_answered_in_openai_shape_without_echoing_it(
    raw: bytes, status: int, logs: pytest.LogCaptureFixture
) -> None:
    if not raw.endswith(b"}") and b"\r\n\r\n" not in raw:
        raw += b"\r\n\r\n"
    async with gateway() as (gw, _):
        got, headers, body = await exchange(gw, raw)
    assert got == status
    assert headers["content-type"].startswith("application/json")
    openai_error(body)
    assert MARKER.encode() not in body
    assert_quiet(logs)


async def test_the_sdk_sees_its_own_error_classes_for_refused_framing() -> None:
    async with gateway() as (gw, _), gw.client() as client:
        with pytest.raises(openai.APIStatusError) as refused:
            await client.chat.completions.create(
                model="chat", messages=MESSAGES, extra_headers={"x-big": "y" * 10_000}
            )
    assert refused.value.status_code == 431


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [("POST", "/v1/chat/completions", 200), ("GET", "/v1/models", 200), ("GET", "/nowhere", 404)],
)
@pytest.mark.parametrize("expectation", [b"\x80\xff", b"teapot-" + MARKER.encode()])
async def test_an_expectation_other_than_continue_is_ignored(
    method: str, path: str, status: int, expectation: bytes, logs: pytest.LogCaptureFixture
) -> None:
    raw = request(path=path.encode()).replace(b"POST", method.encode(), 1)
    raw = raw.replace(b"Host: gateway", b"Host: gateway\r\nExpect: " + expectation)
    async with gateway() as (gw, _):
        got, _, body = await exchange(gw, raw)
    assert got == status
    assert MARKER.encode() not in body
    if status >= 400:
        openai_error(body)
    assert_quiet(logs)
