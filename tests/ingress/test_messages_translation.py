"""What a deployment that does not speak the Messages API receives: the request translated to
Chat Completions field by field (images, documents, tool calls and results, tool choice,
structured output, stop sequences), and a 400 naming what cannot be translated."""

from __future__ import annotations

from typing import Any

import anthropic
import pytest
from messages_kit import served, upstream_bodies

PIXEL = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ"  # the start of a PNG: enough to relay
PDF = "JVBERi0xLjQKJcTl8uXrp/Og0MTGCjEgMCBvYmoKPDw+PgplbmRvYmoKdHJhaWxlcgo8PD4+CiUlRU9GCg=="
TOOL: Any = {
    "name": "lookup",
    "description": "Look a word up",
    "input_schema": {"type": "object", "properties": {"word": {"type": "string"}}},
}
SCHEMA: Any = {"type": "object", "properties": {"answer": {"type": "string"}}}


async def test_a_rich_request_reaches_an_openai_deployment_translated() -> None:
    messages: Any = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look at these."},
                {
                    "type": "image",
                    "source": {"type": "base64", "media_type": "image/png", "data": PIXEL},
                },
                {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                {
                    "type": "document",
                    "source": {"type": "base64", "media_type": "application/pdf", "data": PDF},
                },
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {"word": "a"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "toolu_1",
                    "content": "found",
                    "is_error": False,
                },
                {"type": "text", "text": "And now?"},
            ],
        },
    ]
    async with served("openai") as (fakes, client):
        await client.messages.create(
            model="claude",
            max_tokens=50,
            system=[{"type": "text", "text": "One."}, {"type": "text", "text": "Two."}],
            messages=messages,
            tools=[TOOL],
            tool_choice={"type": "any", "disable_parallel_tool_use": True},
            stop_sequences=["END"],
            extra_body={"top_p": 0.9},
        )
        await client.messages.create(
            model="claude",
            max_tokens=50,
            messages=[{"role": "user", "content": "As JSON"}],
            output_config={"format": {"type": "json_schema", "schema": SCHEMA}},
        )
    tools, structured = upstream_bodies(fakes, "openai")
    assert tools["messages"] == [
        {"role": "system", "content": "One.\n\nTwo."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Look at these."},
                {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PIXEL}"}},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                {"type": "file", "file": {"file_data": f"data:application/pdf;base64,{PDF}"}},
            ],
        },
        {
            "role": "assistant",
            "content": "Let me check.",
            "tool_calls": [
                {
                    "id": "toolu_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"word":"a"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "toolu_1", "content": "found"},
        {"role": "user", "content": "And now?"},
    ]
    assert tools["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": TOOL["input_schema"],
                "description": "Look a word up",
            },
        }
    ]
    assert (tools["tool_choice"], tools["parallel_tool_calls"]) == ("required", False)
    assert (tools["stop"], tools["top_p"], tools["max_tokens"]) == (["END"], 0.9, 50)
    assert structured["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": SCHEMA},
    }


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "web_search_20250305"),
        ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]}, "source"),
        ({"tool_choice": {"type": "sometimes"}, "tools": [TOOL]}, "tool_choice"),
        # Anthropic's own ranges, narrower than OpenAI's.
        ({"extra_body": {"temperature": 1.5}}, "temperature"),
        ({"extra_body": {"top_p": -0.1}}, "top_p"),
        ({"extra_body": {"top_k": -1}}, "top_k"),
    ],
)
async def test_what_cannot_be_translated_is_refused_by_name(change: Any, named: str) -> None:
    body: Any = {"max_tokens": 8, "messages": [{"role": "user", "content": "x"}], **change}
    async with served("openai") as (fakes, client):
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.messages.create(model="claude", **body)
    assert isinstance(refused.value.body, dict)
    assert refused.value.body["error"]["type"] == "invalid_request_error"
    assert named in refused.value.body["error"]["message"]
    assert upstream_bodies(fakes, "openai") == []
