"""`/metrics` names deployments, counts requests and cost and shows breaker state: with a
master key configured, it is the key's to read.

A real gateway on 127.0.0.1 (in the test's loop, as the other gateway tests run it) in front of
the fake OpenAI upstream; the probes are plain HTTP requests, as a scraper or a stranger sends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
import pytest
from probe_kit import openai_error

from fakes.fake_openai import FakeOpenAI
from gateway_harness import RunningGateway, gateway_config, running_gateway
from turnout import Deployment, Secret

MASTER_KEY = "sk-master-metrics-probe-5Tz"


@asynccontextmanager
async def gateway(master_key: str | None) -> AsyncIterator[RunningGateway]:
    async with FakeOpenAI() as fake:
        deployment = Deployment(
            model_name="chat",
            provider="openai-compatible",
            model="gpt-4o-mini",
            id="chat-primary",
            base_url=fake.url,
            api_key=Secret("sk-fake"),
        )
        async with running_gateway(gateway_config(deployment, master_key=master_key)) as running:
            # One request served, so that the metrics have something to tell.
            async with running.client(api_key=master_key or "sk-x") as client:
                await client.chat.completions.create(
                    model="chat", messages=[{"role": "user", "content": "Hello"}]
                )
            yield running


async def _get_metrics(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http,
        http.get(f"{url}/metrics", headers=headers) as answer,
    ):
        return answer.status, await answer.read()


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer sk-wrong-key"},
        {"authorization": f"Basic {MASTER_KEY}"},
        {"api-key": "sk-wrong-key"},
    ],
    ids=["no-key", "wrong-bearer", "not-bearer", "wrong-api-key"],
)
async def test_metrics_without_the_key_is_a_401(headers: dict[str, str]) -> None:
    async with gateway(MASTER_KEY) as running:
        status, body = await _get_metrics(running.url, headers)
    assert status == 401, body[:300]
    openai_error(body)
    assert b"chat-primary" not in body
    assert b"turnout_" not in body


async def test_metrics_with_the_key_is_served() -> None:
    async with gateway(MASTER_KEY) as running:
        status, body = await _get_metrics(running.url, {"authorization": f"Bearer {MASTER_KEY}"})
    assert status == 200, body[:300]
    assert b"turnout_requests_total" in body
    assert MASTER_KEY.encode() not in body


async def test_metrics_without_a_master_key_stays_open() -> None:
    """No key configured, no access rule: Prometheus scrapes as before."""
    async with gateway(None) as running:
        status, body = await _get_metrics(running.url, {})
    assert status == 200, body[:300]
    assert b"turnout_requests_total" in body
