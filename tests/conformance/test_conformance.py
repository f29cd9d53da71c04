"""One suite, every provider family: the same scenarios through the real gateway and the SDK.

Each scenario checks what the client received and, through the setup's readers, what the
provider's fake received in its own wire format (system prompt placement, turn roles, image
parts, tool definitions and results).
"""

from __future__ import annotations

import base64
import importlib
import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
from conformance_kit import FAILURES, Failure, ProviderSetup

from gateway_harness import gateway_config, running_gateway
from turnout import HealthConfig, RetryConfig

SETUPS: list[ProviderSetup] = [
    importlib.import_module(path.stem).SETUP
    for path in sorted(Path(__file__).parent.glob("setup_*.py"))
]
# A one-pixel PNG, as a data URL.
PIXEL = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d4944415478da63f8ffff3f0005fe02fea7d6a4280000000049454e44ae426082"
    )
).decode()
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@dataclass
class Env:
    setup: ProviderSetup
    fake: Any
    client: openai.AsyncOpenAI

    def body(self) -> dict[str, Any]:
        return self.setup.last_body(self.fake)


@pytest.fixture(params=SETUPS, ids=lambda setup: setup.name)
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    setup: ProviderSetup = request.param
    async with AsyncExitStack() as stack:
        fake = await stack.enter_async_context(setup.start())
        deployments = [setup.chat(fake, "chat")]
        if setup.embedding is not None:
            deployments.append(setup.embedding(fake, "embed"))
        config = gateway_config(
            *deployments,
            retries=RetryConfig(num_retries=0),
            health=HealthConfig(disable_cooldowns=True),
        )
        gateway = await stack.enter_async_context(running_gateway(config))
        client = await stack.enter_async_context(gateway.client())
        yield Env(setup, fake, client)


async def _chat(env: Env, messages: list[Any], **options: Any) -> Any:
    return await env.client.chat.completions.create(model="chat", messages=messages, **options)


async def test_plain_chat(env: Env) -> None:
    answer = await _chat(env, [{"role": "user", "content": "What is a turnout?"}])
    choice = answer.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content.startswith("Fake answer to: What is a turnout?")
    assert choice.finish_reason == "stop"
    assert answer.usage.prompt_tokens > 0
    assert answer.usage.completion_tokens > 0
    assert answer.object == "chat.completion"


async def test_system_prompt_goes_where_the_provider_wants_it(env: Env) -> None:
    await _chat(
        env,
        [
            {"role": "system", "content": "Answer in one word."},
            {"role": "user", "content": "Hello"},
        ],
    )
    body = env.body()
    assert env.setup.system_prompt(body) == "Answer in one word."
    assert env.setup.roles(body) == ["user"]


async def test_multi_turn_conversation(env: Env) -> None:
    answer = await _chat(
        env,
        [
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": "What is my name?"},
        ],
    )
    assert answer.choices[0].message.content.startswith("Fake answer to: What is my name?")
    assert env.setup.roles(env.body()) == ["user", "assistant", "user"]


async def test_images_inline(env: Env) -> None:
    answer = await _chat(
        env,
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Describe this picture"},
                    {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                ],
            }
        ],
    )
    assert answer.choices[0].message.content.startswith("Fake answer to: Describe this picture")
    assert env.setup.images(env.body()) == 1


async def test_images_by_url(env: Env) -> None:
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe this picture"},
                {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
            ],
        }
    ]
    if env.setup.image_urls:
        await _chat(env, messages)
        assert env.setup.images(env.body()) == 1
    else:
        with pytest.raises(openai.BadRequestError) as caught:
            await _chat(env, messages)
        assert "image" in caught.value.message.lower()


async def test_tool_round_trip(env: Env) -> None:
    question: Any = {"role": "user", "content": "Weather in Paris?"}
    first = await _chat(env, [question], tools=[WEATHER])
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments).keys() == {"city"}
    assert env.setup.tool_names(env.body()) == ["get_weather"]
    second = await _chat(
        env,
        [
            question,
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": call.function.arguments},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 degrees"},
        ],
        tools=[WEATHER],
    )
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content.startswith("Fake answer to: Weather in Paris?")
    assert env.setup.tool_results(env.body()) == ["Sunny, 21 degrees"]


async def test_streaming_text(env: Env) -> None:
    stream = await _chat(env, [{"role": "user", "content": "Stream please"}], stream=True)
    ids = set()
    text = ""
    finish = None
    async for chunk in stream:
        ids.add(chunk.id)
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert text.startswith("Fake answer to: Stream please")
    assert finish == "stop"
    assert len(ids) == 1


async def test_streaming_tool_call_deltas(env: Env) -> None:
    stream = await _chat(
        env, [{"role": "user", "content": "Weather in Oslo?"}], tools=[WEATHER], stream=True
    )
    names: list[str] = []
    arguments = ""
    finish = None
    async for chunk in stream:
        if not chunk.choices:
            continue
        for call in chunk.choices[0].delta.tool_calls or []:
            assert call.index == 0
            if call.function and call.function.name:
                names.append(call.function.name)
            if call.function and call.function.arguments:
                arguments += call.function.arguments
        finish = chunk.choices[0].finish_reason or finish
    assert names == ["get_weather"]
    assert json.loads(arguments).keys() == {"city"}
    assert finish == "tool_calls"


async def test_streaming_usage(env: Env) -> None:
    stream = await _chat(
        env,
        [{"role": "user", "content": "Count my tokens"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
            assert chunk.choices == []
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert usage.completion_tokens > 0
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


EXPECTED: dict[Failure, tuple[type[openai.APIStatusError], int, str | None]] = {
    "rate_limited": (openai.RateLimitError, 429, "rate_limit_exceeded"),
    "server_error": (openai.InternalServerError, 502, None),
    "overloaded": (openai.InternalServerError, 502, None),
    "authentication": (openai.InternalServerError, 502, "upstream_credentials_refused"),
    "context_window": (openai.BadRequestError, 400, "context_length_exceeded"),
    "content_policy": (openai.BadRequestError, 400, "content_policy_violation"),
    "bad_request": (openai.BadRequestError, 400, None),
}


@pytest.mark.parametrize("failure", FAILURES)
async def test_each_failure_reaches_the_sdk_as_its_class(env: Env, failure: Failure) -> None:
    env.setup.fail_next(env.fake, failure)
    error, status, code = EXPECTED[failure]
    with pytest.raises(error) as caught:
        await _chat(env, [{"role": "user", "content": "Hello"}])
    assert caught.value.status_code == status
    if code is not None:
        assert caught.value.code == code
    body = caught.value.body
    assert isinstance(body, dict)
    assert env.setup.name in str(body.get("message", ""))
    # The gateway is fine afterwards.
    answer = await _chat(env, [{"role": "user", "content": "Again"}])
    assert answer.choices[0].message.content


async def test_embeddings(env: Env) -> None:
    if env.setup.embedding is None:
        with pytest.raises(openai.NotFoundError):
            await env.client.embeddings.create(model="embed", input=["a"])
        return
    result = await env.client.embeddings.create(model="embed", input=["first", "second"])
    assert [item.index for item in result.data] == [0, 1]
    assert len(result.data[0].embedding) > 0
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens > 0
