"""LiteLLM's ``timeout`` through the whole gateway: a limit on each call, not on the request.

The shape most users run: a LiteLLM config with one deployment per model and ``fallbacks``,
``timeout: 2``, everything else at turnout's defaults, and the official SDK at its defaults
(two retries of its own). An upstream that accepts and never answers is left after 2 s, and the
fallback answers: the caller sees a normal answer in about 2 s, not a 504 at the deadline.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import openai

from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import running_gateway
from litellm_shape import one_per_model
from turnout.config.load import parse_config

MESSAGES: Any = [{"role": "user", "content": "Tell me something"}]


def _litellm_config(primary: str, backup: str, **router_settings: Any) -> dict[str, Any]:
    data = one_per_model(primary, backup, names=("primary", "backup"), **router_settings)
    return {**data, "server": {"port": 0}}


@asynccontextmanager
async def _gateway(
    **router_settings: Any,
) -> AsyncIterator[tuple[FakeOpenAI, FakeOpenAI, openai.AsyncOpenAI]]:
    async with AsyncExitStack() as stack:
        primary = await stack.enter_async_context(FakeOpenAI())
        backup = await stack.enter_async_context(FakeOpenAI())
        primary.set_default(Fault("hang"))  # accepts every request and never answers
        config = parse_config(
            _litellm_config(primary.url, backup.url, **router_settings), environ={}
        )
        assert config.format == "litellm"
        gateway = await stack.enter_async_context(running_gateway(config))
        # The official SDK as users run it: its own default retries and timeout.
        client = openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key="sk-anything")
        await stack.enter_async_context(client)
        yield primary, backup, client


async def test_a_silent_primary_is_served_by_the_fallback_after_the_per_call_timeout() -> None:
    async with _gateway(timeout=2) as (primary, backup, client):
        started = time.monotonic()
        raw = await client.chat.completions.with_raw_response.create(
            model="primary", messages=MESSAGES
        )
        elapsed = time.monotonic() - started
        completion = raw.parse()
    assert completion.choices[0].message.content == "Fake answer to: Tell me something"
    assert raw.headers["x-turnout-attempts"] == "2"
    assert 1.9 <= elapsed < 3.5, elapsed
    assert len(primary.requests) == 1  # not retried after its timeout, by the gateway or SDK
    assert len(backup.requests) == 1


async def test_a_silent_primary_stream_is_served_by_the_fallback_after_stream_timeout() -> None:
    async with _gateway(timeout=30, stream_timeout=2) as (primary, backup, client):
        started = time.monotonic()
        stream = await client.chat.completions.create(
            model="primary", messages=MESSAGES, stream=True
        )
        text = ""
        async for chunk in stream:
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        elapsed = time.monotonic() - started
    assert text == "Fake answer to: Tell me something"
    assert 1.9 <= elapsed < 3.5, elapsed
    assert len(primary.requests) == 1
    assert len(backup.requests) == 1
