"""`/v1/messages` with the official Anthropic SDK against a real gateway, translated onto the
chat router, through the Anthropic and OpenAI fakes: answers whole and streamed (the exact event
order), tool use over two turns, count_tokens, and errors in Anthropic's shape."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import pytest
from messages_kit import (
    FAMILIES,
    MASTER,
    Family,
    deployment,
    gateway,
    litellm_config,
    raw_events,
    sdk,
    served,
    upstream_bodies,
    upstreams,
)

_USER: Any = {"role": "user", "content": "x"}
WEATHER: Any = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_message_is_answered_whole_in_anthropic_shape(family: Family) -> None:
    async with served(family) as (fakes, client):
        raw = await client.messages.with_raw_response.create(
            model="claude",
            max_tokens=64,
            system="Answer briefly.",
            messages=[{"role": "user", "content": "hello there"}],
            metadata={"user_id": "user-7"},
            # Sampling settings older API versions take, which the gateway still passes on.
            extra_body={"temperature": 0.5, "service_tier": "auto"},
        )
        message = await raw.parse()
        assert raw.headers["x-turnout-model-group"] == "claude"
    assert message.type == "message" and message.role == "assistant"
    assert message.id.startswith("msg_")
    # Translated answers name the model asked; an Anthropic deployment's own answer, relayed
    # as it came, names its model.
    assert message.model == ("claude" if family == "openai" else "claude-sonnet-4-5")
    [block] = message.content
    assert block.type == "text" and block.text == "Fake answer to: hello there"
    assert message.stop_reason == "end_turn" and message.stop_sequence is None
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    [sent] = upstream_bodies(fakes, family)
    if family == "openai":
        assert sent["messages"][0] == {"role": "system", "content": "Answer briefly."}
        assert (sent["max_tokens"], sent["user"]) == (64, "user-7")
    else:
        assert sent["system"] == "Answer briefly."
        assert sent["metadata"] == {"user_id": "user-7"}
    assert sent["temperature"] == 0.5


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_cut_answer_stops_for_max_tokens(family: Family) -> None:
    async with served(family) as (_, client):
        message = await client.messages.create(
            model="claude", max_tokens=2, messages=[{"role": "user", "content": "a b c d e"}]
        )
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 2


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_stream_sends_anthropics_events_in_order(family: Family) -> None:
    async with upstreams() as fakes:
        config = litellm_config(deployment("claude", family, fakes.url(family)))
        async with gateway(config) as running:
            body: dict[str, Any] = {
                "model": "claude",
                "max_tokens": 64,
                "messages": [{"role": "user", "content": "stream me"}],
            }
            events = await raw_events(running.url, body)
            async with sdk(running) as client, client.messages.stream(**body) as stream:
                final = await stream.get_final_message()
    names = [name for name, _ in events if name != "ping"]
    deltas = names.count("content_block_delta")
    assert deltas == 5  # one per word of "Fake answer to: stream me"
    assert names == [
        "message_start",
        "content_block_start",
        *["content_block_delta"] * deltas,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert all(name == data["type"] for name, data in events)
    start = events[0][1]["message"]
    assert (start["content"], start["stop_reason"]) == ([], None)
    text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
    assert text == "Fake answer to: stream me"
    delta = next(d for n, d in events if n == "message_delta")
    assert delta["delta"]["stop_reason"] == "end_turn"
    assert delta["usage"]["output_tokens"] == deltas
    assert [block.text for block in final.content if block.type == "text"] == [text]
    assert final.stop_reason == "end_turn"


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("streamed", [False, True])
async def test_tool_use_over_two_turns(family: Family, streamed: bool) -> None:
    question: Any = {"role": "user", "content": "What is the weather in Paris?"}
    async with served(family) as (fakes, client):

        async def ask(messages: list[Any]) -> anthropic.types.Message:
            request: dict[str, Any] = {
                "model": "claude",
                "max_tokens": 128,
                "messages": messages,
                "tools": [WEATHER],
                "tool_choice": {"type": "auto"},
            }
            if not streamed:
                answer: anthropic.types.Message = await client.messages.create(**request)
                return answer
            async with client.messages.stream(**request) as stream:
                return await stream.get_final_message()

        first = await ask([question])
        assert first.stop_reason == "tool_use"
        [call] = [block for block in first.content if block.type == "tool_use"]
        assert call.name == "get_weather" and isinstance(call.input, dict)
        assert set(call.input) == {"city"}
        result = {"type": "tool_result", "tool_use_id": call.id, "content": "Sunny, 21 C"}
        second = await ask(
            [
                question,
                {"role": "assistant", "content": first.content},
                {"role": "user", "content": [result]},
            ]
        )
    assert second.stop_reason == "end_turn"
    assert [block.type for block in second.content] == ["text"]
    sent = upstream_bodies(fakes, family)[-1]
    if family == "openai":
        assert sent["tools"][0]["function"]["name"] == "get_weather"
        assert sent["messages"][-2]["tool_calls"][0]["id"] == call.id
        assert sent["messages"][-1] == {
            "role": "tool",
            "tool_call_id": call.id,
            "content": "Sunny, 21 C",
        }
    else:
        assert sent["tools"][0]["name"] == "get_weather"
        assert sent["messages"][-1]["content"][0]["tool_use_id"] == call.id


async def test_count_tokens_estimates_the_prompt() -> None:
    async with served("openai") as (fakes, client):
        short = await client.messages.count_tokens(
            model="claude", messages=[{"role": "user", "content": "hi"}]
        )
        longer = await client.messages.count_tokens(
            model="claude",
            system="You are a careful assistant. " * 20,
            messages=[{"role": "user", "content": "hi"}],
            tools=[WEATHER],
        )
        with pytest.raises(anthropic.NotFoundError):
            await client.messages.count_tokens(
                model="nope", messages=[{"role": "user", "content": "hi"}]
            )
    assert 0 < short.input_tokens < longer.input_tokens
    assert upstream_bodies(fakes, "openai") == []


async def test_errors_come_in_anthropics_shape() -> None:
    async with upstreams() as fakes:
        config = litellm_config(deployment("claude", "openai", fakes.url("openai")))
        async with gateway(config) as running:
            async with sdk(running) as client:
                with pytest.raises(anthropic.BadRequestError) as bad:
                    await client.messages.create(model="claude", max_tokens=0, messages=[_USER])
                with pytest.raises(anthropic.NotFoundError) as unknown:
                    await client.messages.create(
                        model="nope", max_tokens=8, messages=[{"role": "user", "content": "x"}]
                    )
            async with sdk(running, api_key="sk-wrong") as client:
                with pytest.raises(anthropic.AuthenticationError) as refused:
                    await client.messages.create(
                        model="claude", max_tokens=8, messages=[{"role": "user", "content": "x"}]
                    )
            async with aiohttp.ClientSession() as http:
                body = {"model": "claude", "max_tokens": 8, "messages": [_USER]}
                url = f"{running.url}/v1/messages"
                bearer_auth = {"authorization": f"Bearer {MASTER}"}
                async with http.post(url, json=body, headers=bearer_auth) as answer:
                    bearer = (answer.status, await answer.json())
                async with http.post(url, data=b"{", headers={"x-api-key": MASTER}) as answer:
                    not_json = (answer.status, await answer.json())
    assert bad.value.body == {
        "type": "error",
        "error": {
            "type": "invalid_request_error",
            "message": "max_tokens: Input should be an integer of at least 1",
        },
    }
    assert unknown.value.status_code == 404
    assert isinstance(unknown.value.body, dict)
    assert unknown.value.body["error"]["type"] == "not_found_error"
    assert "`nope`" in unknown.value.body["error"]["message"]
    assert refused.value.status_code == 401
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["error"]["type"] == "authentication_error"
    assert "sk-wrong" not in refused.value.response.text
    assert bearer[0] == 200 and bearer[1]["type"] == "message"
    assert not_json[0] == 400
    assert not_json[1]["type"] == "error"
    assert not_json[1]["error"]["type"] == "invalid_request_error"
