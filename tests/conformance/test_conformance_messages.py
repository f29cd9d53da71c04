"""Every provider family through ``/v1/messages``, with the official `anthropic` SDK's
``client.messages.create``: the same family setups as the chat suite (`test_conformance`), one
gateway per family for the module. The Anthropic family gets the request natively, every other
one through the translation; the client must not be able to tell.

Each scenario checks what the client received (blocks, events in Anthropic's order, usage) and,
through the setup's readers, what the provider's fake received in its own wire format; and each
way a provider fails reaches the SDK as its class and status in Anthropic's error shape.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest
import pytest_asyncio
from conformance_kit import FAILURES, Failure, ProviderSetup, Served, all_setups, serving

pytestmark = pytest.mark.asyncio(loop_scope="module")

WEATHER: Any = {
    "name": "get_weather",
    "description": "The weather in a city",
    "input_schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}
#: A streamed text answer's events (``ping`` left out), each run of deltas shown once.
TEXT_EVENTS = [
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
]


@pytest_asyncio.fixture(
    scope="module", loop_scope="module", params=all_setups(), ids=lambda setup: setup.name
)
async def family(request: pytest.FixtureRequest) -> AsyncIterator[Served]:
    setup: ProviderSetup = request.param
    async with serving(setup) as served:
        yield served


@pytest_asyncio.fixture(loop_scope="module")
async def env(family: Served) -> AsyncIterator[tuple[Served, anthropic.AsyncAnthropic]]:
    family.reset()
    client = anthropic.AsyncAnthropic(
        base_url=family.gateway.url, api_key="sk-anything", max_retries=0, timeout=10.0
    )
    async with client:
        yield family, client
    family.reset()


async def _create(client: anthropic.AsyncAnthropic, **fields: Any) -> Any:
    messages: Any = client.messages  # typed per literal argument; scenarios pass a dict
    return await messages.create(model="chat", max_tokens=256, **fields)


async def _events(client: anthropic.AsyncAnthropic, **fields: Any) -> list[Any]:
    """Every event of a streamed message, ``ping`` left out."""
    stream = await _create(client, stream=True, **fields)
    return [event async for event in stream if event.type != "ping"]


def _shape(events: list[Any]) -> list[str]:
    kinds: list[str] = []
    for event in events:
        if not (kinds and kinds[-1] == event.type == "content_block_delta"):
            kinds.append(event.type)
    return kinds


def _texts(message: Any) -> list[str]:
    return [block.text for block in message.content if block.type == "text"]


async def test_a_whole_message(env: tuple[Served, anthropic.AsyncAnthropic]) -> None:
    served, client = env
    message = await _create(
        client, system="Be brief.", messages=[{"role": "user", "content": "What is a turnout?"}]
    )
    assert (message.type, message.role) == ("message", "assistant")
    assert message.id.startswith("msg_")
    assert _texts(message) == ["Fake answer to: What is a turnout?"]
    assert [block.type for block in message.content] == ["text"]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0
    assert message.usage.output_tokens > 0
    body = served.body()
    assert served.setup.system_prompt(body) == "Be brief."
    assert served.setup.roles(body) == ["user"]


async def test_a_streamed_message_is_events_in_anthropics_order(
    env: tuple[Served, anthropic.AsyncAnthropic],
) -> None:
    _, client = env
    events = await _events(client, messages=[{"role": "user", "content": "Stream please"}])
    assert _shape(events) == TEXT_EVENTS
    start = events[0].message
    assert (start.role, start.content, start.stop_reason) == ("assistant", [], None)
    assert start.usage.input_tokens > 0
    [block] = [event for event in events if event.type == "content_block_start"]
    assert (block.index, block.content_block.type) == (0, "text")
    deltas = [event.delta for event in events if event.type == "content_block_delta"]
    assert {delta.type for delta in deltas} == {"text_delta"}
    assert "".join(delta.text for delta in deltas) == "Fake answer to: Stream please"
    assert {event.index for event in events if event.type.startswith("content_block")} == {0}
    [ending] = [event for event in events if event.type == "message_delta"]
    assert ending.delta.stop_reason == "end_turn"
    assert ending.usage.output_tokens > 0


async def test_the_sdk_stream_helper_assembles_the_message(
    env: tuple[Served, anthropic.AsyncAnthropic],
) -> None:
    _, client = env
    question: Any = [{"role": "user", "content": "Assemble please"}]
    async with client.messages.stream(model="chat", max_tokens=256, messages=question) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        message = await stream.get_final_message()
    assert text == "Fake answer to: Assemble please"
    assert _texts(message) == [text]
    assert message.usage.output_tokens > 0


async def test_a_multi_turn_conversation(env: tuple[Served, anthropic.AsyncAnthropic]) -> None:
    served, client = env
    message = await _create(
        client,
        messages=[
            {"role": "user", "content": "My name is Ada."},
            {"role": "assistant", "content": [{"type": "text", "text": "Hello Ada."}]},
            {"role": "user", "content": [{"type": "text", "text": "What is my name?"}]},
        ],
    )
    assert _texts(message) == ["Fake answer to: What is my name?"]
    assert served.setup.roles(served.body()) == ["user", "assistant", "user"]


async def test_a_tool_use_round_trip(env: tuple[Served, anthropic.AsyncAnthropic]) -> None:
    served, client = env
    question: Any = {"role": "user", "content": "Weather in Paris?"}
    first = await _create(client, messages=[question], tools=[WEATHER])
    assert first.stop_reason == "tool_use"
    [use] = [block for block in first.content if block.type == "tool_use"]
    assert use.name == "get_weather"
    assert use.input.keys() == {"city"}
    assert use.id
    assert served.setup.tool_names(served.body()) == ["get_weather"]
    result: Any = {"type": "tool_result", "tool_use_id": use.id, "content": "Sunny, 21"}
    second = await _create(
        client,
        messages=[
            question,
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {"role": "user", "content": [result]},
        ],
        tools=[WEATHER],
    )
    assert second.stop_reason == "end_turn"
    assert _texts(second) == ["Fake answer to: Weather in Paris?"]
    assert served.setup.tool_results(served.body()) == ["Sunny, 21"]


async def test_a_streamed_tool_use(env: tuple[Served, anthropic.AsyncAnthropic]) -> None:
    _, client = env
    events = await _events(
        client, messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=[WEATHER]
    )
    assert _shape(events)[0] == "message_start"
    assert _shape(events)[-2:] == ["message_delta", "message_stop"]
    [use] = [
        event.content_block
        for event in events
        if event.type == "content_block_start" and event.content_block.type == "tool_use"
    ]
    assert use.name == "get_weather"
    fragments = [
        event.delta.partial_json
        for event in events
        if event.type == "content_block_delta" and event.delta.type == "input_json_delta"
    ]
    assert json.loads("".join(fragments)).keys() == {"city"}
    [ending] = [event for event in events if event.type == "message_delta"]
    assert ending.delta.stop_reason == "tool_use"


async def test_count_tokens_is_anthropics_own_count_or_the_estimate(
    env: tuple[Served, anthropic.AsyncAnthropic],
) -> None:
    """Anthropic counts for its own deployments (`turnout.gateway.messages_count`); every
    other family gets the gateway's estimate, without a call to its provider."""
    served, client = env
    short = await client.messages.with_raw_response.count_tokens(
        model="chat", messages=[{"role": "user", "content": "Hello"}]
    )
    longer = await client.messages.count_tokens(
        model="chat",
        system="Be brief.",
        messages=[{"role": "user", "content": "Hello " * 200}],
        tools=[WEATHER],
    )
    assert 0 < (await short.parse()).input_tokens < longer.input_tokens
    paths = [request.path for request in served.fake.requests]
    if served.setup.name == "anthropic":
        assert short.headers["x-turnout-token-count"] == "upstream"
        assert paths == ["/v1/messages/count_tokens"] * 2
    else:
        assert short.headers["x-turnout-token-count"] == "estimate"
        assert paths == []


#: The SDK's class, the status and Anthropic's ``error.type`` for each failure; ``overloaded``
#: stays ``overloaded_error`` only when the upstream said so in Anthropic's words (its 529).
EXPECTED: dict[Failure, tuple[type[anthropic.APIStatusError], int, str]] = {
    "rate_limited": (anthropic.RateLimitError, 429, "rate_limit_error"),
    "server_error": (anthropic.InternalServerError, 502, "api_error"),
    "overloaded": (anthropic.InternalServerError, 502, "api_error"),
    "authentication": (anthropic.InternalServerError, 502, "api_error"),
    "context_window": (anthropic.BadRequestError, 400, "invalid_request_error"),
    "content_policy": (anthropic.BadRequestError, 400, "invalid_request_error"),
    "bad_request": (anthropic.BadRequestError, 400, "invalid_request_error"),
}
OVERLOADED_IN_ANTHROPICS_WORDS = {"anthropic"}
#: Families whose content-policy stop arrives inside a stream that already sent its text
#: (Bedrock's guardrail streams its canned message): the message ends with ``refusal``.
REFUSED_IN_STREAM = {"bedrock"}


@pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("failure", FAILURES)
async def test_each_failure_reaches_the_sdk_as_its_class(
    env: tuple[Served, anthropic.AsyncAnthropic], failure: Failure, streamed: bool
) -> None:
    """A failure before the answer's first byte is an HTTP error, streamed or not."""
    served, client = env
    name = served.setup.name
    served.setup.fail_next(served.fake, failure)
    question: Any = [{"role": "user", "content": "Hello"}]
    if streamed and failure == "content_policy" and name in REFUSED_IN_STREAM:
        events = await _events(client, messages=question)
        [ending] = [event for event in events if event.type == "message_delta"]
        assert ending.delta.stop_reason == "refusal"
        return
    error, status, kind = EXPECTED[failure]
    if failure == "overloaded" and name in OVERLOADED_IN_ANTHROPICS_WORDS:
        kind = "overloaded_error"
    with pytest.raises(error) as caught:
        if streamed:
            await _events(client, messages=question)
        else:
            await _create(client, messages=question)
    assert caught.value.status_code == status
    body = caught.value.body
    assert isinstance(body, dict)
    assert body.keys() == {"type", "error"}
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    assert name in body["error"]["message"]
    again = await _create(client, messages=[{"role": "user", "content": "Again"}])
    assert _texts(again) == ["Fake answer to: Again"]
