"""The shape issue 10 is judged in: a LiteLLM ``config.yaml`` with one deployment per model,
``fallbacks`` and ``context_window_fallbacks``, ``num_retries: 2``, ``timeout: 30``, everything
else at turnout's defaults, served on 127.0.0.1 and called through the official `openai` SDK at
its default retries. Upstreams are the fakes of tests/fakes/.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import openai
import yaml

from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_openai import FakeOpenAI
from gateway_harness import RunningGateway, running_gateway
from turnout.config.load import load_config

#: The prompt every scenario sends, and the answer the fakes give it.
PROMPT = "please describe in some detail how a railway turnout guides a train"
ANSWER = f"Fake answer to: {PROMPT}"
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]
OPENAI_MODEL = "openai/gpt-4o-mini"
OPENAI_KEY = "sk-fake"


def openai_params(url: str, **extra: Any) -> dict[str, Any]:
    return {"model": OPENAI_MODEL, "api_base": url, "api_key": OPENAI_KEY, **extra}


def anthropic_params(url: str, **extra: Any) -> dict[str, Any]:
    params = {"model": "anthropic/claude-sonnet-4-5", "api_base": url, "api_key": "sk-ant-fake"}
    return {**params, **extra}


def litellm_file(
    directory: Path,
    models: list[tuple[str, dict[str, Any]]],
    router_settings: dict[str, Any],
) -> Path:
    """Write a LiteLLM config.yaml: `models` as (model_name, litellm_params) entries."""
    data = {
        "model_list": [{"model_name": name, "litellm_params": params} for name, params in models],
        "router_settings": router_settings,
    }
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class Shape:
    """The running gateway and the fakes behind its three models."""

    gateway: RunningGateway
    primary: FakeOpenAI
    spare: FakeOpenAI
    big: FakeOpenAI
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"{self.gateway.url}/v1"

    def sdk(self, **options: Any) -> openai.AsyncOpenAI:
        """The official SDK at its defaults (max_retries=2) unless told otherwise."""
        client = openai.AsyncOpenAI(base_url=self.base_url, api_key="sk-caller", **options)
        self.clients.append(client)
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()

    async def health(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.gateway.url}/health") as response,
        ):
            assert response.status == 200, await response.text()
            body: dict[str, Any] = json.loads(await response.text())
            return body

    async def deployment(self, group: str) -> dict[str, Any]:
        for entry in (await self.health())["deployments"]:
            if entry["model_group"] == group:
                found: dict[str, Any] = entry
                return found
        raise AssertionError(f"no deployment of {group!r} in /health")

    async def assert_healthy(self, model: str = "chat") -> None:
        """/health answers and a plain request right after is answered in full."""
        await self.health()
        client = self.sdk(timeout=30)
        reply = await client.chat.completions.create(model=model, messages=MESSAGES)
        assert reply.choices[0].message.content == ANSWER


def standard_models(
    primary: str, spare: str, big: str, **primary_extra: Any
) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("chat", openai_params(primary, **primary_extra)),
        ("spare", openai_params(spare)),
        ("big", openai_params(big)),
    ]


def standard_settings(**extra: Any) -> dict[str, Any]:
    return {
        "fallbacks": [{"chat": ["spare"]}],
        "context_window_fallbacks": [{"chat": ["big"]}],
        "num_retries": 2,
        "timeout": 30,
        **extra,
    }


@asynccontextmanager
async def users_shape(
    directory: Path,
    *,
    primary_extra: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    models: list[tuple[str, dict[str, Any]]] | None = None,
    primary: FakeOpenAI | None = None,
) -> AsyncIterator[Shape]:
    """Three fakes (chat, its fallback spare, its context-window fallback big) behind a gateway
    loaded from a LiteLLM file; `settings` replace router_settings, `models` the model list."""
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(primary or FakeOpenAI())
        spare = await stack.enter_async_context(FakeOpenAI())
        big = await stack.enter_async_context(FakeOpenAI())
        model_list = models or standard_models(
            first.url, spare.url, big.url, **(primary_extra or {})
        )
        path = litellm_file(directory, model_list, settings or standard_settings())
        running = await stack.enter_async_context(running_gateway(load_config(path)))
        shape = Shape(running, first, spare, big)
        try:
            yield shape
        finally:
            await shape.close()


@asynccontextmanager
async def anthropic_fake(**options: Any) -> AsyncIterator[FakeAnthropic]:
    async with FakeAnthropic(**options) as fake:
        yield fake


async def warm_up(shape: Shape, count: int = 12, *, stream: bool) -> None:
    """Quick successful requests, so that the primary's limits are learned (the issue: limits
    are conservative until enough samples exist)."""
    client = shape.sdk(timeout=30)
    for _ in range(count):
        if stream:
            assert await streamed_text(client, "chat") == ANSWER
        else:
            reply = await client.chat.completions.create(model="chat", messages=MESSAGES)
            assert reply.choices[0].message.content == ANSWER


async def streamed_text(client: openai.AsyncOpenAI, model: str, **options: Any) -> str:
    stream = await client.chat.completions.create(
        model=model, messages=MESSAGES, stream=True, **options
    )
    parts: list[str] = []
    async for chunk in stream:
        for choice in chunk.choices:
            if choice.delta.content:
                parts.append(choice.delta.content)
    return "".join(parts)


class Stopwatch:
    def __init__(self) -> None:
        self.started = time.monotonic()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started
