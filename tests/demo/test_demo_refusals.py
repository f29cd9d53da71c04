"""Parameters OpenAI's API refuses, refused by the demo the same way: a 400 in OpenAI's error
shape naming the parameter, streamed or not, neither retried nor failed over by the router.

These run on the demo's configuration unchanged (its latencies, failures and fallbacks on):
a refusal comes at the door, before any of them, and tells the caller at once.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest
from demo_rig import demo_client

from turnout.demo import demo_config

ASK: Any = [{"role": "user", "content": "Hello"}]
TOOL: Any = {
    "type": "function",
    "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
}

#: (extra request fields, the `param` OpenAI names, its error `code`)
REFUSED: list[tuple[dict[str, Any], str, str | None]] = [
    ({"temperature": 2.5}, "temperature", "decimal_above_max_value"),
    ({"temperature": -0.1}, "temperature", "decimal_below_min_value"),
    ({"top_p": 1.5}, "top_p", "decimal_above_max_value"),
    ({"n": 129}, "n", "integer_above_max_value"),
    ({"presence_penalty": -3}, "presence_penalty", "decimal_below_min_value"),
    ({"frequency_penalty": 2.1}, "frequency_penalty", "decimal_above_max_value"),
    ({"logprobs": True, "top_logprobs": 21}, "top_logprobs", "integer_above_max_value"),
    ({"top_logprobs": 2}, "top_logprobs", None),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", "array_above_max_length"),
    ({"temperature": "hot"}, "temperature", "invalid_type"),
    ({"tool_choice": "auto"}, "tool_choice", None),
    (
        {"tools": [TOOL], "tool_choice": {"type": "function", "function": {"name": "other"}}},
        "tool_choice",
        "invalid_value",
    ),
    ({"tools": [TOOL], "tool_choice": "always"}, "tool_choice", "invalid_value"),
    ({"tools": [{"type": "function"}]}, "tools[0].function", "missing_required_parameter"),
    (
        {"tools": [{"type": "function", "function": {"name": "has space"}}]},
        "tools[0].function.name",
        "invalid_value",
    ),
    ({"response_format": {"type": "yaml"}}, "response_format.type", "invalid_value"),
    ({"response_format": {"type": "json_object"}}, "messages", None),
    (
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {}}}},
        "response_format.json_schema.name",
        "missing_required_parameter",
    ),
    (
        {
            "response_format": {
                "type": "json_schema",
                "json_schema": {
                    "name": "open",
                    "strict": True,
                    "schema": {"type": "object", "properties": {"a": {"type": "string"}}},
                },
            }
        },
        "response_format",
        "invalid_json_schema",
    ),
    (
        {
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "tool", "tool_call_id": "call_1", "content": "42"},
            ]
        },
        "messages.[1].role",
        None,
    ),
    ({"stream_options": {"include_usage": True}}, "stream_options", None),
]


@pytest.mark.parametrize("stream", [False, True])
async def test_bad_parameters_are_refused_as_openai_refuses_them(stream: bool) -> None:
    async with demo_client(demo_config(port=0)) as client:
        for extra, param, code in REFUSED:
            if stream and "stream_options" in extra:
                continue  # allowed on a stream: the refusal is of it without one
            fields: Any = {"model": "gpt-4o-mini", "messages": ASK, **extra}
            with pytest.raises(openai.BadRequestError) as refused:
                if stream:
                    await client.chat.completions.create(**fields, stream=True)
                else:
                    await client.chat.completions.create(**fields)
            error = refused.value
            assert (error.status_code, error.param, error.code) == (400, param, code), extra
            assert error.type == "invalid_request_error"
            body: Any = error.body
            assert set(body) == {"message", "type", "param", "code"}
            # Refused once, at the door: no retry, no fallback, and nothing to repeat.
            assert error.response.headers["x-turnout-attempts"] == "1"
            assert error.response.headers["x-should-retry"] == "false"


async def test_bad_embedding_parameters_are_refused() -> None:
    async with demo_client(demo_config(port=0)) as client:
        for extra, param in (
            ({"dimensions": 4096}, "dimensions"),
            ({"dimensions": 0}, "dimensions"),
            ({"input": []}, "input"),
            ({"input": ["text", 4]}, "input"),
        ):
            fields: Any = {"model": "text-embedding-3-small", "input": "hello", **extra}
            with pytest.raises(openai.BadRequestError) as refused:
                await client.embeddings.create(**fields)
            assert refused.value.param == param
