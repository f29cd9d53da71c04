"""A stream's closing summary: an SSE comment line before ``data: [DONE]`` or the error event.

Checked on the wire, and with the official SDK (async and blocking), which must go on parsing
streams as before: SSE comment lines are skipped by every conforming client.
"""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import openai
import pytest

from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import gateway_config, running_gateway, threaded_gateway
from turnout import Deployment, RoutingConfig, Secret
from turnout.config.server import GatewayConfig

MESSAGES: Any = [{"role": "user", "content": "Tell me something"}]


def config(url: str, count: int = 1) -> GatewayConfig:
    deployments = [
        Deployment(
            model_name="chat",
            provider="openai-compatible",
            model="gpt-4o-mini",
            name=f"east-{index}",
            base_url=url,
            api_key=Secret("sk-fake"),
            priority=index,
            input_cost_per_token=1e-6,
            output_cost_per_token=2e-6,
        )
        for index in range(count)
    ]
    return gateway_config(*deployments, routing=RoutingConfig(strategy="priority"))


def _events(raw: bytes) -> list[bytes]:
    return [event for event in raw.split(b"\n\n") if event]


def _summary(event: bytes) -> dict[str, Any]:
    assert event.startswith(b": turnout ")
    summary: dict[str, Any] = msgspec.json.decode(event.removeprefix(b": turnout "))
    return summary


async def test_the_summary_comes_just_before_done_with_cost_and_usage() -> None:
    async with (
        FakeOpenAI() as fake,
        running_gateway(config(fake.url)) as gw,
        aiohttp.ClientSession() as session,
        session.post(
            f"{gw.url}/v1/chat/completions",
            json={"model": "chat", "messages": MESSAGES, "stream": True},
            headers={"x-request-id": "stream-7"},
        ) as response,
    ):
        raw = await response.read()
    events = _events(raw)
    assert events[-1] == b"data: [DONE]"
    summary = _summary(events[-2])
    assert summary["request_id"] == "stream-7"
    assert summary["deployment"] == "east-0"
    assert summary["model_group"] == "chat"
    assert summary["attempts"] == 1
    usage = summary["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    expected = usage["prompt_tokens"] * 1e-6 + usage["completion_tokens"] * 2e-6
    assert abs(summary["cost"] - expected) < 1e-12
    assert all(event.startswith(b"data: ") for event in events[:-2])


async def test_a_broken_stream_ends_with_the_summary_then_the_error_event() -> None:
    async with FakeOpenAI() as fake, running_gateway(config(fake.url)) as gw:
        fake.set_default(Fault("cut", after_chunks=2))
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{gw.url}/v1/chat/completions",
                json={"model": "chat", "messages": MESSAGES, "stream": True},
            ) as response,
        ):
            raw = await response.read()
            request_id = response.headers["x-request-id"]
    events = _events(raw)
    assert b"[DONE]" not in raw
    assert b'"error"' in events[-1]
    summary = _summary(events[-2])
    assert summary["request_id"] == request_id
    assert summary["usage"] is None
    assert summary["attempts"] >= 1
    assert summary["cost"] is not None  # what was generated before the break was billed


async def test_the_async_sdk_reads_a_summarised_stream_as_before() -> None:
    async with (
        FakeOpenAI() as fake,
        running_gateway(config(fake.url)) as gw,
        gw.client() as client,
    ):
        stream = await client.chat.completions.create(
            model="chat",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text
    assert chunks[-1].usage is not None


def test_the_blocking_sdk_reads_a_summarised_stream_as_before() -> None:
    with threaded_gateway(config) as url:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="sk-any", max_retries=0)
        with client:
            stream = client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
            chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert chunks[-1].choices[0].finish_reason == "stop"


async def test_the_async_sdk_raises_the_error_event_after_the_summary() -> None:
    async with FakeOpenAI() as fake, running_gateway(config(fake.url)) as gw:
        fake.set_default(Fault("cut", after_chunks=2))
        async with gw.client() as client:
            stream = await client.chat.completions.create(
                model="chat", messages=MESSAGES, stream=True
            )
            received = []
            with pytest.raises(openai.APIError, match="stream"):
                async for chunk in stream:
                    received.append(chunk)
    assert received
