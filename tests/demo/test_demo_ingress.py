"""The demo answers the Responses and Messages APIs as it answers Chat Completions: tool calls,
structured output, and OpenAI's refusals of out-of-range parameters, each in the route's own
shape, whole and streamed (the official SDKs as clients)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import jsonschema  # type: ignore[import-untyped]
import openai
import pytest
from demo_rig import instant_demo

from gateway_harness import RunningGateway, running_gateway

WEATHER_TOOL_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
    "required": ["city", "unit"],
}
PERSON: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


@asynccontextmanager
async def _demo() -> AsyncIterator[RunningGateway]:
    async with running_gateway(instant_demo()) as gateway:
        yield gateway


def _anthropic(gateway: RunningGateway) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=gateway.url, api_key="sk-anything", max_retries=0, timeout=10
    )


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_tools_and_structured_output(stream: bool) -> None:
    tools: Any = [
        {"type": "function", "name": "get_weather", "parameters": WEATHER_TOOL_PARAMETERS}
    ]
    async with _demo() as gateway, gateway.client() as client:
        ask = {"model": "gpt-4o-mini", "input": "What is the weather in Paris?", "tools": tools}
        if stream:
            events = [event async for event in await client.responses.create(**ask, stream=True)]
            assert [e.sequence_number for e in events] == list(range(len(events)))
            assert events[-1].type == "response.completed"
            answer = events[-1].response
        else:
            answer = await client.responses.create(**ask)
        (call,) = [item for item in answer.output if item.type == "function_call"]
        assert call.name == "get_weather"
        jsonschema.validate(json.loads(call.arguments), WEATHER_TOOL_PARAMETERS)

        shaped = await client.responses.create(
            model="gpt-4o-mini",
            input="Describe a person",
            text={"format": {"type": "json_schema", "name": "person", "schema": PERSON}},
        )
        jsonschema.validate(json.loads(shaped.output_text), PERSON)


@pytest.mark.parametrize("stream", [False, True])
async def test_messages_tools(stream: bool) -> None:
    tools: Any = [{"name": "get_weather", "input_schema": WEATHER_TOOL_PARAMETERS}]
    messages: Any = [{"role": "user", "content": "What is the weather in Paris?"}]
    async with _demo() as gateway, _anthropic(gateway) as client:
        ask = {"model": "gpt-4o-mini", "max_tokens": 200, "messages": messages, "tools": tools}
        if stream:
            async with client.messages.stream(**ask) as events:
                answer = await events.get_final_message()
        else:
            answer = await client.messages.create(**ask)
    assert answer.stop_reason == "tool_use"
    (use,) = [block for block in answer.content if block.type == "tool_use"]
    assert use.name == "get_weather"
    jsonschema.validate(use.input, WEATHER_TOOL_PARAMETERS)


async def test_out_of_range_parameters_are_refused_in_each_routes_shape() -> None:
    async with _demo() as gateway, gateway.client() as client, _anthropic(gateway) as claude:
        with pytest.raises(openai.BadRequestError) as responses_refusal:
            await client.responses.create(model="gpt-4o-mini", input="Hi", temperature=5)
        with pytest.raises(anthropic.BadRequestError) as messages_refusal:
            await claude.messages.create(
                model="gpt-4o-mini",
                max_tokens=10,
                messages=[{"role": "user", "content": "Hi"}],
                extra_body={"top_p": 3},
            )
    assert "temperature" in responses_refusal.value.message
    assert responses_refusal.value.response.headers["x-should-retry"] == "false"
    body: Any = messages_refusal.value.body
    assert body["type"] == "error"
    assert body["error"]["type"] == "invalid_request_error"
    assert "top_p" in body["error"]["message"]


@pytest.mark.parametrize("stream", [False, True])
async def test_responses_logprobs_when_included(stream: bool) -> None:
    ask: Any = {
        "model": "gpt-4o-mini",
        "input": "Hello",
        "include": ["message.output_text.logprobs"],
        "top_logprobs": 2,
    }
    async with _demo() as gateway, gateway.client() as client:
        if stream:
            events = [event async for event in await client.responses.create(**ask, stream=True)]
            deltas = [e for e in events if e.type == "response.output_text.delta"]
            assert all(delta.logprobs for delta in deltas)
            (done,) = [e for e in events if e.type == "response.output_text.done"]
            assert [p.token for p in done.logprobs] == [
                p.token for delta in deltas for p in delta.logprobs
            ]
            answer = events[-1].response
        else:
            answer = await client.responses.create(**ask)
        plain = await client.responses.create(model="gpt-4o-mini", input="Hello")
    message = answer.output[0]
    assert message.type == "message"
    (part,) = message.content
    assert part.type == "output_text"
    assert part.logprobs
    assert "".join(p.token for p in part.logprobs) == part.text
    assert all(len(p.top_logprobs) == 2 for p in part.logprobs)
    plain_message = plain.output[0]
    assert plain_message.type == "message"
    assert plain_message.content[0].type == "output_text"
    assert plain_message.content[0].logprobs == []
