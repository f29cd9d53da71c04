"""A 429 from the only deployment of a model, where most users stand: a LiteLLM config with one
deployment per model and fallbacks, turnout's defaults, the official SDK at its default retries.

The answer comes from the fallback at once, and the rate-limited primary is back as soon as its
Retry-After says, not after the longer default cooldown. Time is real here.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import openai
import pytest

from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import RunningGateway, running_gateway
from litellm_shape import one_per_model
from turnout.config.load import load_config

QUESTION: Any = [{"role": "user", "content": "Tell me about turnouts"}]
ANSWER = "Fake answer to: Tell me about turnouts"
#: The official SDK's own default.
SDK_RETRIES = 2


@dataclass
class Pair:
    gateway: RunningGateway
    primary: FakeOpenAI
    spare: FakeOpenAI
    client: openai.AsyncOpenAI

    async def ask(self) -> tuple[str, float]:
        """The deployment that answered, and how long the answer took."""
        started = time.monotonic()
        answer = await self.client.chat.completions.with_raw_response.create(
            model="chat", messages=QUESTION
        )
        elapsed = time.monotonic() - started
        assert answer.parse().choices[0].message.content == ANSWER
        return answer.headers["x-turnout-deployment"], elapsed

    async def cooldown_left(self, deployment_id: str) -> float:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.gateway.url}/health") as response,
        ):
            report = msgspec.json.decode(await response.read())
        [entry] = [d for d in report["deployments"] if d["id"] == deployment_id]
        return float(entry["cooldown_seconds_left"])


def _litellm_config(path: Path, primary: str, spare: str) -> Path:
    """One deployment per model, a general fallback, LiteLLM's usual settings, else defaults."""
    data = one_per_model(primary, spare, ids=True, num_retries=2, timeout=30)
    path.write_text(json.dumps(data))  # JSON is YAML
    return path


@asynccontextmanager
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    async with AsyncExitStack() as stack:
        primary = await stack.enter_async_context(FakeOpenAI())
        spare = await stack.enter_async_context(FakeOpenAI())
        config = load_config(_litellm_config(tmp_path / "config.yaml", primary.url, spare.url))
        assert config.format == "litellm"
        gateway = await stack.enter_async_context(running_gateway(config))
        client = await stack.enter_async_context(
            gateway.client(max_retries=SDK_RETRIES, timeout=60.0)
        )
        yield Pair(gateway, primary, spare, client)


def _chats(fake: FakeOpenAI) -> int:
    return sum(1 for r in fake.requests if r.path == "/v1/chat/completions")


async def test_a_429_with_retry_after_2_is_answered_by_the_fallback_at_once(
    tmp_path: Path,
) -> None:
    async with pair(tmp_path) as p:
        p.primary.enqueue(Fault.rate_limited(retry_after=2))
        limited_at = time.monotonic()
        served_by, elapsed = await p.ask()
        assert served_by == "spare"
        assert elapsed < 1.0  # no wait for the rate limit
        assert (_chats(p.primary), _chats(p.spare)) == (1, 1)
        # The primary cools for the 2 s the provider asked, not the 5 s default.
        assert 1.0 < await p.cooldown_left("chat") <= 2.0
        served_by, _ = await p.ask()
        assert served_by == "spare"
        assert _chats(p.primary) == 1  # left alone while it asked to be
        await asyncio.sleep(max(0.0, limited_at + 2.2 - time.monotonic()))
        served_by, elapsed = await p.ask()
        assert served_by == "chat"
        assert elapsed < 1.0
        assert _chats(p.primary) == 2


async def test_a_429_with_retry_after_7_does_not_hold_the_request(tmp_path: Path) -> None:
    async with pair(tmp_path) as p:
        p.primary.enqueue(Fault.rate_limited(retry_after=7))
        served_by, elapsed = await p.ask()
        assert served_by == "spare"
        assert elapsed < 1.0
        assert (_chats(p.primary), _chats(p.spare)) == (1, 1)
        assert 6.0 < await p.cooldown_left("chat") <= 7.0  # as long as asked, not doubled


@pytest.mark.parametrize("retry_after", [2.0, None])
async def test_a_429_with_the_fallback_down_waits_only_as_asked(
    tmp_path: Path, retry_after: float | None
) -> None:
    async with pair(tmp_path) as p:
        await p.gateway.gateway.router.cool_down("spare", 60)
        p.primary.enqueue(Fault.rate_limited(retry_after=retry_after))
        served_by, elapsed = await p.ask()
        assert served_by == "chat"
        assert _chats(p.primary) == 2 and _chats(p.spare) == 0
        if retry_after is not None:
            assert 1.9 < elapsed < 3.0  # the provider's 2 s, not the 5 s default
        else:
            assert 4.9 < elapsed < 6.0  # no hint: the default cooldown


async def test_a_streamed_request_goes_to_the_fallback_at_once(tmp_path: Path) -> None:
    async with pair(tmp_path) as p:
        p.primary.enqueue(Fault.rate_limited(retry_after=2))
        started = time.monotonic()
        answer = await p.client.chat.completions.with_raw_response.create(
            model="chat", messages=QUESTION, stream=True
        )
        text = ""
        async for chunk in answer.parse():
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
        assert text == ANSWER
        assert answer.headers["x-turnout-deployment"] == "spare"
        assert time.monotonic() - started < 1.0
        assert (_chats(p.primary), _chats(p.spare)) == (1, 1)
