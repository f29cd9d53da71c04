"""Every provider family through ``/v1/responses``, with the official `openai` SDK's
``client.responses.create``: the same family setups as the chat suite (`test_conformance`),
one gateway per family for the module.

Each scenario checks what the client received (typed items, events numbered in order, the
fake's answer as ``output_text``) and, through the setup's readers, what the provider's fake
received in its own wire format; and each way a provider fails reaches the SDK as the class and
status it does on the chat route, in OpenAI's error shape.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import openai
import pytest
import pytest_asyncio
from conformance_kit import FAILURES, Failure, ProviderSetup, Served, all_setups, serving

pytestmark = pytest.mark.asyncio(loop_scope="module")

WEATHER: Any = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
TRACK: Any = {
    "type": "object",
    "properties": {"answer": {"type": "string"}},
    "required": ["answer"],
    "additionalProperties": False,
}
#: The events of a streamed text answer, each run of deltas shown once.
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
TOOL_EVENTS = [
    "response.created",
    "response.in_progress",
    "response.output_item.added",
    "response.function_call_arguments.delta",
    "response.function_call_arguments.done",
    "response.output_item.done",
    "response.completed",
]


def _openai_schema(body: dict[str, Any]) -> Any:
    return body["response_format"]["json_schema"]["schema"]


def _anthropic_schema(body: dict[str, Any]) -> Any:
    [tool] = body["tools"]
    assert body["tool_choice"] == {"type": "tool", "name": tool["name"]}
    return tool["input_schema"]


def _bedrock_schema(body: dict[str, Any]) -> Any:
    """Converse's structured output (``outputConfig.textFormat``), else a forced tool."""
    text_format = (body.get("outputConfig") or {}).get("textFormat")
    if text_format is not None:
        assert text_format["type"] == "json_schema"
        return json.loads(text_format["structure"]["jsonSchema"]["schema"])
    [tool] = body["toolConfig"]["tools"]
    spec = tool["toolSpec"]
    assert body["toolConfig"]["toolChoice"] == {"tool": {"name": spec["name"]}}
    return spec["inputSchema"]["json"]


def _gemini_schema(body: dict[str, Any]) -> Any:
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    return config.get("responseJsonSchema", config.get("responseSchema"))


#: Where each family's native body carries a structured-output schema.
SCHEMA_SENT: dict[str, Callable[[dict[str, Any]], Any]] = {
    "openai": _openai_schema,
    "azure": _openai_schema,
    "anthropic": _anthropic_schema,
    "bedrock": _bedrock_schema,
    "gemini": _gemini_schema,
}
#: The families whose fakes answer a forced tool with the schema's placeholder JSON, so the
#: answer itself is the structured output (the others' fakes answer plain text whatever asked).
ANSWERS_JSON = {"anthropic"}
#: The families whose content-policy stop arrives inside a stream that already sent its text
#: (Bedrock's guardrail streams its canned message, then ``guardrail_intervened``): the stream
#: cannot turn into an HTTP error, so it ends ``incomplete`` for ``content_filter``.
REFUSED_IN_STREAM = {"bedrock"}


@pytest_asyncio.fixture(
    scope="module", loop_scope="module", params=all_setups(), ids=lambda setup: setup.name
)
async def family(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    setup: ProviderSetup = request.param
    async with serving(setup) as served:
        yield served


@pytest_asyncio.fixture(loop_scope="module")
async def env(family: Served) -> AsyncIterator[tuple[Served, openai.AsyncOpenAI]]:
    family.reset()
    async with family.gateway.client() as client:
        yield family, client
    family.reset()


async def _create(client: openai.AsyncOpenAI, **fields: Any) -> Any:
    responses: Any = client.responses  # typed per literal argument; scenarios pass a dict
    return await responses.create(model="chat", **fields)


async def _events(client: openai.AsyncOpenAI, **fields: Any) -> list[Any]:
    """Every event of a streamed response, checked to be numbered 0, 1, 2... in order."""
    events = [event async for event in await _create(client, stream=True, **fields)]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    return events


def _shape(events: list[Any]) -> list[str]:
    kinds: list[str] = []
    for event in events:
        if not (kinds and kinds[-1] == event.type and event.type.endswith(".delta")):
            kinds.append(event.type)
    return kinds


async def test_a_whole_response(env: tuple[Served, openai.AsyncOpenAI]) -> None:
    served, client = env
    response = await _create(client, instructions="Be brief.", input="What is a turnout?")
    assert response.object == "response"
    assert response.status == "completed"
    assert response.output_text == "Fake answer to: What is a turnout?"
    [item] = response.output
    assert (item.type, item.role, item.status) == ("message", "assistant", "completed")
    assert [part.type for part in item.content] == ["output_text"]
    assert response.usage.input_tokens > 0
    assert response.usage.output_tokens > 0
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    body = served.body()
    assert served.setup.system_prompt(body) == "Be brief."
    assert served.setup.roles(body) == ["user"]


async def test_a_streamed_response_is_typed_events_in_order(
    env: tuple[Served, openai.AsyncOpenAI],
) -> None:
    _, client = env
    events = await _events(client, input="Stream please")
    assert _shape(events) == TEXT_EVENTS
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert "".join(deltas) == "Fake answer to: Stream please"
    [done] = [event for event in events if event.type == "response.output_text.done"]
    assert done.text == "".join(deltas)
    created, final = events[0].response, events[-1].response
    assert final.id == created.id
    assert created.status == "in_progress"
    assert final.status == "completed"
    assert final.output_text == "Fake answer to: Stream please"
    [added] = [event for event in events if event.type == "response.output_item.added"]
    assert {event.item_id for event in events if hasattr(event, "item_id")} == {added.item.id}
    assert final.usage.input_tokens > 0
    assert final.usage.output_tokens > 0


async def test_a_multi_turn_input(env: tuple[Served, openai.AsyncOpenAI]) -> None:
    served, client = env
    response = await _create(
        client,
        input=[
            {"role": "developer", "content": "Answer in one word."},
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": "Hello Ada."},
            {"role": "user", "content": [{"type": "input_text", "text": "What is my name?"}]},
        ],
    )
    assert response.output_text == "Fake answer to: What is my name?"
    body = served.body()
    assert served.setup.system_prompt(body) == "Answer in one word."
    assert served.setup.roles(body) == ["user", "assistant", "user"]


async def test_a_tool_call_round_trip(env: tuple[Served, openai.AsyncOpenAI]) -> None:
    served, client = env
    question = {"role": "user", "content": "Weather in Paris?"}
    first = await _create(client, input=[question], tools=[WEATHER])
    assert first.status == "completed"
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather"
    assert json.loads(call.arguments).keys() == {"city"}
    assert call.call_id
    assert served.setup.tool_names(served.body()) == ["get_weather"]
    second = await _create(
        client,
        input=[
            question,
            {
                "type": "function_call",
                "call_id": call.call_id,
                "name": call.name,
                "arguments": call.arguments,
            },
            {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny, 21"},
        ],
        tools=[WEATHER],
    )
    assert second.status == "completed"
    assert [item.type for item in second.output] == ["message"]
    assert second.output_text == "Fake answer to: Weather in Paris?"
    body = served.body()
    assert served.setup.tool_results(body) == ["Sunny, 21"]
    assert served.setup.roles(body)[0] == "user"


async def test_a_streamed_tool_call(env: tuple[Served, openai.AsyncOpenAI]) -> None:
    _, client = env
    events = await _events(client, input="Weather in Oslo?", tools=[WEATHER])
    assert _shape(events) == TOOL_EVENTS
    [added] = [event for event in events if event.type == "response.output_item.added"]
    assert (added.item.type, added.item.name) == ("function_call", "get_weather")
    deltas = [e.delta for e in events if e.type == "response.function_call_arguments.delta"]
    [done] = [e for e in events if e.type == "response.function_call_arguments.done"]
    assert done.arguments == "".join(deltas)
    assert json.loads(done.arguments).keys() == {"city"}
    [call] = events[-1].response.output
    assert (call.type, call.call_id, call.arguments) == (
        "function_call",
        added.item.call_id,
        done.arguments,
    )


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
async def test_structured_output_by_json_schema(
    env: tuple[Served, openai.AsyncOpenAI], streamed: bool
) -> None:
    served, client = env
    text_format = {"format": {"type": "json_schema", "name": "track", "schema": TRACK}}
    fields: dict[str, Any] = {"input": "Which track?", "text": text_format}
    if streamed:
        events = await _events(client, **fields)
        assert events[-1].type == "response.completed"
        response = events[-1].response
    else:
        response = await _create(client, **fields)
    assert response.status == "completed"
    assert response.text.format.type == "json_schema"
    assert [item.type for item in response.output] == ["message"]  # no tool call shows
    sent = SCHEMA_SENT[served.setup.name](served.body())
    assert sent["properties"].keys() == {"answer"}
    assert sent["required"] == ["answer"]
    if served.setup.name in ANSWERS_JSON:
        assert json.loads(response.output_text).keys() == {"answer"}


async def test_previous_response_id_continues_the_conversation(
    env: tuple[Served, openai.AsyncOpenAI],
) -> None:
    served, client = env
    first = await _create(client, instructions="Be brief.", input="My name is Ada.")
    second = await _create(client, input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    assert second.id != first.id
    assert second.output_text == "Fake answer to: What is my name?"
    body = served.body()
    assert served.setup.roles(body) == ["user", "assistant", "user"]
    assert served.setup.system_prompt(body) is None  # instructions are for their turn only
    stored = await client.responses.retrieve(second.id)
    assert stored.output_text == second.output_text


EXPECTED: dict[Failure, tuple[type[openai.APIStatusError], int, str | None]] = {
    "rate_limited": (openai.RateLimitError, 429, "rate_limit_exceeded"),
    "server_error": (openai.InternalServerError, 502, None),
    "overloaded": (openai.InternalServerError, 502, None),
    "authentication": (openai.InternalServerError, 502, "upstream_credentials_refused"),
    "context_window": (openai.BadRequestError, 400, "context_length_exceeded"),
    "content_policy": (openai.BadRequestError, 400, "content_policy_violation"),
    "bad_request": (openai.BadRequestError, 400, None),
}


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("failure", FAILURES)
async def test_each_failure_reaches_the_sdk_as_its_class(
    env: tuple[Served, openai.AsyncOpenAI], failure: Failure, streamed: bool
) -> None:
    """A failure before the answer's first chunk is an HTTP error, streamed or not: the
    response begins only once there is something to send."""
    served, client = env
    served.setup.fail_next(served.fake, failure)
    if streamed and failure == "content_policy" and served.setup.name in REFUSED_IN_STREAM:
        events = await _events(client, input="Hello")
        assert events[-1].type == "response.incomplete"
        assert events[-1].response.incomplete_details.reason == "content_filter"
        return
    error, status, code = EXPECTED[failure]
    with pytest.raises(error) as caught:
        if streamed:
            await _events(client, input="Hello")
        else:
            await _create(client, input="Hello")
    assert caught.value.status_code == status
    if code is not None:
        assert caught.value.code == code
    whole = caught.value.response.json()
    assert whole.keys() == {"error"}  # OpenAI's shape, not Anthropic's
    assert whole["error"].keys() >= {"message", "type", "param", "code"}
    assert served.setup.name in whole["error"]["message"]
    again = await _create(client, input="Again")  # the gateway is fine afterwards
    assert again.output_text == "Fake answer to: Again"
