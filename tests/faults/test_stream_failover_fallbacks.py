"""A stream broken mid-answer continues on the fallback model, where most users stand.

One deployment per model plus `fallbacks`, loaded from a LiteLLM `config.yaml` at turnout's
defaults, and the official SDK at its default retries: a cut, an error event or a malformed event
after content reached the caller is continued by the fallback model as one uninterrupted stream.
Before, continuation looked only inside the broken stream's own group, which holds one deployment
here, and the caller got an error event instead of the rest of the answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import RunningGateway, running_gateway
from litellm_shape import one_per_model
from turnout.config.load import parse_config

QUESTION: Any = [{"role": "user", "content": "Tell me about turnouts"}]
ANSWER = "Fake answer to: Tell me about turnouts"


@dataclass
class Shape:
    gateway: RunningGateway
    primary: FakeOpenAI
    fallback: FakeOpenAI
    client: openai.AsyncOpenAI


@asynccontextmanager
async def shape(**router_settings: Any) -> AsyncIterator[Shape]:
    async with AsyncExitStack() as stack:
        primary = await stack.enter_async_context(FakeOpenAI(chunk_delay=0.005, models=None))
        fallback = await stack.enter_async_context(FakeOpenAI(chunk_delay=0.005, models=None))
        config = parse_config(one_per_model(primary.url, fallback.url, **router_settings))
        gateway = await stack.enter_async_context(running_gateway(config))
        client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="anything")
        stack.push_async_callback(client.close)
        yield Shape(gateway, primary, fallback, client)


def chats(fake: FakeOpenAI) -> list[Any]:
    return [r for r in fake.requests if r.path == "/v1/chat/completions"]


async def streamed(client: openai.AsyncOpenAI) -> tuple[str, set[str], str | None]:
    stream = await client.chat.completions.create(model="chat", messages=QUESTION, stream=True)
    text, ids, finish = "", set(), None
    async for chunk in stream:
        ids.add(chunk.id)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    return text, ids, finish


@pytest.mark.parametrize(
    "fault",
    [
        Fault("cut", after_chunks=4),
        Fault("malformed", after_chunks=4),
        Fault("error_event", after_chunks=4),
    ],
    ids=["cut", "malformed", "error-event"],
)
async def test_a_broken_stream_is_finished_by_the_fallback_model(fault: Fault) -> None:
    async with shape() as s:
        s.primary.enqueue(fault)
        text, ids, finish = await streamed(s.client)
        assert text == ANSWER  # the whole answer, once, no restated overlap
        assert len(ids) == 1  # one stream, one id
        assert finish == "stop"
        assert len(chats(s.primary)) == 1
        [continuation] = chats(s.fallback)
        # The fallback was asked to continue what the caller had already received.
        messages = continuation.json["messages"]
        assert messages[0] == QUESTION[0]
        assert messages[1]["role"] == "assistant"
        assert messages[1]["content"] and ANSWER.startswith(messages[1]["content"].strip())


async def test_without_fallbacks_a_broken_stream_still_fails_cleanly() -> None:
    async with AsyncExitStack() as stack:
        primary = await stack.enter_async_context(FakeOpenAI(chunk_delay=0.005, models=None))
        data = one_per_model(primary.url, primary.url)
        del data["router_settings"]
        gateway = await stack.enter_async_context(running_gateway(parse_config(data)))
        client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="anything")
        stack.push_async_callback(client.close)
        primary.enqueue(Fault("cut", after_chunks=4))
        with pytest.raises(openai.APIError):
            await streamed(client)
        assert len(chats(primary)) == 1  # nothing else to continue on, nothing retried blindly
