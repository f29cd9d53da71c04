"""Stream failover onto a provider that continues by assistant prefill (Anthropic's Messages).

The continuation asks Claude to go on from the text already sent; a target that refuses the
prefill is asked again with the partial answer and an instruction instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import openai

from fakes import fake_anthropic, fake_openai
from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_openai import FakeOpenAI
from gateway_harness import gateway_config, running_gateway
from turnout import Deployment, RoutingConfig, Secret

QUESTION: Any = [{"role": "user", "content": "Tell me about turnouts"}]
ANSWER = "Fake answer to: Tell me about turnouts"


@asynccontextmanager
async def openai_then_claude() -> AsyncIterator[
    tuple[FakeOpenAI, FakeAnthropic, openai.AsyncOpenAI]
]:
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(FakeOpenAI())
        claude = await stack.enter_async_context(FakeAnthropic())
        config = gateway_config(
            Deployment(
                model_name="chat",
                provider="openai-compatible",
                model="gpt-4o-mini",
                id="gpt",
                base_url=first.url,
                api_key=Secret("sk-fake"),
            ),
            Deployment(
                model_name="chat",
                provider="anthropic",
                model="claude-sonnet-4-5",
                id="claude",
                base_url=claude.url,
                api_key=Secret("sk-ant-fake"),
                priority=1,
            ),
            routing=RoutingConfig(strategy="priority"),
        )
        gateway = await stack.enter_async_context(running_gateway(config))
        client = await stack.enter_async_context(gateway.client())
        yield first, claude, client


async def _text(client: openai.AsyncOpenAI) -> tuple[str, set[str]]:
    stream = await client.chat.completions.create(model="chat", messages=QUESTION, stream=True)
    text, ids = "", set()
    async for chunk in stream:
        ids.add(chunk.id)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    return text, ids


async def test_a_broken_stream_continues_on_claude_by_prefill() -> None:
    async with openai_then_claude() as (first, claude, client):
        first.enqueue(fake_openai.Fault("cut", after_chunks=3))
        text, ids = await _text(client)
        assert text == ANSWER
        assert len(ids) == 1
        [continuation] = [r for r in claude.requests if r.json]
        assert continuation.json is not None
        last = continuation.json["messages"][-1]
        assert last["role"] == "assistant"  # Claude continues its own partial text


async def test_a_target_refusing_the_prefill_is_asked_by_instruction() -> None:
    async with openai_then_claude() as (first, claude, client):
        first.enqueue(fake_openai.Fault("cut", after_chunks=3))
        claude.enqueue(
            fake_anthropic.Fault.http_error(
                400, "invalid_request_error", "This model does not support assistant prefill."
            )
        )
        text, _ = await _text(client)
        assert text == ANSWER
        refused, accepted = [r for r in claude.requests if r.json]
        assert refused.json is not None
        assert accepted.json is not None
        assert refused.json["messages"][-1]["role"] == "assistant"
        assert accepted.json["messages"][-1]["role"] == "user"  # the instruction to continue
