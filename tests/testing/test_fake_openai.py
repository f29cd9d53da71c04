"""The fake OpenAI server: OpenAI's wire format over real HTTP, and each fault as a client sees it.

The official SDK drives what it can; aiohttp's client reads the raw event stream where the SDK
would hide the difference (what arrived, whether [DONE] came, how the connection ended).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import struct
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionToolParam

from fakes.fake_openai import (
    DONE_EVENT,
    MALFORMED_EVENT,
    FakeOpenAI,
    Fault,
    RateLimits,
)
from turnout.tokens import estimate_prompt_tokens

KEY = "sk-fake"
CHAT = "gpt-4o-mini"
EMBED = "text-embedding-3-small"
AUTH = {"Authorization": f"Bearer {KEY}"}
HELLO: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hello there"}]
WEATHER: ChatCompletionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
#: The chat stream of HELLO: the opening event, five tokens, the finish event.
HELLO_EVENTS = 7
#: The fake reports turnout's own prompt estimate as the prompt's usage.
HELLO_PROMPT = estimate_prompt_tokens("chat", {"messages": HELLO})

TESTS_DIR = Path(__file__).resolve().parent.parent


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(KEY, models=(CHAT, EMBED)) as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(
        base_url=fake.url, api_key=KEY, max_retries=0, timeout=5.0
    ) as sdk:
        yield sdk


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def chat_body(**extra: Any) -> dict[str, Any]:
    return {"model": CHAT, "messages": [{"role": "user", "content": "hello there"}], **extra}


async def read_raw(
    session: aiohttp.ClientSession, url: str, body: dict[str, Any], *, idle: float = 2.0
) -> tuple[bytes, BaseException | None]:
    """POST ``body`` and read until the end, an error, or ``idle`` seconds of silence."""
    received = b""
    async with session.post(f"{url}/chat/completions", json=body, headers=AUTH) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream; charset=utf-8"
        try:
            while True:
                async with asyncio.timeout(idle):
                    chunk = await response.content.readany()
                if not chunk:
                    return received, None
                received += chunk
        except (aiohttp.ClientPayloadError, TimeoutError) as error:
            return received, error


def events_of(raw: bytes) -> list[bytes]:
    assert raw.endswith(b"\n\n") or not raw
    return [event.removeprefix(b"data: ") for event in raw.split(b"\n\n") if event]


def chunks_of(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(event) for event in events_of(raw) if event != b"[DONE]"]


# Answers


async def test_chat_completion_has_openai_shape(
    fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    async with session.post(f"{fake.url}/chat/completions", json=chat_body(), headers=AUTH) as r:
        assert r.status == 200
        assert r.content_type == "application/json"
        assert r.headers["x-request-id"].startswith("req_")
        assert int(r.headers["openai-processing-ms"]) >= 0
        body = await r.json()
    assert body["id"].startswith("chatcmpl-")
    assert body["object"] == "chat.completion"
    assert isinstance(body["created"], int)
    assert body["model"] == CHAT
    assert body["system_fingerprint"] == "fp_fake"
    assert body["choices"] == [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "Fake answer to: hello there",
                "refusal": None,
            },
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    usage = body["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (HELLO_PROMPT, 5)
    assert usage["total_tokens"] == HELLO_PROMPT + 5


async def test_chat_through_the_sdk(client: openai.AsyncOpenAI) -> None:
    answer = await client.chat.completions.create(model=CHAT, messages=HELLO)
    assert answer.choices[0].message.content == "Fake answer to: hello there"
    assert answer.choices[0].finish_reason == "stop"
    assert answer.usage is not None
    assert answer.usage.total_tokens == HELLO_PROMPT + 5


async def test_reply_is_configurable_and_max_tokens_cuts_it(client: openai.AsyncOpenAI) -> None:
    fake_reply = "one two three four"
    async with FakeOpenAI(KEY, reply=fake_reply) as fake:
        sdk = client.with_options(base_url=fake.url)
        whole = await sdk.chat.completions.create(model=CHAT, messages=HELLO)
        capped = await sdk.chat.completions.create(model=CHAT, messages=HELLO, max_tokens=2)
        newer = await sdk.chat.completions.create(
            model=CHAT, messages=HELLO, max_tokens=3, max_completion_tokens=1
        )
    assert (whole.choices[0].message.content, whole.choices[0].finish_reason) == (
        fake_reply,
        "stop",
    )
    assert (capped.choices[0].message.content, capped.choices[0].finish_reason) == (
        "one two",
        "length",
    )
    assert capped.usage is not None
    assert capped.usage.completion_tokens == 2
    assert newer.choices[0].message.content == "one"


async def test_n_gives_as_many_choices_whole_and_streamed(client: openai.AsyncOpenAI) -> None:
    whole = await client.chat.completions.create(model=CHAT, messages=HELLO, n=2)
    assert [choice.index for choice in whole.choices] == [0, 1]
    assert {choice.message.content for choice in whole.choices} == {"Fake answer to: hello there"}
    assert whole.usage is not None
    assert whole.usage.completion_tokens == 10
    stream = await client.chat.completions.create(model=CHAT, messages=HELLO, n=2, stream=True)
    texts = ["", ""]
    finishes: list[str | None] = [None, None]
    async for chunk in stream:
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            finishes[choice.index] = choice.finish_reason or finishes[choice.index]
    assert texts == ["Fake answer to: hello there"] * 2
    assert finishes == ["stop", "stop"]
    with pytest.raises(openai.BadRequestError, match="'n'"):
        await client.chat.completions.create(model=CHAT, messages=HELLO, n=0)


async def test_chat_stream_with_usage(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=CHAT, messages=HELLO, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[0].id.startswith("chatcmpl-")
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "Fake answer to: hello there"
    finish, last = chunks[-2], chunks[-1]
    assert finish.choices[0].finish_reason == "stop"
    assert finish.choices[0].delta.content is None
    assert last.choices == []
    assert last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (HELLO_PROMPT, 5)
    assert all(chunk.usage is None for chunk in chunks[:-1])


async def test_raw_stream_events(fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    body = chat_body(stream=True, stream_options={"include_usage": True})
    raw, error = await read_raw(session, fake.url, body)
    assert error is None
    assert raw.endswith(b"\n\ndata: [DONE]\n\n")
    chunks = chunks_of(raw)
    assert len(chunks) == HELLO_EVENTS + 1
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": "", "refusal": None}
    assert chunks[1]["choices"][0]["delta"] == {"content": "Fake"}
    assert chunks[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "stop",
    }
    assert all(chunk["usage"] is None for chunk in chunks[:-1])
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["total_tokens"] == HELLO_PROMPT + 5

    plain, _ = await read_raw(session, fake.url, chat_body(stream=True))
    assert all("usage" not in chunk for chunk in chunks_of(plain))


async def test_stream_events_arrive_one_by_one(session: aiohttp.ClientSession) -> None:
    async with FakeOpenAI(KEY, chunk_delay=0.03) as fake:
        body = chat_body(stream=True)
        arrivals: list[float] = []
        async with session.post(f"{fake.url}/chat/completions", json=body, headers=AUTH) as r:
            async for line in r.content:
                if line.startswith(b"data: {"):
                    arrivals.append(time.monotonic())
    assert len(arrivals) == HELLO_EVENTS
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert all(gap > 0.015 for gap in gaps), gaps


async def test_tool_call_answer(client: openai.AsyncOpenAI) -> None:
    answer = await client.chat.completions.create(model=CHAT, messages=HELLO, tools=[WEATHER])
    choice = answer.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    calls = choice.message.tool_calls
    assert calls is not None
    assert len(calls) == 1
    call = calls[0]
    assert call.id.startswith("call_")
    assert call.type == "function"
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "fake", "days": 0}


async def test_tool_call_deltas_assemble(client: openai.AsyncOpenAI) -> None:
    stream = await client.chat.completions.create(
        model=CHAT, messages=HELLO, tools=[WEATHER], stream=True
    )
    chunks = [chunk async for chunk in stream]
    first = chunks[0].choices[0].delta
    assert first.role == "assistant"
    assert first.tool_calls is not None
    opening = first.tool_calls[0]
    assert opening.index == 0
    assert opening.id is not None
    assert opening.id.startswith("call_")
    assert opening.type == "function"
    assert opening.function is not None
    assert (opening.function.name, opening.function.arguments) == ("get_weather", "")
    fragments: list[str] = []
    for chunk in chunks[1:-1]:
        calls = chunk.choices[0].delta.tool_calls
        assert calls is not None
        assert calls[0].id is None
        assert calls[0].function is not None
        fragments.append(calls[0].function.arguments or "")
    assert len(fragments) > 1
    assert json.loads("".join(fragments)) == {"city": "fake", "days": 0}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


async def test_no_tool_call_after_a_tool_result(client: openai.AsyncOpenAI) -> None:
    messages: list[ChatCompletionMessageParam] = [
        *HELLO,
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    answer = await client.chat.completions.create(model=CHAT, messages=messages, tools=[WEATHER])
    assert answer.choices[0].finish_reason == "stop"
    assert answer.choices[0].message.content == "Fake answer to: hello there"


async def test_completions_whole_and_streamed(client: openai.AsyncOpenAI) -> None:
    whole = await client.completions.create(model=CHAT, prompt="Once upon a time")
    assert whole.id.startswith("cmpl-")
    assert whole.object == "text_completion"
    assert whole.choices[0].text == "Fake answer to: Once upon a time"
    assert whole.choices[0].finish_reason == "stop"
    stream = await client.completions.create(
        model=CHAT, prompt="Once upon a time", stream=True, max_tokens=3
    )
    chunks = [chunk async for chunk in stream]
    assert "".join(chunk.choices[0].text for chunk in chunks) == "Fake answer to:"
    assert chunks[-1].choices[0].finish_reason == "length"
    assert all(chunk.choices[0].finish_reason is None for chunk in chunks[:-1])


async def test_completions_default_to_sixteen_tokens(client: openai.AsyncOpenAI) -> None:
    async with FakeOpenAI(KEY, reply=" ".join(["word"] * 30)) as fake:
        sdk = client.with_options(base_url=fake.url)
        answer = await sdk.completions.create(model=CHAT, prompt="Go on")
    assert answer.usage is not None
    assert answer.usage.completion_tokens == 16
    assert answer.choices[0].finish_reason == "length"


async def test_embeddings_float_and_base64(client: openai.AsyncOpenAI) -> None:
    floats = await client.embeddings.create(
        model=EMBED, input=["a cat", "a dog"], encoding_format="float"
    )
    # Without a format the SDK asks for base64 and decodes it itself.
    decoded = await client.embeddings.create(model=EMBED, input=["a cat", "a dog"])
    encoded = await client.embeddings.create(model=EMBED, input="a cat", encoding_format="base64")
    assert [item.index for item in floats.data] == [0, 1]
    vector = floats.data[0].embedding
    assert len(vector) == 8
    assert abs(sum(value * value for value in vector) - 1) < 1e-5
    assert [item.embedding for item in decoded.data] == [item.embedding for item in floats.data]
    # The SDK's types say floats, but an explicit base64 request gets the string untouched.
    packed: object = encoded.data[0].embedding
    assert isinstance(packed, str)
    assert list(struct.unpack("<8f", base64.b64decode(packed))) == vector
    assert floats.usage.prompt_tokens == estimate_prompt_tokens(
        "embedding", {"input": ["a cat", "a dog"]}
    )
    narrow = await client.embeddings.create(
        model=EMBED, input="a cat", dimensions=3, encoding_format="float"
    )
    assert len(narrow.data[0].embedding) == 3


async def test_models_list(client: openai.AsyncOpenAI) -> None:
    models = await client.models.list()
    assert [model.id for model in models.data] == [CHAT, EMBED]
    assert all(model.object == "model" for model in models.data)
    assert all(model.owned_by == "openai" for model in models.data)


# Errors of the API itself


async def test_wrong_key_is_401(fake: FakeOpenAI) -> None:
    async with openai.AsyncOpenAI(base_url=fake.url, api_key="sk-wrong", max_retries=0) as sdk:
        with pytest.raises(openai.AuthenticationError) as caught:
            await sdk.chat.completions.create(model=CHAT, messages=HELLO)
    assert caught.value.status_code == 401
    assert caught.value.code == "invalid_api_key"
    assert caught.value.type == "invalid_request_error"


async def test_missing_key_is_401_with_openai_body(
    fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    async with session.post(f"{fake.url}/chat/completions", json=chat_body()) as response:
        assert response.status == 401
        body = await response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == "invalid_request_error"
    assert body["error"]["param"] is None
    assert body["error"]["code"] == "invalid_api_key"


async def test_no_api_key_accepts_anyone(session: aiohttp.ClientSession) -> None:
    async with (
        FakeOpenAI(None, models=None) as fake,
        session.post(f"{fake.url}/chat/completions", json=chat_body(model="any")) as response,
    ):
        assert response.status == 200
        assert (await response.json())["model"] == "any"


async def test_unknown_model_is_404(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await client.chat.completions.create(model="gpt-nonexistent", messages=HELLO)
    assert caught.value.code == "model_not_found"


async def test_malformed_json_is_400(fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    url = f"{fake.url}/chat/completions"
    async with session.post(url, data=b'{"model": ', headers=AUTH) as response:
        assert response.status == 400
        body = await response.json()
    assert body["error"]["type"] == "invalid_request_error"
    assert "could not parse the JSON body" in body["error"]["message"]
    assert fake.requests[-1].json is None


async def test_missing_messages_and_unknown_path(
    fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    body = {"model": CHAT}
    async with session.post(f"{fake.url}/chat/completions", json=body, headers=AUTH) as response:
        assert response.status == 400
        assert (await response.json())["error"]["param"] == "messages"
    async with session.get(f"{fake.url}/nowhere", headers=AUTH) as response:
        assert response.status == 404
        assert (await response.json())["error"]["message"] == "Invalid URL (GET /v1/nowhere)"


# Faults before the headers


@pytest.mark.parametrize(
    ("fault", "error", "status", "code"),
    [
        (Fault.rate_limited(), openai.RateLimitError, 429, "rate_limit_exceeded"),
        (Fault.server_error(), openai.InternalServerError, 500, None),
        (Fault.unavailable(), openai.InternalServerError, 503, None),
        (Fault.overloaded(), openai.InternalServerError, 529, "server_is_overloaded"),
        (Fault.unauthorized(), openai.AuthenticationError, 401, "invalid_api_key"),
        (Fault.context_length_exceeded(), openai.BadRequestError, 400, "context_length_exceeded"),
        (Fault.content_policy(), openai.BadRequestError, 400, "content_policy_violation"),
    ],
)
async def test_status_faults(
    fake: FakeOpenAI,
    client: openai.AsyncOpenAI,
    fault: Fault,
    error: type[openai.APIStatusError],
    status: int,
    code: str | None,
) -> None:
    fake.enqueue(fault)
    with pytest.raises(error) as caught:
        await client.chat.completions.create(model=CHAT, messages=HELLO)
    assert caught.value.status_code == status
    assert caught.value.code == code
    assert "retry-after" not in caught.value.response.headers
    # Consumed: the next request is answered.
    await client.chat.completions.create(model=CHAT, messages=HELLO)


async def test_rate_limit_with_retry_after(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue(Fault.rate_limited(retry_after=2))
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model=CHAT, messages=HELLO)
    assert caught.value.response.headers["retry-after"] == "2"
    assert caught.value.type == "requests"


async def test_reset_is_a_connection_error(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue(Fault("reset"))
    with pytest.raises(openai.APIConnectionError) as caught:
        await client.chat.completions.create(model=CHAT, messages=HELLO)
    assert not isinstance(caught.value, openai.APITimeoutError)
    await client.chat.completions.create(model=CHAT, messages=HELLO)


async def test_hang_times_the_client_out(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue(Fault("hang"))
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        await client.chat.completions.create(model=CHAT, messages=HELLO, timeout=0.3)
    assert time.monotonic() - started < 2
    await client.chat.completions.create(model=CHAT, messages=HELLO)


async def test_delay_then_answer(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue(Fault("delay", seconds=0.2))
    started = time.monotonic()
    raw = await client.chat.completions.with_raw_response.create(model=CHAT, messages=HELLO)
    assert time.monotonic() - started >= 0.2
    assert int(raw.headers["openai-processing-ms"]) >= 200
    assert raw.parse().choices[0].finish_reason == "stop"


async def test_queue_is_fifo_with_path_filters(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.enqueue(
        Fault.server_error(path="/v1/embeddings"),
        Fault.rate_limited(),
        Fault.unavailable(),
    )
    with pytest.raises(openai.RateLimitError):
        await client.chat.completions.create(model=CHAT, messages=HELLO)
    with pytest.raises(openai.InternalServerError) as unavailable:
        await client.chat.completions.create(model=CHAT, messages=HELLO)
    assert unavailable.value.status_code == 503
    await client.chat.completions.create(model=CHAT, messages=HELLO)
    assert fake.queued == (Fault.server_error(path="/v1/embeddings"),)
    with pytest.raises(openai.InternalServerError):
        await client.embeddings.create(model=EMBED, input="x")
    assert not fake.queued


async def test_default_fault_applies_to_every_request(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.set_default(Fault.server_error())
    fake.enqueue(Fault.rate_limited())
    with pytest.raises(openai.RateLimitError):
        await client.models.list()
    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await client.models.list()
    fake.set_default(None)
    await client.models.list()
    fake.set_default(Fault.server_error())
    fake.reset()
    await client.models.list()
    assert len(fake.requests) == 1


# Faults after the headers


async def test_slow_first_token(fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    fake.enqueue(Fault("slow_first_token", seconds=0.3))
    started = time.monotonic()
    url = f"{fake.url}/chat/completions"
    async with session.post(url, json=chat_body(stream=True), headers=AUTH) as response:
        headers_after = time.monotonic() - started
        await response.content.readline()
        first_after = time.monotonic() - started
        rest = await response.content.read()
    assert headers_after < 0.25
    assert first_after >= 0.3
    assert rest.endswith(DONE_EVENT)


async def test_cut_closes_without_done(fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    fake.enqueue(Fault("cut", after_chunks=3))
    raw, error = await read_raw(session, fake.url, chat_body(stream=True))
    assert isinstance(error, aiohttp.ClientPayloadError)
    assert len(events_of(raw)) == 3
    assert DONE_EVENT not in raw


async def test_cut_through_the_sdk(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.enqueue(Fault("cut", after_chunks=2))
    stream = await client.chat.completions.create(model=CHAT, messages=HELLO, stream=True)
    received: list[str] = []
    with pytest.raises(openai.APIConnectionError):
        async for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert received == ["", "Fake"]


async def test_stall_keeps_the_connection_open(
    fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    fake.enqueue(Fault("stall", after_chunks=2))
    raw, error = await read_raw(session, fake.url, chat_body(stream=True), idle=0.3)
    assert isinstance(error, TimeoutError)
    assert len(events_of(raw)) == 2


async def test_malformed_event_then_the_rest(
    fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    fake.enqueue(Fault("malformed", after_chunks=2))
    raw, error = await read_raw(session, fake.url, chat_body(stream=True))
    assert error is None
    events = events_of(raw)
    assert events[2] == MALFORMED_EVENT.removeprefix(b"data: ").strip()
    assert len(events) == HELLO_EVENTS + 2
    assert raw.endswith(DONE_EVENT)


async def test_no_done(fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    fake.enqueue(Fault("no_done"))
    raw, error = await read_raw(session, fake.url, chat_body(stream=True))
    assert error is None
    assert DONE_EVENT not in raw
    chunks = chunks_of(raw)
    assert len(chunks) == HELLO_EVENTS
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


async def test_no_finish(fake: FakeOpenAI, session: aiohttp.ClientSession) -> None:
    fake.enqueue(Fault("no_finish"))
    body = chat_body(stream=True, stream_options={"include_usage": True})
    raw, error = await read_raw(session, fake.url, body)
    assert error is None
    assert DONE_EVENT not in raw
    chunks = chunks_of(raw)
    assert len(chunks) == HELLO_EVENTS - 1
    assert all(chunk["choices"][0]["finish_reason"] is None for chunk in chunks)
    assert all(chunk["usage"] is None for chunk in chunks)


async def test_error_event(
    fake: FakeOpenAI, session: aiohttp.ClientSession, client: openai.AsyncOpenAI
) -> None:
    fake.enqueue(Fault("error_event", after_chunks=2, message="boom", code="server_error"))
    raw, error = await read_raw(session, fake.url, chat_body(stream=True))
    assert error is None
    assert DONE_EVENT not in raw
    events = events_of(raw)
    assert len(events) == 3
    assert json.loads(events[-1]) == {
        "error": {"message": "boom", "type": "server_error", "param": None, "code": "server_error"}
    }
    fake.enqueue(Fault("error_event", after_chunks=1))
    stream = await client.chat.completions.create(model=CHAT, messages=HELLO, stream=True)
    with pytest.raises(openai.APIError, match="The server had an error"):
        async for _chunk in stream:
            pass


async def test_faults_can_echo_the_requests_credentials(
    fake: FakeOpenAI, session: aiohttp.ClientSession
) -> None:
    fake.enqueue(Fault("error_event", after_chunks=1, message="boom", echo_credentials=True))
    raw, _ = await read_raw(session, fake.url, chat_body(stream=True))
    echoed = json.loads(events_of(raw)[-1])["error"]["message"]
    assert echoed == f"boom (credentials received: {KEY})"
    fake.enqueue(Fault("status", message="boom", echo_credentials=True))
    async with session.post(
        f"{fake.url}/chat/completions?key=query-key",
        json=chat_body(),
        headers={**AUTH, "x-api-key": "other-key"},
    ) as response:
        message = (await response.json())["error"]["message"]
    assert response.status == 500
    assert message == f"boom (credentials received: {KEY}, other-key, query-key)"
    cut = Fault("cut", echo_credentials=True)  # only error messages quote anything
    assert cut.echoing({"authorization": "Bearer x"}, {}) is cut


async def test_after_header_faults_on_whole_answers(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, session: aiohttp.ClientSession
) -> None:
    fake.enqueue(Fault("cut"))
    with pytest.raises(openai.APIConnectionError):
        await client.chat.completions.create(model=CHAT, messages=HELLO)
    fake.enqueue(Fault("malformed"))
    async with session.get(f"{fake.url}/models", headers=AUTH) as response:
        assert response.status == 200
        assert await response.read() == MALFORMED_EVENT
    fake.enqueue(Fault("stall"))
    with pytest.raises(openai.APITimeoutError):
        await client.models.list(timeout=0.3)


# Records, headers, lifecycle


async def test_requests_are_recorded(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    before = time.monotonic()
    await client.chat.completions.create(model=CHAT, messages=HELLO, extra_headers={"X-Trace": "1"})
    await client.models.list()
    first, second = fake.requests
    assert (first.method, first.path) == ("POST", "/v1/chat/completions")
    assert first.headers["authorization"] == f"Bearer {KEY}"
    assert first.headers["x-trace"] == "1"
    assert all(name == name.lower() for name in first.headers)
    assert first.json == {"model": CHAT, "messages": HELLO}
    assert (second.method, second.path, second.json) == ("GET", "/v1/models", None)
    assert before <= first.received_at <= second.received_at <= time.monotonic()
    fake.reset()
    assert fake.requests == []


async def test_rate_limit_headers(client: openai.AsyncOpenAI) -> None:
    limits = RateLimits(
        limit_requests=60,
        remaining_requests=59,
        reset_requests=1,
        limit_tokens=150_000,
        remaining_tokens=149_984,
        reset_tokens=360,
    )
    async with FakeOpenAI(KEY, rate_limits=limits) as fake:
        sdk = client.with_options(base_url=fake.url)
        raw = await sdk.chat.completions.with_raw_response.create(model=CHAT, messages=HELLO)
    headers = raw.headers
    assert headers["x-ratelimit-limit-requests"] == "60"
    assert headers["x-ratelimit-remaining-requests"] == "59"
    assert headers["x-ratelimit-reset-requests"] == "1s"
    assert headers["x-ratelimit-limit-tokens"] == "150000"
    assert headers["x-ratelimit-remaining-tokens"] == "149984"
    assert headers["x-ratelimit-reset-tokens"] == "6m0s"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.012, "12ms"), (1, "1s"), (1.5, "1.5s"), (360, "6m0s"), (3725.5, "1h2m5.5s")],
)
def test_reset_durations_are_written_like_openai(seconds: float, text: str) -> None:
    assert RateLimits(reset_tokens=seconds).headers() == {"x-ratelimit-reset-tokens": text}


def test_faults_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown fault kind"):
        Fault("explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="4xx or 5xx"):
        Fault.http_error(200)
    with pytest.raises(ValueError, match="negative"):
        Fault("delay", seconds=-1)


async def test_url_needs_a_running_server() -> None:
    fake = FakeOpenAI()
    with pytest.raises(RuntimeError, match="not running"):
        _ = fake.url
    await fake.start()
    assert fake.url.startswith("http://127.0.0.1:")
    await fake.close()
    await fake.close()


async def test_close_ends_stalled_and_hanging_handlers(session: aiohttp.ClientSession) -> None:
    fake = FakeOpenAI(KEY)
    await fake.start()
    fake.enqueue(Fault("stall", after_chunks=1), Fault("hang"))
    url = f"{fake.url}/chat/completions"
    hanging = asyncio.create_task(session.post(url, json=chat_body(), headers=AUTH))
    async with session.post(url, json=chat_body(stream=True), headers=AUTH) as stalled:
        await stalled.content.readline()
        for _ in range(100):  # until the hanging request has arrived too
            if len(fake.requests) == 2:
                break
            await asyncio.sleep(0.01)
        started = time.monotonic()
        await fake.close()
        assert time.monotonic() - started < 0.5
        with pytest.raises(aiohttp.ClientPayloadError):
            await stalled.content.read()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await hanging


async def test_command_line_serves_without_auth() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "fakes.fake_openai",
        "--port",
        "0",
        stdout=asyncio.subprocess.PIPE,
        cwd=TESTS_DIR,
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(5):
            line = (await process.stdout.readline()).decode()
        url = line.rsplit(" ", 1)[-1].strip()
        assert url.startswith("http://127.0.0.1:")
        async with openai.AsyncOpenAI(base_url=url, api_key="anything", max_retries=0) as sdk:
            answer = await sdk.chat.completions.create(model="whatever", messages=HELLO)
        assert answer.model == "whatever"
    finally:
        process.terminate()
        await process.communicate()
