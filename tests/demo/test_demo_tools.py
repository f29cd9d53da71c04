"""Tools and structured outputs, as the official `openai` SDK sees the demo answer them."""

from __future__ import annotations

import json
from typing import Any, Literal

import jsonschema  # type: ignore[import-untyped]
import openai
import pytest
from demo_rig import demo_client
from pydantic import BaseModel

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 2},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
            },
            "required": ["city", "unit"],
        },
    },
}
TIME: Any = {
    "type": "function",
    "function": {
        "name": "get_time",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string"}},
            "required": ["zone"],
            "additionalProperties": False,
        },
        "strict": True,
    },
}
ASK: Any = [{"role": "user", "content": "What is the weather in Paris?"}]


def _schema_of(name: str) -> Any:
    return next(t for t in (WEATHER, TIME) if t["function"]["name"] == name)["function"][
        "parameters"
    ]


@pytest.mark.parametrize(
    ("tool_choice", "called"),
    [
        (None, "get_weather"),  # the prompt mentions the weather
        ("auto", "get_weather"),
        ("required", "get_weather"),
        ({"type": "function", "function": {"name": "get_time"}}, "get_time"),
    ],
)
async def test_tools_are_answered_with_a_valid_call(tool_choice: Any, called: str) -> None:
    extra = {} if tool_choice is None else {"tool_choice": tool_choice}
    async with demo_client() as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini", messages=ASK, tools=[WEATHER, TIME], **extra
        )
        again = await client.chat.completions.create(
            model="gpt-4o-mini", messages=ASK, tools=[WEATHER, TIME], **extra
        )
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    (call,) = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name == called
    jsonschema.validate(json.loads(call.function.arguments), _schema_of(called))
    # The same prompt gets the same call.
    assert again.choices[0].message.tool_calls == choice.message.tool_calls


async def test_a_tool_result_is_answered_in_words_and_none_forbids_calls() -> None:
    async with demo_client() as client:
        first = await client.chat.completions.create(
            model="gpt-4o-mini", messages=ASK, tools=[WEATHER]
        )
        (call,) = first.choices[0].message.tool_calls or []
        turns: Any = [
            *ASK,
            first.choices[0].message.model_dump(exclude_none=True),
            {"role": "tool", "tool_call_id": call.id, "content": '{"temperature": 21}'},
        ]
        answer = await client.chat.completions.create(
            model="gpt-4o-mini", messages=turns, tools=[WEATHER]
        )
        declined = await client.chat.completions.create(
            model="gpt-4o-mini", messages=ASK, tools=[WEATHER], tool_choice="none"
        )
    for completion in (answer, declined):
        assert completion.choices[0].finish_reason == "stop"
        assert completion.choices[0].message.tool_calls is None
        assert completion.choices[0].message.content


async def test_tool_calls_stream_as_openai_sends_them() -> None:
    asked: Any = [{"role": "user", "content": "get_weather and get_time for Paris, please"}]
    async with demo_client() as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=asked, tools=[WEATHER, TIME], stream=True
        )
        deltas = [chunk.choices[0] async for chunk in stream if chunk.choices]
        whole = await client.chat.completions.create(
            model="gpt-4o-mini", messages=asked, tools=[WEATHER, TIME]
        )
    assert deltas[0].delta.role == "assistant"
    calls: dict[int, dict[str, str]] = {}
    for choice in deltas:
        for piece in choice.delta.tool_calls or []:
            if piece.index not in calls:
                # The first delta of a call carries its id and name, and no arguments yet.
                assert piece.id and piece.function and piece.function.name
                assert not piece.function.arguments
                calls[piece.index] = {"id": piece.id, "name": piece.function.name, "args": ""}
            else:
                assert piece.id is None and piece.function and piece.function.name is None
                calls[piece.index]["args"] += piece.function.arguments or ""
    assert deltas[-1].finish_reason == "tool_calls"
    # Both named tools are called in parallel, as in the answer given whole.
    whole_calls: Any = whole.choices[0].message.tool_calls or []
    expected = [
        {"id": c.id, "name": c.function.name, "args": c.function.arguments} for c in whole_calls
    ]
    assert [calls[index] for index in sorted(calls)] == expected
    assert [c["name"] for c in expected] == ["get_weather", "get_time"]
    assert sum(len(c["args"]) > 0 for c in calls.values()) == 2


class Lookup(BaseModel):
    city: str
    days: int


async def test_the_sdk_stream_helper_parses_the_streamed_tool_call() -> None:
    async with (
        demo_client() as client,
        client.chat.completions.stream(
            model="gpt-4o-mini",
            messages=ASK,
            tools=[openai.pydantic_function_tool(Lookup)],
            tool_choice="required",
        ) as stream,
    ):
        events = [event.type async for event in stream]
        final = await stream.get_final_completion()
    assert "tool_calls.function.arguments.done" in events
    (call,) = final.choices[0].message.tool_calls or []
    assert call.function.name == "Lookup"
    assert isinstance(call.function.parsed_arguments, Lookup)
    assert final.choices[0].finish_reason == "tool_calls"


class Address(BaseModel):
    street: str
    postcode: str


class Person(BaseModel):
    name: str
    age: int
    role: Literal["admin", "editor", "viewer"]
    tags: list[str]
    address: Address
    manager: Person | None


async def test_structured_output_parses_into_the_pydantic_model() -> None:
    asked: Any = [{"role": "user", "content": "Describe somebody"}]
    async with demo_client() as client:
        completion = await client.chat.completions.parse(
            model="gpt-4o", messages=asked, response_format=Person
        )
    parsed = completion.choices[0].message.parsed
    assert isinstance(parsed, Person)
    assert parsed.role in ("admin", "editor", "viewer")
    assert completion.choices[0].finish_reason == "stop"


RECIPE: Any = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 3, "maxLength": 40},
        "servings": {"type": "integer", "minimum": 1, "maximum": 12},
        "rating": {"type": "number", "exclusiveMinimum": 0, "maximum": 5},
        "vegan": {"type": "boolean"},
        "steps": {
            "type": "array",
            "minItems": 2,
            "maxItems": 5,
            "items": {"$ref": "#/$defs/step"},
        },
        "source": {"anyOf": [{"type": "string", "format": "uri"}, {"type": "null"}]},
        "created": {"type": "string", "format": "date-time"},
    },
    "required": ["title", "servings", "rating", "vegan", "steps", "source", "created"],
    "additionalProperties": False,
    "$defs": {
        "step": {
            "type": "object",
            "properties": {
                "order": {"type": "integer", "minimum": 1},
                "text": {"type": "string"},
                "minutes": {"type": ["integer", "null"], "multipleOf": 5},
            },
            "required": ["order", "text", "minutes"],
            "additionalProperties": False,
        }
    },
}


@pytest.mark.parametrize("stream", [False, True])
async def test_json_schema_answers_validate_against_the_schema(stream: bool) -> None:
    response_format: Any = {
        "type": "json_schema",
        "json_schema": {"name": "recipe", "schema": RECIPE, "strict": True},
    }
    documents = []
    async with demo_client() as client:
        for dish in ("soup", "bread", "salad"):
            asked: Any = [{"role": "user", "content": f"A recipe for {dish}"}]
            if stream:
                chunks = await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=asked,
                    response_format=response_format,
                    stream=True,
                )
                text = "".join(
                    [c.choices[0].delta.content or "" async for c in chunks if c.choices]
                )
            else:
                completion = await client.chat.completions.create(
                    model="gpt-4o-mini", messages=asked, response_format=response_format
                )
                text = completion.choices[0].message.content or ""
            documents.append(json.loads(text))
    for document in documents:
        jsonschema.validate(document, RECIPE, format_checker=jsonschema.FormatChecker())
    assert len({json.dumps(d) for d in documents}) == 3


async def test_json_mode_answers_a_json_object() -> None:
    asked: Any = [{"role": "user", "content": "Answer in JSON"}]
    async with demo_client() as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini", messages=asked, response_format={"type": "json_object"}
        )
    assert isinstance(json.loads(completion.choices[0].message.content or ""), dict)


async def test_each_of_n_choices_calls_and_max_tokens_cuts_a_call_short() -> None:
    async with demo_client() as client:
        several = await client.chat.completions.create(
            model="gpt-4o", messages=ASK, tools=[WEATHER], n=2
        )
        cut = await client.chat.completions.create(
            model="gpt-4o", messages=ASK, tools=[WEATHER], max_tokens=2
        )
    calls: Any = [choice.message.tool_calls for choice in several.choices]
    assert all(len(made) == 1 for made in calls)
    assert calls[0][0].function.arguments != calls[1][0].function.arguments
    assert calls[0][0].id != calls[1][0].id
    assert cut.choices[0].finish_reason == "length"
    assert cut.usage and cut.usage.completion_tokens == 2
