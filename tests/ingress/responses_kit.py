"""A gateway serving the Responses API over fake OpenAI and Anthropic upstreams, for the tests
of ``/v1/responses`` through the official `openai` SDK.

Two model groups: ``gpt`` (a `FakeOpenAI` chat deployment) and ``claude`` (a `FakeAnthropic`
one), so that every test can run through a provider that speaks chat natively and one the
gateway translates to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import openai

from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_openai import FakeOpenAI
from gateway_harness import RunningGateway, gateway_config, running_gateway
from turnout import Deployment, Secret
from turnout.config.server import ResponsesStoreConfig

PROVIDERS = ("gpt", "claude")
#: A function tool, in the Responses API's flat shape.
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city",
    "parameters": {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    },
}


@dataclass
class Served:
    gateway: RunningGateway
    client: openai.AsyncOpenAI
    openai: FakeOpenAI
    anthropic: FakeAnthropic

    def last_chat(self, group: str) -> dict[str, Any]:
        """The body the upstream of `group` last received."""
        fake: FakeOpenAI | FakeAnthropic = self.openai if group == "gpt" else self.anthropic
        body: dict[str, Any] = fake.requests[-1].json
        return body


def deployments(openai_url: str, anthropic_url: str) -> list[Deployment]:
    return [
        Deployment(
            model_name="gpt",
            provider="openai",
            model="gpt-4o-mini",
            id="fake-openai",
            base_url=openai_url,
            api_key=Secret("sk-fake"),
        ),
        Deployment(
            model_name="claude",
            provider="anthropic",
            model="claude-sonnet-4-5",
            id="fake-anthropic",
            base_url=anthropic_url,
            api_key=Secret("sk-ant-fake"),
        ),
    ]


@asynccontextmanager
async def serving(
    store: ResponsesStoreConfig | None = None, **router: Any
) -> AsyncIterator[Served]:
    """`store`: the responses store's bounds (None: the defaults)."""
    async with AsyncExitStack() as stack:
        fake_openai = await stack.enter_async_context(FakeOpenAI())
        fake_anthropic = await stack.enter_async_context(FakeAnthropic())
        config = gateway_config(*deployments(fake_openai.url, fake_anthropic.url), **router)
        if store is not None:
            server = msgspec.structs.replace(config.server, responses_store=store)
            config = msgspec.structs.replace(config, server=server)
        gateway = await stack.enter_async_context(running_gateway(config))
        client = await stack.enter_async_context(gateway.client())
        yield Served(gateway, client, fake_openai, fake_anthropic)


async def events_of(stream: Any) -> list[Any]:
    """Every event of a streamed response, checked to be numbered 0, 1, 2... in order."""
    events = [event async for event in stream]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    return events


def shape(events: list[Any]) -> list[str]:
    """The event types in order, each run of deltas shown once."""
    kinds: list[str] = []
    for event in events:
        if not (kinds and kinds[-1] == event.type and event.type.endswith(".delta")):
            kinds.append(event.type)
    return kinds


async def respond(
    client: openai.AsyncOpenAI, streamed: bool, **fields: Any
) -> tuple[Any, list[Any]]:
    """The final `response` and, when streamed, every event (their numbering checked). The
    SDK's call is typed per literal argument; tests pass their fields as a dict."""
    responses: Any = client.responses
    if streamed:
        events = await events_of(await responses.create(**fields, stream=True))
        return events[-1].response, events
    return await responses.create(**fields), []
