"""`/v1/messages` to an Anthropic deployment passes through: the caller's body (its model
replaced) and Anthropic headers go upstream as sent, and the answer, whole or streamed, comes
back byte for byte, so thinking blocks and their signatures reach the Anthropic SDK intact."""

from __future__ import annotations

from typing import Any

import anthropic
import msgspec
import pytest
from messages_kit import (
    MASTER,
    deployment,
    gateway,
    litellm_config,
    raw_events,
    sdk,
    served,
    upstream_bodies,
)

from fakes.fake_anthropic import Fault as AnthropicFault
from fakes.fake_anthropic.answers import prompt_tokens
from fakes.fake_anthropic.server import COUNT_FRAMING
from raw_upstream import RawReply, raw_upstream

SIGNATURE = "EqQBCkYIBxgCKkB7c2lnbmF0dXJlIG9mIHRoZSB0aGlua2luZw=="
#: A Message with thinking, as Anthropic answers one.
MESSAGE: Any = {
    "id": "msg_01XFDUDYJgAACzvnptvVoYEL",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [
        {"type": "thinking", "thinking": "Two and two make four.", "signature": SIGNATURE},
        {"type": "text", "text": "4"},
    ],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 9},
}
#: The same answer streamed, as Anthropic streams one (thinking, its signature, then text).
EVENTS: list[tuple[str, Any]] = [
    (
        "message_start",
        {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}},
    ),
    (
        "content_block_start",
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""},
        },
    ),
    ("ping", {"type": "ping"}),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Two and two make four."},
        },
    ),
    (
        "content_block_delta",
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": SIGNATURE},
        },
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    (
        "content_block_start",
        {"type": "content_block_start", "index": 1, "content_block": {"type": "text", "text": ""}},
    ),
    (
        "content_block_delta",
        {"type": "content_block_delta", "index": 1, "delta": {"type": "text_delta", "text": "4"}},
    ),
    ("content_block_stop", {"type": "content_block_stop", "index": 1}),
    (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": 9},
        },
    ),
    ("message_stop", {"type": "message_stop"}),
]
ASK: Any = {
    "model": "claude",
    "max_tokens": 2048,
    "thinking": {"type": "enabled", "budget_tokens": 1024},
    "messages": [{"role": "user", "content": "What is 2 + 2?"}],
}


def _sse(events: list[tuple[str, Any]]) -> bytes:
    return b"".join(
        b"event: " + name.encode() + b"\ndata: " + msgspec.json.encode(data) + b"\n\n"
        for name, data in events
    )


@pytest.mark.parametrize("streamed", [False, True])
async def test_thinking_and_its_signature_come_back_as_anthropic_sent_them(
    streamed: bool,
) -> None:
    reply = (
        RawReply(200, _sse(EVENTS), "text/event-stream")
        if streamed
        else RawReply(200, msgspec.json.encode(MESSAGE), "application/json")
    )
    async with raw_upstream(reply) as upstream:
        config = litellm_config(deployment("claude", "anthropic", upstream.url))
        async with gateway(config) as running:
            if streamed:
                events = await raw_events(running.url, ASK)
                assert events == EVENTS
            async with sdk(running) as client:
                if streamed:
                    async with client.messages.stream(**ASK) as stream:
                        message = await stream.get_final_message()
                else:
                    message = await client.messages.create(**ASK)
    assert message.to_dict()["content"] == MESSAGE["content"]
    assert message.id == MESSAGE["id"]


async def test_the_callers_body_and_headers_go_upstream_as_sent() -> None:
    system: Any = [{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}]
    async with served("anthropic") as (fakes, client):
        await client.messages.create(
            model="claude",
            max_tokens=64,
            system=system,
            messages=[{"role": "user", "content": "hello"}],
            extra_headers={"anthropic-beta": "context-1m-2025-08-07"},
            extra_body={"top_k": 5},
        )
    [sent] = upstream_bodies(fakes, "anthropic")
    assert sent == {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "system": system,
        "messages": [{"role": "user", "content": "hello"}],
        "top_k": 5,
    }
    headers = fakes.anthropic.requests[-1].headers
    assert headers["anthropic-beta"] == "context-1m-2025-08-07"
    assert headers["x-api-key"] == "sk-ant-fake" and MASTER not in headers.values()


async def test_count_tokens_is_anthropics_own_count_for_an_anthropic_group() -> None:
    tools: Any = [{"name": "add", "description": "Adds", "input_schema": {"type": "object"}}]
    async with served("anthropic") as (fakes, client):
        counted = await client.messages.with_raw_response.count_tokens(
            model="claude",
            messages=ASK["messages"],
            system="Be brief.",
            tools=tools,
            extra_headers={"anthropic-beta": "token-counting-2024-11-01"},
        )
    [asked] = fakes.anthropic.requests
    assert asked.path == "/v1/messages/count_tokens"
    assert asked.json == {
        "model": "claude-sonnet-4-5",
        "messages": ASK["messages"],
        "system": "Be brief.",
        "tools": tools,
    }
    assert asked.headers["anthropic-beta"] == "token-counting-2024-11-01"
    assert asked.headers["x-api-key"] == "sk-ant-fake"
    assert counted.headers["x-turnout-token-count"] == "upstream"
    answer = await counted.parse()
    assert answer.input_tokens == prompt_tokens(asked.json) + COUNT_FRAMING


async def test_count_tokens_falls_back_to_the_estimate_when_anthropic_cannot_count() -> None:
    async with served("anthropic") as (fakes, client):
        fakes.anthropic.enqueue(AnthropicFault.server_error())
        counted = await client.messages.with_raw_response.count_tokens(
            model="claude", messages=ASK["messages"]
        )
        again = await client.messages.count_tokens(model="claude", messages=ASK["messages"])
    assert counted.headers["x-turnout-token-count"] == "estimate"
    estimate = (await counted.parse()).input_tokens
    assert estimate > 0 and again.input_tokens == estimate + COUNT_FRAMING


async def test_count_tokens_relays_anthropics_verdict_on_a_malformed_request() -> None:
    async with served("anthropic") as (fakes, client):
        with pytest.raises(anthropic.BadRequestError) as refused:
            await client.messages.count_tokens(
                model="claude", messages=ASK["messages"], extra_body={"temperature": 0.5}
            )
    assert "temperature" in str(refused.value)
    assert [r.path for r in fakes.anthropic.requests] == ["/v1/messages/count_tokens"]


async def test_count_tokens_of_a_group_anthropic_does_not_serve_is_the_estimate() -> None:
    async with served("openai") as (fakes, client):
        counted = await client.messages.with_raw_response.count_tokens(
            model="claude", messages=ASK["messages"]
        )
    assert counted.headers["x-turnout-token-count"] == "estimate"
    assert (await counted.parse()).input_tokens > 0
    assert fakes.anthropic.requests == [] and fakes.openai.requests == []
