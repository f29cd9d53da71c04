"""``/v1/responses`` through the official `openai` SDK, against fake OpenAI and Anthropic
upstreams: text, tools over two turns, structured output, whole and streamed, and the typed
event sequence numbered 0..n."""

from __future__ import annotations

import json

import pytest
from responses_kit import PROVIDERS, WEATHER, respond, serving, shape

TEXT_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
    "response.output_text.done",
    "response.content_part.done",
    "response.output_item.done",
    "response.completed",
]
CALL_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
]


@pytest.mark.parametrize("group", PROVIDERS)
@pytest.mark.parametrize("streamed", [False, True])
async def test_text_with_instructions(group: str, streamed: bool) -> None:
    async with serving() as served:
        asked = {"model": group, "instructions": "Be brief.", "input": "Where is Lyon?"}
        response, events = await respond(served.client, streamed, **asked)
        if streamed:
            assert shape(events) == TEXT_EVENTS
            assert events[0].response.status == "in_progress"
            deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
            assert response.output_text == "".join(deltas)
        assert response.id.startswith("resp_")
        assert response.status == "completed"
        assert response.instructions == "Be brief."
        assert "Where is Lyon?" in response.output_text
        usage = response.usage
        assert usage.output_tokens > 0
        assert usage.total_tokens == usage.input_tokens + usage.output_tokens
        sent = served.last_chat(group)
        assert "Be brief." in json.dumps(sent.get("system") or sent["messages"][0])


@pytest.mark.parametrize("group", PROVIDERS)
@pytest.mark.parametrize("streamed", [False, True])
async def test_a_tool_call_and_its_result_over_two_turns(group: str, streamed: bool) -> None:
    async with serving() as served:
        question = {"role": "user", "content": [{"type": "input_text", "text": "Lyon?"}]}
        asked = {"model": group, "input": [question], "tools": [WEATHER], "store": False}
        first, events = await respond(served.client, streamed, **asked)
        if streamed:
            assert shape(events) == CALL_EVENTS
            done = events[-3]
            assert done.arguments == first.output[0].arguments
        [call] = first.output
        assert call.type == "function_call"
        assert call.name == "get_weather"
        assert "city" in json.loads(call.arguments)
        result = {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}
        turn = [question, call.model_dump(exclude_none=True), result]
        second, _ = await respond(served.client, streamed, model=group, input=turn, tools=[WEATHER])
        assert second.status == "completed"
        assert [item.type for item in second.output] == ["message"]
        sent = json.dumps(served.last_chat(group))
        assert call.call_id in sent
        assert "Sunny" in sent


@pytest.mark.parametrize("streamed", [False, True])
async def test_structured_output_follows_the_schema(streamed: bool) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
        "required": ["city", "country"],
        "additionalProperties": False,
    }
    text = {"format": {"type": "json_schema", "name": "place", "schema": schema, "strict": True}}
    async with serving() as served:
        # Anthropic has no response_format: the gateway's adapter forces a tool instead.
        answer, _ = await respond(
            served.client, streamed, model="claude", input="Where is Lyon?", text=text
        )
        assert set(json.loads(answer.output_text)) == {"city", "country"}
        assert answer.text.format.type == "json_schema"
        asked = {"text": text, "reasoning": {"effort": "low"}, "max_output_tokens": 50}
        await respond(served.client, streamed, model="gpt", input="Where?", **asked)
        sent = served.last_chat("gpt")
        assert sent["response_format"]["json_schema"]["schema"] == schema
        assert sent["reasoning_effort"] == "low"
        assert sent["max_completion_tokens"] == 50


@pytest.mark.parametrize("group", PROVIDERS)
@pytest.mark.parametrize("streamed", [False, True])
async def test_an_answer_cut_by_max_output_tokens_is_incomplete(group: str, streamed: bool) -> None:
    async with serving() as served:
        asked = {"model": group, "input": "Tell me a long story about Lyon", "max_output_tokens": 2}
        response, events = await respond(served.client, streamed, **asked)
        assert response.status == "incomplete"
        assert response.incomplete_details.reason == "max_output_tokens"
        if streamed:
            assert events[-1].type == "response.incomplete"


async def test_an_image_reaches_the_upstream_as_a_chat_image_part() -> None:
    image = "data:image/png;base64,iVBORw0KGgo="
    content = [
        {"type": "input_text", "text": "What is this?"},
        {"type": "input_image", "image_url": image, "detail": "low"},
    ]
    async with serving() as served:
        await respond(
            served.client, False, model="gpt", input=[{"role": "user", "content": content}]
        )
        [message] = served.last_chat("gpt")["messages"]
        assert message["content"][1] == {
            "type": "image_url",
            "image_url": {"url": image, "detail": "low"},
        }
