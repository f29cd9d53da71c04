"""The Gemini adapter against `FakeGemini` over real HTTP (through `HttpProvider` and the one
upstream seam), and the fake's own wire format where the adapter would hide it."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from fakes.fake_gemini import MALFORMED_EVENT, FakeGemini, Fault
from turnout import Deployment, Request, Secret
from turnout.errors import (
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    ContextWindowExceededError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UpstreamConnectionError,
    UpstreamNotFoundError,
    UpstreamTimeoutError,
)
from turnout.providers.gemini.adapter import GeminiAdapter
from turnout.providers.http import HttpProvider
from turnout.testing import ManualClock
from turnout.upstream.aiohttp import AiohttpTransport
from turnout.wire import Operation, StreamChunk

KEY = "gemini-test-key"
MODEL = "gemini-2.0-flash"
WEATHER: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {
                "city": {"type": "string", "format": "uri"},
                "days": {"type": "integer"},
            },
            "required": ["city", "days"],
            "additionalProperties": False,
        },
    },
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeGemini]:
    async with FakeGemini(api_key=KEY, models=(MODEL, "text-embedding-004")) as server:
        yield server


@pytest.fixture
async def provider() -> AsyncIterator[HttpProvider]:
    transport = AiohttpTransport()
    try:
        yield HttpProvider(GeminiAdapter("gemini", {}, ManualClock()), transport)
    finally:
        await transport.aclose()


def _deployment(fake: FakeGemini, **fields: Any) -> Deployment:
    base: dict[str, Any] = {
        "model_name": "chat",
        "provider": "gemini",
        "model": MODEL,
        "base_url": fake.url,
        "api_key": Secret(KEY),
    }
    return Deployment(**{**base, **fields})


def _chat(text: str = "hello there", **body: Any) -> Request:
    return Request(model="chat", body={"messages": [{"role": "user", "content": text}], **body})


async def _stream(
    provider: HttpProvider, deployment: Deployment, request: Request
) -> list[StreamChunk]:
    return [chunk async for chunk in provider.stream(deployment, request)]


def _text(chunks: list[StreamChunk]) -> str:
    return "".join(
        c.data["choices"][0]["delta"].get("content") or "" for c in chunks if c.data["choices"]
    )


async def test_a_whole_answer(fake: FakeGemini, provider: HttpProvider) -> None:
    answer = await provider.complete(_deployment(fake), _chat(max_tokens=3))
    choice = answer.body["choices"][0]
    assert choice["message"]["content"] == "Fake answer to:"
    assert choice["finish_reason"] == "length"
    assert answer.usage.prompt_tokens > 0
    assert answer.usage.completion_tokens == 3
    [received] = fake.requests
    assert received.path == f"/v1beta/models/{MODEL}:generateContent"
    assert received.headers["x-goog-api-key"] == KEY
    assert received.json["generationConfig"] == {"maxOutputTokens": 3}


async def test_a_streamed_answer(fake: FakeGemini, provider: HttpProvider) -> None:
    chunks = await _stream(provider, _deployment(fake), _chat(stream=True))
    assert _text(chunks) == "Fake answer to: hello there"
    assert chunks[-1].finish_reason == "stop"
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert fake.requests[0].query == {"alt": "sse"}


async def test_tools_with_json_schema_keywords_gemini_lacks_reach_the_strict_fake(
    fake: FakeGemini, provider: HttpProvider
) -> None:
    answer = await provider.complete(_deployment(fake), _chat(tools=[WEATHER]))
    [call] = answer.body["choices"][0]["message"]["tool_calls"]
    assert json.loads(call["function"]["arguments"]) == {"city": "fake", "days": 0}
    chunks = await _stream(provider, _deployment(fake), _chat(tools=[WEATHER], stream=True))
    assert chunks[-1].finish_reason == "tool_calls"


async def test_vertex_ai_route_with_a_bearer_token(
    fake: FakeGemini, provider: HttpProvider
) -> None:
    deployment = _deployment(fake, params={"vertex_project": "proj", "vertex_location": "us-east5"})
    answer = await provider.complete(deployment, _chat())
    assert answer.body["choices"][0]["message"]["content"] == "Fake answer to: hello there"
    [received] = fake.requests
    assert received.path == (
        f"/v1/projects/proj/locations/us-east5/publishers/google/models/{MODEL}:generateContent"
    )
    assert received.headers["authorization"] == f"Bearer {KEY}"
    wrong = _deployment(fake, api_key=Secret("nope"), params={"vertex_project": "proj"})
    with pytest.raises(AuthenticationError):
        await provider.complete(wrong, _chat())


async def test_embeddings(fake: FakeGemini, provider: HttpProvider) -> None:
    request = Request(
        model="e", body={"input": ["one", "two"], "dimensions": 4}, operation=Operation.EMBEDDING
    )
    answer = await provider.embed(_deployment(fake, model="text-embedding-004"), request)
    vectors = [item["embedding"] for item in answer.body["data"]]
    assert [len(v) for v in vectors] == [4, 4]
    assert vectors[0] != vectors[1]
    assert answer.usage.prompt_tokens > 0


async def test_wrong_and_missing_keys(fake: FakeGemini, provider: HttpProvider) -> None:
    with pytest.raises(AuthenticationError) as wrong:
        await provider.complete(_deployment(fake, api_key=Secret("AIza-wrong-key")), _chat())
    assert wrong.value.upstream_status == 400
    assert "AIza-wrong-key" not in wrong.value.message
    with pytest.raises(PermissionDeniedError):
        await provider.complete(_deployment(fake, api_key=None), _chat())


async def test_an_unknown_model(fake: FakeGemini, provider: HttpProvider) -> None:
    with pytest.raises(UpstreamNotFoundError, match="models/gemini-9 is not found"):
        await provider.complete(_deployment(fake, model="gemini-9"), _chat())


@pytest.mark.parametrize(
    ("fault", "kind"),
    [
        (Fault.rate_limited(retry_delay=3), RateLimitError),
        (Fault.server_error(), ServerError),
        (Fault.unavailable(), ServerError),
        (Fault.timeout(), UpstreamTimeoutError),
        (Fault.invalid_key(), AuthenticationError),
        (Fault.permission_denied(), PermissionDeniedError),
        (Fault.context_window(), ContextWindowExceededError),
        (Fault.bad_request(), BadRequestError),
        (Fault.blocked("PROHIBITED_CONTENT"), ContentPolicyError),
        (Fault("reset"), UpstreamConnectionError),
        (Fault("malformed"), ServerError),
    ],
)
async def test_each_fault_of_a_whole_answer(
    fake: FakeGemini, provider: HttpProvider, fault: Fault, kind: type[ProviderError]
) -> None:
    fake.enqueue(fault)
    with pytest.raises(kind) as caught:
        await provider.complete(_deployment(fake), _chat())
    if isinstance(caught.value, RateLimitError):
        assert caught.value.retry_after == 3.0
    answer = await provider.complete(_deployment(fake), _chat())
    assert answer.body["choices"][0]["message"]["content"]


async def test_stream_faults(fake: FakeGemini, provider: HttpProvider) -> None:
    deployment, request = _deployment(fake), _chat(stream=True)
    fake.enqueue(Fault("malformed", after_chunks=2))
    with pytest.raises(StreamInterruptedError):
        await _stream(provider, deployment, request)
    fake.enqueue(Fault("error_event", after_chunks=1))
    with pytest.raises(ServerError, match="internal error"):
        await _stream(provider, deployment, request)
    fake.enqueue(Fault("blocked"))
    with pytest.raises(ContentPolicyError):
        await _stream(provider, deployment, request)
    fake.enqueue(Fault("cut", after_chunks=2))
    with pytest.raises(StreamInterruptedError, match="broke"):
        await _stream(provider, deployment, request)
    fake.enqueue(Fault("no_finish"))
    chunks = await _stream(provider, deployment, request)
    assert _text(chunks) == "Fake answer to: hello there"
    assert all(c.finish_reason is None for c in chunks)
    fake.enqueue(Fault("slow_first_token", seconds=0.02), Fault("delay", seconds=0.01))
    for _ in range(2):
        assert _text(await _stream(provider, deployment, request)) == "Fake answer to: hello there"


async def test_faults_can_wait_for_their_method(fake: FakeGemini, provider: HttpProvider) -> None:
    fake.enqueue(Fault.server_error(method="batchEmbedContents"))
    await provider.complete(_deployment(fake), _chat())
    embed = Request(model="e", body={"input": "x"}, operation=Operation.EMBEDDING)
    with pytest.raises(ServerError):
        await provider.embed(_deployment(fake, model="text-embedding-004"), embed)
    fake.set_default(Fault.unavailable())
    with pytest.raises(ServerError):
        await provider.complete(_deployment(fake), _chat())
    fake.set_default(None)
    await provider.complete(_deployment(fake), _chat())


async def _post(url: str, body: Any, **headers: str) -> tuple[int, Any, bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, json=body, headers=headers) as reply,
    ):
        raw = await reply.read()
        try:
            decoded = json.loads(raw)
        except ValueError:
            decoded = None
        return reply.status, decoded, raw


HELLO = {"contents": [{"role": "user", "parts": [{"text": "hello"}]}]}


async def test_the_fake_parses_as_strictly_as_gemini(fake: FakeGemini) -> None:
    url = f"{fake.url}/v1beta/models/{MODEL}:generateContent?key={KEY}"
    status, body, _ = await _post(url, {**HELLO, "temperature": 1})
    assert status == 400
    assert body["error"]["status"] == "INVALID_ARGUMENT"
    assert 'Unknown name "temperature"' in body["error"]["message"]
    declaration = {"name": "f", "parameters": {"type": "object", "properties": {}, "x": 1}}
    status, body, _ = await _post(
        url, {**HELLO, "tools": [{"functionDeclarations": [declaration]}]}
    )
    assert 'Unknown name "x"' in body["error"]["message"]
    status, body, _ = await _post(url, {"contents": [{"role": "bot", "parts": [{"text": "x"}]}]})
    assert "valid role" in body["error"]["message"]
    snake = {**HELLO, "generation_config": {"max_output_tokens": 2}}
    status, body, _ = await _post(url, snake)
    assert status == 200
    assert body["candidates"][0]["finishReason"] == "MAX_TOKENS"


async def test_the_fake_speaks_the_documented_wire_format(fake: FakeGemini) -> None:
    base = f"{fake.url}/v1beta/models/{MODEL}"
    status, body, _ = await _post(f"{base}:generateContent", HELLO, **{"x-goog-api-key": "bad"})
    assert status == 400
    assert body["error"]["details"][0]["reason"] == "API_KEY_INVALID"
    fake.enqueue(Fault.rate_limited(retry_delay=17))
    status, body, _ = await _post(f"{base}:generateContent", HELLO, **{"x-goog-api-key": KEY})
    assert status == 429
    retry = [d for d in body["error"]["details"] if d["@type"].endswith("RetryInfo")]
    assert retry == [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "17s"}]
    status, events, _ = await _post(f"{base}:streamGenerateContent?key={KEY}", HELLO)
    assert status == 200
    assert isinstance(events, list)
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    fake.enqueue(Fault("malformed", after_chunks=1))
    _, _, raw = await _post(f"{base}:streamGenerateContent?alt=sse&key={KEY}", HELLO)
    assert raw.split(b"\r\n\r\n")[1] + b"\r\n\r\n" == MALFORMED_EVENT
