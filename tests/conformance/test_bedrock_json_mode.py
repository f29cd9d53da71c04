"""JSON mode on Bedrock's Converse for Claude, through a forced tool, with the official SDK.

Converse has no plain JSON mode; for Claude models, which take a forced tool, the adapter sends
one tool taking any object and forces it, and the tool's input comes back as the answer's text.
Models without tool choice still refuse ``json_object`` (and the router sends it elsewhere).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import openai
import pytest
import setup_bedrock

from fakes.fake_bedrock import FakeBedrock
from gateway_harness import gateway_config, running_gateway

QUESTION: Any = [{"role": "user", "content": "Which track?"}]
JSON_MODE: dict[str, Any] = {"response_format": {"type": "json_object"}}


@asynccontextmanager
async def bedrock_claude() -> AsyncIterator[tuple[FakeBedrock, openai.AsyncOpenAI]]:
    async with setup_bedrock.SETUP.start() as fake:
        config = gateway_config(setup_bedrock.SETUP.chat(fake, "chat"))
        async with running_gateway(config) as gateway, gateway.client() as client:
            yield fake, client


def _converse_bodies(fake: FakeBedrock) -> list[dict[str, Any]]:
    return [r.json for r in fake.requests if r.action in ("converse", "converse-stream") and r.json]


def _forced(body: dict[str, Any]) -> None:
    config = body["toolConfig"]
    assert config["toolChoice"] == {"tool": {"name": "json_tool_call"}}
    assert [tool["toolSpec"]["name"] for tool in config["tools"]] == ["json_tool_call"]
    assert "outputConfig" not in body


async def test_json_mode_on_bedrock_claude_whole() -> None:
    async with bedrock_claude() as (fake, client):
        answer = await client.chat.completions.create(model="chat", messages=QUESTION, **JSON_MODE)
        choice = answer.choices[0]
        assert json.loads(choice.message.content or "") == {
            "answer": "Fake answer to: Which track?"
        }
        assert choice.finish_reason == "stop"
        assert choice.message.tool_calls is None
        (body,) = _converse_bodies(fake)
        _forced(body)


async def test_json_mode_on_bedrock_claude_streamed() -> None:
    async with bedrock_claude() as (fake, client):
        stream = await client.chat.completions.create(
            model="chat", messages=QUESTION, stream=True, **JSON_MODE
        )
        text, finish = "", None
        async for chunk in stream:
            for choice in chunk.choices:
                assert choice.delta.tool_calls is None
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
        assert json.loads(text) == {"answer": "Fake answer to: Which track?"}
        assert finish == "stop"
        (body,) = _converse_bodies(fake)
        _forced(body)


async def test_a_caller_tool_beside_json_mode_is_refused_as_unsupported() -> None:
    weather: dict[str, Any] = {
        "type": "function",
        "function": {"name": "weather", "parameters": {"type": "object", "properties": {}}},
    }
    async with bedrock_claude() as (fake, client):
        with pytest.raises(openai.BadRequestError) as caught:
            await client.chat.completions.create(
                model="chat", messages=QUESTION, **{**JSON_MODE, "tools": [weather]}
            )
        body: Any = caught.value.body
        assert body["param"] == "response_format"
        assert body["code"] == "unsupported_parameter"
        assert _converse_bodies(fake) == []
