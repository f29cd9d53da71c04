"""What the Messages API tests share: a gateway in front of the Anthropic and OpenAI fakes, in
the LiteLLM-config shape most users run, and the official `anthropic` SDK pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import anthropic
import msgspec

from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_openai import FakeOpenAI
from gateway_harness import RunningGateway, running_gateway
from turnout.config.load import parse_config

MASTER = "sk-gateway-master-3c1f9a"
Family = Literal["anthropic", "openai"]
FAMILIES: tuple[Family, ...] = ("anthropic", "openai")
#: The model each fake knows, as a LiteLLM `litellm_params.model`.
UPSTREAM_MODEL = {"anthropic": "anthropic/claude-sonnet-4-5", "openai": "openai/gpt-4o-mini"}
UPSTREAM_KEY = {"anthropic": "sk-ant-fake", "openai": "sk-fake"}


@dataclass
class Upstreams:
    anthropic: FakeAnthropic
    openai: FakeOpenAI

    def of(self, family: Family) -> FakeAnthropic | FakeOpenAI:
        return self.anthropic if family == "anthropic" else self.openai

    def url(self, family: Family) -> str:
        return self.anthropic.url if family == "anthropic" else self.openai.url


def deployment(name: str, family: Family, url: str, **params: Any) -> dict[str, Any]:
    """One LiteLLM `model_list` entry."""
    litellm_params = {
        "model": UPSTREAM_MODEL[family],
        "api_base": url,
        "api_key": UPSTREAM_KEY[family],
        **params,
    }
    return {"model_name": name, "litellm_params": litellm_params}


def litellm_config(*entries: dict[str, Any], **router_settings: Any) -> dict[str, Any]:
    return {
        "model_list": list(entries),
        "router_settings": router_settings,
        "general_settings": {"master_key": MASTER},
    }


@asynccontextmanager
async def upstreams() -> AsyncIterator[Upstreams]:
    async with FakeAnthropic() as claude, FakeOpenAI() as gpt:
        yield Upstreams(claude, gpt)


@asynccontextmanager
async def gateway(config: dict[str, Any]) -> AsyncIterator[RunningGateway]:
    async with running_gateway(parse_config(config)) as running:
        yield running


def sdk(running: RunningGateway, api_key: str = MASTER, **options: Any) -> anthropic.AsyncAnthropic:
    """The Anthropic SDK pointed at the gateway, without retries of its own."""
    options.setdefault("max_retries", 0)
    options.setdefault("timeout", 10.0)
    return anthropic.AsyncAnthropic(base_url=running.url, api_key=api_key, **options)


@asynccontextmanager
async def served(
    family: Family, name: str = "claude"
) -> AsyncIterator[tuple[Upstreams, anthropic.AsyncAnthropic]]:
    """One model `name` served by `family`'s fake, and the SDK pointed at its gateway."""
    async with AsyncExitStack() as stack:
        fakes = await stack.enter_async_context(upstreams())
        config = litellm_config(deployment(name, family, fakes.url(family)))
        running = await stack.enter_async_context(gateway(config))
        yield fakes, await stack.enter_async_context(sdk(running))


def upstream_bodies(fakes: Upstreams, family: Family) -> list[dict[str, Any]]:
    """The bodies the family's fake received for generation."""
    fake = fakes.of(family)
    return [
        r.json
        for r in fake.requests
        if r.json and r.path.endswith(("/messages", "/chat/completions"))
    ]


async def raw_events(url: str, body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A streamed request's server-sent events, as (event name, data), read off the wire as
    sent (the SDK drops ``ping`` events), comments left out."""
    headers = {"x-api-key": MASTER, "anthropic-version": "2023-06-01"}
    events: list[tuple[str, dict[str, Any]]] = []
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{url}/v1/messages", json={**body, "stream": True}, headers=headers
        ) as response,
    ):
        text = await response.text()
        assert response.status == 200, text
    for frame in text.split("\n\n"):
        lines = [line for line in frame.splitlines() if not line.startswith(":")]
        if not lines:
            continue
        name, data = lines
        assert name.startswith("event: ") and data.startswith("data: "), frame
        events.append((name[len("event: ") :], msgspec.json.decode(data[len("data: ") :])))
    return events
