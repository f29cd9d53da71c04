"""The adapter against `FakeBedrock` over real HTTP: signatures, native refusals, stream faults.

The fake recomputes each SigV4 signature with botocore from the request as it arrived, so these
tests fail if the adapter signs anything other than what the HTTP client sends (the path of an
ARN model id, the host with its port, the headers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fakes.fake_bedrock import FakeBedrock, Fault
from turnout import Deployment, Request, Secret
from turnout.clock import SystemClock
from turnout.errors import (
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    RateLimitError,
    StreamInterruptedError,
)
from turnout.providers.bedrock.adapter import create_adapter
from turnout.providers.http import HttpProvider
from turnout.testing import ManualClock
from turnout.upstream.aiohttp import AiohttpTransport
from turnout.wire import Operation, StreamChunk

ARN = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-3-haiku-v1:0"


@pytest.fixture
async def fake() -> AsyncIterator[FakeBedrock]:
    async with FakeBedrock() as server:
        yield server


@pytest.fixture
async def provider() -> AsyncIterator[HttpProvider]:
    transport = AiohttpTransport()
    try:
        # The real clock: the fake checks signatures, not their age.
        yield HttpProvider(create_adapter("bedrock", {}, SystemClock()), transport)
    finally:
        await transport.aclose()


def _deployment(fake: FakeBedrock, model: str = ARN, **params: Any) -> Deployment:
    assert fake.keys is not None
    keys: dict[str, Any] = {
        "aws_region_name": fake.region,
        "aws_access_key_id": fake.keys.access_key,
        "aws_secret_access_key": Secret(fake.keys.secret_key),
        "aws_session_token": "session-token",
    }
    return Deployment(
        model_name="chat",
        provider="bedrock",
        model=model,
        base_url=fake.url,
        params={**keys, **params},
    )


def _chat(text: str = "What is a turnout?", **body: Any) -> Request:
    return Request(model="chat", body={"messages": [{"role": "user", "content": text}], **body})


async def _stream(
    provider: HttpProvider, deployment: Deployment, request: Request
) -> list[StreamChunk]:
    return [chunk async for chunk in provider.stream(deployment, request)]


async def test_a_signed_call_with_an_arn_model_id_is_accepted(
    fake: FakeBedrock, provider: HttpProvider
) -> None:
    answer = await provider.complete(_deployment(fake), _chat())
    assert answer.body["choices"][0]["message"]["content"] == "Fake answer to: What is a turnout?"
    assert answer.usage.prompt_tokens > 0
    [received] = fake.requests
    assert received.auth == "sigv4"
    assert received.model == ARN
    assert received.action == "converse"
    assert received.headers["x-amz-security-token"] == "session-token"


async def test_wrong_or_missing_credentials_are_authentication_errors(
    fake: FakeBedrock, provider: HttpProvider
) -> None:
    wrong = _deployment(fake, aws_secret_access_key="not-the-secret")
    with pytest.raises(AuthenticationError, match="InvalidSignatureException"):
        await provider.complete(wrong, _chat())
    stranger = _deployment(fake, aws_access_key_id="AKIDSOMEONEELSE")
    with pytest.raises(AuthenticationError, match="UnrecognizedClientException"):
        await provider.complete(stranger, _chat())
    bad_key = Deployment(
        model_name="c", provider="bedrock", model="m", base_url=fake.url, api_key=Secret("nope")
    )
    with pytest.raises(AuthenticationError) as caught:
        await provider.complete(bad_key, _chat())
    assert "nope" not in caught.value.message


async def test_an_api_key_is_accepted_as_a_bearer_token(
    fake: FakeBedrock, provider: HttpProvider
) -> None:
    assert fake.api_key is not None
    deployment = Deployment(
        model_name="c",
        provider="bedrock",
        model="amazon.nova-lite-v1:0",
        base_url=fake.url,
        api_key=Secret(fake.api_key),
    )
    await provider.complete(deployment, _chat())
    assert fake.requests[-1].auth == "bearer"


async def test_bedrocks_own_validation_reaches_the_caller_as_a_bad_request(
    fake: FakeBedrock, provider: HttpProvider
) -> None:
    with pytest.raises(BadRequestError, match=r"inferenceConfig\.temperature"):
        await provider.complete(_deployment(fake), _chat(temperature=1.5))


async def test_a_guardrail_is_a_content_policy_error_whole_and_a_filter_streamed(
    fake: FakeBedrock, provider: HttpProvider
) -> None:
    fake.enqueue(Fault.guardrail())
    with pytest.raises(ContentPolicyError, match="cannot answer"):
        await provider.complete(_deployment(fake), _chat())
    fake.enqueue(Fault.guardrail())
    chunks = await _stream(provider, _deployment(fake), _chat(stream=True))
    assert chunks[-1].finish_reason == "content_filter"


async def test_a_stream_arrives_as_chunks_with_usage_on_the_finish(
    fake: FakeBedrock, provider: HttpProvider
) -> None:
    chunks = await _stream(provider, _deployment(fake), _chat("Stream please", stream=True))
    text = "".join(c.data["choices"][0]["delta"].get("content", "") for c in chunks)
    assert text == "Fake answer to: Stream please"
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert fake.requests[-1].action == "converse-stream"


async def test_an_exception_frame_fails_the_stream_after_its_first_chunks(
    fake: FakeBedrock, provider: HttpProvider
) -> None:
    fake.enqueue(Fault("error_event", error_type="ThrottlingException", message="Slow down"))
    received: list[StreamChunk] = []
    with pytest.raises(RateLimitError, match="throttlingException: Slow down"):
        async for chunk in provider.stream(_deployment(fake), _chat(stream=True)):
            received.append(chunk)
    assert len(received) == 2  # messageStart's role chunk and the first word


async def test_a_corrupt_frame_interrupts_the_stream(
    fake: FakeBedrock, provider: HttpProvider
) -> None:
    fake.enqueue(Fault("malformed", after_frames=3))
    with pytest.raises(StreamInterruptedError, match="malformed event-stream frame"):
        await _stream(provider, _deployment(fake), _chat(stream=True))


async def test_a_stream_that_ends_early_has_no_finish_chunk_or_breaks(
    fake: FakeBedrock, provider: HttpProvider
) -> None:
    fake.enqueue(Fault("no_finish"))
    chunks = await _stream(provider, _deployment(fake), _chat(stream=True))
    assert len(chunks) == 8  # the role chunk and the seven words of the answer
    assert all(chunk.finish_reason is None for chunk in chunks)
    fake.enqueue(Fault("cut", after_frames=3))
    with pytest.raises(StreamInterruptedError):
        await _stream(provider, _deployment(fake), _chat(stream=True))


async def test_native_http_errors_carry_their_type_header(
    fake: FakeBedrock, provider: HttpProvider
) -> None:
    fake.enqueue(Fault.throttled(retry_after=2))
    with pytest.raises(RateLimitError) as caught:
        await provider.complete(_deployment(fake), _chat())
    assert caught.value.retry_after == 2.0
    assert caught.value.message.startswith("bedrock: ThrottlingException: ")


async def test_titan_embeds_one_text_and_cohere_many(
    fake: FakeBedrock, provider: HttpProvider
) -> None:
    titan = _deployment(fake, model="amazon.titan-embed-text-v2:0")
    request = Request(model="e", body={"input": "alpha"}, operation=Operation.EMBEDDING)
    answer = await provider.embed(titan, request)
    assert len(answer.body["data"]) == 1
    assert fake.requests[-1].json == {"inputText": "alpha"}
    cohere = _deployment(fake, model="cohere.embed-multilingual-v3")
    both = Request(model="e", body={"input": ["a", "b"]}, operation=Operation.EMBEDDING)
    answer = await provider.embed(cohere, both)
    assert [item["index"] for item in answer.body["data"]] == [0, 1]
    assert answer.usage.prompt_tokens == 2  # the fake's x-amzn-bedrock-input-token-count


async def test_the_fake_refuses_bodies_bedrock_would_refuse(fake: FakeBedrock) -> None:
    async with aiohttp.ClientSession() as session:
        titan = f"{fake.url}/model/amazon.titan-embed-text-v2:0/invoke"
        async with session.post(
            titan, json={"texts": ["a", "b"]}, headers={"authorization": f"Bearer {fake.api_key}"}
        ) as reply:
            assert reply.status == 400
            assert reply.headers["x-amzn-ErrorType"].startswith("ValidationException:")
            assert "inputText" in (await reply.json())["message"]
        converse = f"{fake.url}/model/m/converse"
        body = {"messages": [{"role": "assistant", "content": [{"text": "Hi"}]}]}
        async with session.post(converse, json=body) as reply:
            assert reply.status == 403
            assert reply.headers["x-amzn-ErrorType"].startswith("MissingAuthenticationToken")
        async with session.post(
            converse, json=body, headers={"authorization": f"Bearer {fake.api_key}"}
        ) as reply:
            assert reply.status == 400
            assert "must start with a user message" in (await reply.json())["message"]
    assert [r.auth for r in fake.requests] == ["bearer", None, "bearer"]


async def test_a_manual_clock_signs_at_its_own_time(fake: FakeBedrock) -> None:
    clock = ManualClock(epoch=1_700_000_000.0)
    call = create_adapter("bedrock", {}, clock).build(_deployment(fake), _chat())
    assert call.headers["x-amz-date"] == "20231114T221320Z"
