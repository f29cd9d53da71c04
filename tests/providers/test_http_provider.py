"""The provider boundary: every `ProviderError` leaves `HttpProvider` redacted, answered whole or
streamed, by status or by an error event, whether the configuration's redactor was given or
not (then the failing deployment's own credentials are used).

Against `FakeOpenAI` the provider runs over the real HTTP transport; the replies no fake sends
(an HTML page, another server's JSON, a text exception frame) need only their bytes, so each
family's provider meets them through a `MockTransport` (the gateway's redaction tests serve
the same replies over real HTTP)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import msgspec
import pytest

from fakes.fake_openai import FakeOpenAI, Fault
from raw_upstream import RawReply
from straddled_keys import (
    MASK,
    RAW_FAMILIES,
    RawFamily,
    bedrock_stream,
    html_error,
    html_text,
    pieces_of_the_key,
    straddling,
)
from turnout import Deployment, Request, RouterConfig, Secret
from turnout.errors import ProviderError
from turnout.providers.base import Provider
from turnout.providers.http import MESSAGE_LIMIT, HttpProvider
from turnout.providers.openai import OpenAICompatibleAdapter
from turnout.providers.registry import provider_set
from turnout.secrets import Redactor
from turnout.testing import MockTransport
from turnout.upstream import UpstreamReply, UpstreamRequest
from turnout.upstream.aiohttp import AiohttpTransport

KEY = "q7LmX2vR9tKpW4zN"
OTHER = "zX81mQ0pLr5sTuV3hG7k"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(KEY) as server:
        yield server


@pytest.fixture
async def transport() -> AsyncIterator[AiohttpTransport]:
    client = AiohttpTransport()
    try:
        yield client
    finally:
        await client.aclose()


def _deployment(fake: FakeOpenAI) -> Deployment:
    return Deployment(
        model_name="chat",
        provider="openai-compatible",
        model="gpt-4o-mini",
        base_url=fake.url,
        api_key=Secret(KEY),
    )


def _request(stream: bool) -> Request:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return Request(model="chat", body=body)


async def _fail(provider: Provider, deployment: Deployment, stream: bool) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        if stream:
            async for _ in provider.stream(deployment, _request(stream=True)):
                pass
        else:
            await provider.complete(deployment, _request(stream=False))
    return caught.value


_BAD = "invalid_request_error"


@pytest.mark.parametrize(
    ("fault", "stream"),
    [
        (Fault.http_error(400, f"peer {OTHER}", _BAD, param=KEY), False),
        (Fault.http_error(400, f"peer {OTHER}", _BAD, param=KEY), True),
        (
            Fault(
                "error_event", after_chunks=0, error_type=_BAD, message=f"peer {OTHER}", param=KEY
            ),
            True,
        ),
        (
            Fault(
                "error_event", after_chunks=2, error_type=_BAD, message=f"peer {OTHER}", param=KEY
            ),
            True,
        ),
    ],
    ids=["status-whole", "status-streamed", "first-event", "mid-stream-event"],
)
async def test_errors_leave_the_provider_redacted(
    fake: FakeOpenAI, transport: AiohttpTransport, fault: Fault, stream: bool
) -> None:
    fake.enqueue(replace(fault, echo_credentials=True))
    adapter = OpenAICompatibleAdapter("openai-compatible", {})
    provider = HttpProvider(adapter, transport, Redactor([KEY, OTHER]))
    error = await _fail(provider, _deployment(fake), stream)
    assert error.message.endswith(f"peer {MASK} (credentials received: {MASK})")
    assert str(error) == error.message
    assert error.param == MASK


async def test_without_a_redactor_the_failing_deployments_credentials_are_removed(
    fake: FakeOpenAI, transport: AiohttpTransport
) -> None:
    fake.enqueue(Fault("error_event", after_chunks=0, echo_credentials=True))
    provider = HttpProvider(OpenAICompatibleAdapter("openai-compatible", {}), transport)
    error = await _fail(provider, _deployment(fake), stream=True)
    assert KEY not in error.message
    assert error.message.endswith(f"(credentials received: {MASK})")


# -- long upstream text: redacted before it is shortened -----------------------------------


#: Where the mock upstream "is": no socket is opened.
URL = "http://upstream.test"


async def _fail_raw(family: RawFamily, reply: RawReply, stream: bool) -> str:
    """The message of the error the family's provider raises for `reply` (a real configuration's
    provider and redactor, over a `MockTransport` answering with the reply's bytes)."""

    def answer(call: UpstreamRequest) -> UpstreamReply:
        headers = {"Content-Type": reply.content_type, **reply.headers}
        return UpstreamReply(reply.status, headers, reply.body)

    transport = MockTransport(answer)
    deployment = family.deployment(URL)
    providers = provider_set(RouterConfig(model_list=(deployment,)), transport).providers
    error = await _fail(providers[deployment.provider], deployment, stream)
    [sent] = transport.requests
    assert sent.url.startswith(URL)  # the family's adapter built it for this deployment
    assert transport.open_streams == 0  # a streamed reply was let go
    assert str(error) == error.message
    return error.message


def _assert_shortened_without_a_piece_of_the_key(message: str) -> None:
    assert pieces_of_the_key(message) == [], message
    assert MASK in message  # the key was there, and went
    assert message.endswith("…") and len(message) <= MESSAGE_LIMIT, message


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("shape", ["html", "json"])
@pytest.mark.parametrize("family", RAW_FAMILIES, ids=lambda family: family.name)
async def test_a_key_straddling_the_cut_of_a_long_error_is_removed_first(
    family: RawFamily, shape: str, stream: bool
) -> None:
    reply = html_error(html_text()) if shape == "html" else family.json_error(straddling())
    message = await _fail_raw(family, reply, stream)
    assert message.startswith(f"{family.name}: ")
    _assert_shortened_without_a_piece_of_the_key(message)


@pytest.mark.parametrize("started", [False, True], ids=["first-frame", "mid-stream"])
async def test_a_key_straddling_the_cut_of_a_text_exception_frame_is_removed_first(
    started: bool,
) -> None:
    bedrock = next(family for family in RAW_FAMILIES if family.name == "bedrock")
    reply = bedrock_stream(straddling().encode(), started=started)
    message = await _fail_raw(bedrock, reply, stream=True)
    _assert_shortened_without_a_piece_of_the_key(message)


async def test_a_key_straddling_the_cut_of_a_quoted_guardrail_message_is_removed_first() -> None:
    bedrock = next(family for family in RAW_FAMILIES if family.name == "bedrock")
    blocked = straddling(offset=290)
    answer = {
        "output": {"message": {"role": "assistant", "content": [{"text": blocked}]}},
        "stopReason": "guardrail_intervened",
        "usage": {"inputTokens": 3, "outputTokens": 5, "totalTokens": 8},
    }
    reply = RawReply(200, msgspec.json.encode(answer), "application/json")
    message = await _fail_raw(bedrock, reply, stream=False)
    assert "blocked by a content filter or guardrail" in message
    _assert_shortened_without_a_piece_of_the_key(message)
