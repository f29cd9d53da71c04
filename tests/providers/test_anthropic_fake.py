"""`FakeAnthropic` on its own wire, and the Anthropic adapter against it over real HTTP."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import aiohttp
import pytest

from fakes.fake_anthropic import FakeAnthropic, Fault, RateLimits
from turnout import Deployment, Request, Secret
from turnout.errors import (
    AuthenticationError,
    ContentPolicyError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from turnout.providers.anthropic.adapter import create_adapter
from turnout.providers.http import HttpProvider
from turnout.testing import ManualClock
from turnout.upstream.aiohttp import AiohttpTransport
from turnout.wire import StreamChunk

KEY = "sk-ant-fake"
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
BODY: dict[str, Any] = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "What is a turnout?"}],
}
TOOL = {
    "name": "get_weather",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    },
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic() as server:
        yield server


async def _post(
    fake: FakeAnthropic, body: Any, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{fake.url}/v1/messages", json=body, headers=headers or HEADERS) as reply,
    ):
        headers = {name.lower(): value for name, value in reply.headers.items()}
        return reply.status, headers, await reply.read()


def _events(data: bytes) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in data.decode().strip().split("\n\n"):
        name_line, data_line = block.split("\n")
        assert name_line.startswith("event: ") and data_line.startswith("data: ")
        payload = json.loads(data_line[6:])
        assert payload["type"] == name_line[7:]
        events.append((name_line[7:], payload))
    return events


async def test_a_whole_message(fake: FakeAnthropic) -> None:
    status, headers, data = await _post(fake, BODY)
    assert status == 200
    assert headers["request-id"].startswith("req_")
    message = json.loads(data)
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["id"].startswith("msg_")
    assert message["content"] == [{"type": "text", "text": "Fake answer to: What is a turnout?"}]
    assert message["stop_reason"] == "end_turn" and message["stop_sequence"] is None
    assert message["usage"]["input_tokens"] > 0
    assert message["usage"]["output_tokens"] == 7
    assert fake.requests[-1].headers["x-api-key"] == KEY


async def test_the_documented_event_sequence_with_ping(fake: FakeAnthropic) -> None:
    _, headers, data = await _post(fake, {**BODY, "stream": True})
    assert headers["content-type"].startswith("text/event-stream")
    events = _events(data)
    names = [name for name, _ in events]
    assert names == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 7,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[0][1]["message"]["content"] == []
    assert events[0][1]["message"]["stop_reason"] is None
    text = "".join(
        payload["delta"]["text"] for name, payload in events if name == "content_block_delta"
    )
    assert text == "Fake answer to: What is a turnout?"
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"] == {"output_tokens": 7}


async def test_a_tool_call_then_text_after_its_result(fake: FakeAnthropic) -> None:
    body = {**BODY, "tools": [TOOL], "stream": True}
    events = _events((await _post(fake, body))[2])
    start = events[1][1]["content_block"]
    assert start["type"] == "tool_use" and start["input"] == {} and start["id"].startswith("toolu_")
    fragments = [p["delta"]["partial_json"] for n, p in events if n == "content_block_delta"]
    assert fragments[0] == ""
    assert json.loads("".join(fragments)) == {"city": "fake", "days": 0}
    assert events[-2][1]["delta"]["stop_reason"] == "tool_use"
    call = {
        "type": "tool_use",
        "id": start["id"],
        "name": "get_weather",
        "input": {"city": "x", "days": 1},
    }
    result = {"type": "tool_result", "tool_use_id": start["id"], "content": "Sunny"}
    follow_up = {
        **BODY,
        "tools": [TOOL],
        "messages": [
            *BODY["messages"],
            {"role": "assistant", "content": [call]},
            {"role": "user", "content": [result]},
        ],
    }
    message = json.loads((await _post(fake, follow_up))[2])
    assert message["content"][0]["text"] == "Fake answer to: What is a turnout?"
    named = {
        **BODY,
        "tools": [{**TOOL, "name": "other"}, TOOL],
        "tool_choice": {"type": "tool", "name": "get_weather"},
    }
    assert json.loads((await _post(fake, named))[2])["content"][0]["name"] == "get_weather"
    none = {**BODY, "tools": [TOOL], "tool_choice": {"type": "none"}}
    assert json.loads((await _post(fake, none))[2])["content"][0]["type"] == "text"


async def test_max_tokens_and_stop_sequences_end_the_answer(fake: FakeAnthropic) -> None:
    capped = json.loads((await _post(fake, {**BODY, "max_tokens": 2}))[2])
    assert capped["content"][0]["text"] == "Fake answer"
    assert capped["stop_reason"] == "max_tokens"
    stopped = json.loads((await _post(fake, {**BODY, "stop_sequences": ["to:", "answer"]}))[2])
    assert stopped["content"][0]["text"] == "Fake "
    assert (stopped["stop_reason"], stopped["stop_sequence"]) == ("stop_sequence", "answer")


@pytest.mark.parametrize(
    ("headers", "status", "error_type", "message"),
    [
        (
            {"anthropic-version": "2023-06-01"},
            401,
            "authentication_error",
            "x-api-key header is required",
        ),
        (
            {"x-api-key": "wrong", "anthropic-version": "2023-06-01"},
            401,
            "authentication_error",
            "invalid x-api-key",
        ),
        ({"x-api-key": KEY}, 400, "invalid_request_error", "anthropic-version: header is required"),
    ],
)
async def test_authentication_and_version_header(
    fake: FakeAnthropic, headers: dict[str, str], status: int, error_type: str, message: str
) -> None:
    got, _, data = await _post(fake, BODY, headers)
    error = json.loads(data)
    assert got == status
    assert error["type"] == "error"
    assert error["error"] == {"type": error_type, "message": message}
    assert error["request_id"].startswith("req_")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_tokens": None}, "max_tokens: Field required"),
        ({"n": 1}, "n: Extra inputs are not permitted"),
        ({"messages": [{"role": "system", "content": "x"}]}, 'Unexpected role "system"'),
        (
            {"messages": [{"role": "user", "content": [{"type": "text", "text": ""}]}]},
            "must be non-empty",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image",
                                "source": {
                                    "type": "base64",
                                    "media_type": "image/bmp",
                                    "data": "x",
                                },
                            }
                        ],
                    }
                ]
            },
            "media_type",
        ),
        (
            {
                "messages": [
                    {"role": "user", "content": "x"},
                    {
                        "role": "assistant",
                        "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
                    },
                    {"role": "user", "content": "y"},
                ]
            },
            "`tool_use` ids were found without `tool_result` blocks immediately after: t1",
        ),
        ({"tools": [{"name": "f", "parameters": {}}]}, "tools.0.input_schema"),
        ({"tool_choice": {"type": "required"}}, "tool_choice.type"),
        ({"temperature": 1.5}, "temperature: range: 0..1"),
    ],
)
async def test_malformed_requests_are_refused_as_anthropic_refuses_them(
    fake: FakeAnthropic, change: dict[str, Any], message: str
) -> None:
    body = {k: v for k, v in {**BODY, **change}.items() if v is not None}
    status, _, data = await _post(fake, body)
    assert status == 400
    error = json.loads(data)["error"]
    assert error["type"] == "invalid_request_error"
    assert message in error["message"]


async def test_unknown_models_and_the_model_list() -> None:
    async with FakeAnthropic(models=("claude-sonnet-4-5",)) as fake:
        status, _, data = await _post(fake, {**BODY, "model": "claude-nope"})
        assert status == 404
        assert json.loads(data)["error"] == {
            "type": "not_found_error",
            "message": "model: claude-nope",
        }
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{fake.url}/v1/models", headers=HEADERS) as reply,
        ):
            listing = await reply.json()
        assert [model["id"] for model in listing["data"]] == ["claude-sonnet-4-5"]


async def test_status_faults_and_rate_limit_headers() -> None:
    limits = RateLimits(requests_limit=50, requests_remaining=0, requests_reset=30)
    async with FakeAnthropic(rate_limits=limits) as fake:
        fake.enqueue(Fault.rate_limited(retry_after=3))
        status, headers, data = await _post(fake, BODY)
        assert status == 429
        assert headers["retry-after"] == "3"
        assert headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert datetime.fromisoformat(headers["anthropic-ratelimit-requests-reset"]).tzinfo
        assert json.loads(data)["error"]["type"] == "rate_limit_error"
        assert (await _post(fake, BODY))[0] == 200  # consumed


async def test_stream_faults_on_the_wire(fake: FakeAnthropic) -> None:
    fake.enqueue(Fault("error_event", error_type="overloaded_error", message="Overloaded"))
    events = _events((await _post(fake, {**BODY, "stream": True}))[2])
    assert [name for name, _ in events] == [
        "message_start",
        "content_block_start",
        "ping",
        "content_block_delta",
        "error",
    ]
    assert events[-1][1]["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    fake.enqueue(Fault("no_stop"))
    assert _events((await _post(fake, {**BODY, "stream": True}))[2])[-1][0] == "message_delta"
    fake.enqueue(Fault.refused(words=2))
    refused = json.loads((await _post(fake, BODY))[2])
    assert refused["stop_reason"] == "refusal"
    assert refused["content"] == [{"type": "text", "text": "Fake answer"}]
    assert refused["stop_details"]["type"] == "refusal"


# -- the adapter against the fake, over the real HTTP transport ------------------------------


@pytest.fixture
async def provider() -> AsyncIterator[HttpProvider]:
    transport = AiohttpTransport()
    try:
        yield HttpProvider(create_adapter("anthropic", {}, ManualClock()), transport)
    finally:
        await transport.aclose()


def _deployment(fake: FakeAnthropic, key: str = KEY) -> Deployment:
    return Deployment(
        model_name="chat",
        provider="anthropic",
        model="claude-sonnet-4-5",
        base_url=fake.url,
        api_key=Secret(key),
    )


def _request(**body: Any) -> Request:
    return Request(
        model="chat", body={"messages": [{"role": "user", "content": "Hi there"}], **body}
    )


async def _collect(
    provider: HttpProvider, deployment: Deployment, request: Request
) -> list[StreamChunk]:
    return [chunk async for chunk in provider.stream(deployment, request)]


async def test_adapter_round_trip(fake: FakeAnthropic, provider: HttpProvider) -> None:
    answer = await provider.complete(_deployment(fake), _request())
    assert answer.body["choices"][0]["message"]["content"] == "Fake answer to: Hi there"
    assert answer.usage.completion_tokens == 5
    chunks = await _collect(provider, _deployment(fake), _request(stream=True))
    text = "".join(chunk.data["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert text == "Fake answer to: Hi there"
    assert chunks[-1].finish_reason == "stop" and chunks[-1].usage is not None


async def test_adapter_maps_the_fakes_failures(fake: FakeAnthropic, provider: HttpProvider) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await provider.complete(_deployment(fake, key="sk-ant-wrong"), _request())
    assert "sk-ant-wrong" not in caught.value.message
    fake.enqueue(Fault.overloaded())
    with pytest.raises(ServerError) as overloaded:
        await provider.complete(_deployment(fake), _request())
    assert overloaded.value.upstream_status == 529
    fake.enqueue(Fault.rate_limited(retry_after=2))
    with pytest.raises(RateLimitError) as limited:
        await provider.complete(_deployment(fake), _request())
    assert limited.value.retry_after == 2.0
    fake.enqueue(Fault.refused(), Fault.refused())
    with pytest.raises(ContentPolicyError):
        await provider.complete(_deployment(fake), _request())
    with pytest.raises(ContentPolicyError):
        await _collect(provider, _deployment(fake), _request(stream=True))


async def test_adapter_stream_faults(fake: FakeAnthropic, provider: HttpProvider) -> None:
    fake.enqueue(Fault("error_event", error_type="overloaded_error", message="Overloaded"))
    seen: list[StreamChunk] = []
    with pytest.raises(ServerError, match=r"^anthropic: Overloaded"):
        async for chunk in provider.stream(_deployment(fake), _request(stream=True)):
            seen.append(chunk)
    assert [c.data["choices"][0]["delta"].get("content") for c in seen] == ["", "Fake"]
    fake.enqueue(Fault("malformed"))
    with pytest.raises(StreamInterruptedError):
        await _collect(provider, _deployment(fake), _request(stream=True))
    fake.enqueue(Fault("cut", after_chunks=5))
    cut: list[StreamChunk] = []
    with pytest.raises(StreamInterruptedError):
        async for chunk in provider.stream(_deployment(fake), _request(stream=True)):
            cut.append(chunk)
    assert len(cut) == 3 and all(chunk.finish_reason is None for chunk in cut)
    fake.enqueue(Fault("no_stop"))
    finished = await _collect(provider, _deployment(fake), _request(stream=True))
    assert finished[-1].finish_reason == "stop"


async def test_a_prefill_or_a_request_to_continue_gets_the_rest_of_the_answer(
    fake: FakeAnthropic, provider: HttpProvider
) -> None:
    prefilled = _request(
        messages=[
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Fake answer"},
        ]
    )
    answer = await provider.complete(_deployment(fake), prefilled)
    assert answer.body["choices"][0]["message"]["content"] == " to: Hi there"
    assert fake.requests[-1].json["messages"][-1] == {"role": "assistant", "content": "Fake answer"}
    again = _request(
        messages=[
            {"role": "user", "content": "Hi there"},
            {"role": "assistant", "content": "Fake answer to:"},
            {"role": "user", "content": "Your previous message was cut off. Continue it."},
        ],
        stream=True,
    )
    chunks = await _collect(provider, _deployment(fake), again)
    text = "".join(chunk.data["choices"][0]["delta"].get("content") or "" for chunk in chunks)
    assert text == " Hi there"
