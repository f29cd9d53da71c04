"""The model list in both APIs' shapes: the official Anthropic SDK (which Claude Code lists
models through) gets Anthropic's pages and objects, the OpenAI SDK OpenAI's, from the same
paths; errors in the shape of the API the caller speaks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import anthropic
import openai
import pytest
import pytest_asyncio

from gateway_harness import RunningGateway, gateway_config, running_gateway, simulated

MASTER = "sk-gateway-master-7Qw2"
GROUPS = [f"model-{index:02d}" for index in range(25)]


@pytest_asyncio.fixture
async def gateway() -> AsyncIterator[RunningGateway]:
    deployments = [simulated(f"sim-{group}", group) for group in GROUPS]
    config = gateway_config(*deployments, master_key=MASTER, aliases={"house": "model-03"})
    async with running_gateway(config) as running:
        yield running


def _anthropic(gateway: RunningGateway, key: str = MASTER) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=gateway.url, api_key=key, max_retries=0)


async def test_the_anthropic_sdk_pages_through_every_model_and_alias(
    gateway: RunningGateway,
) -> None:
    async with _anthropic(gateway) as client:
        first = await client.models.list()
        every = [model.id async for model in await client.models.list(limit=7)]
        house = await client.models.retrieve("house")
    assert len(first.data) == 20 and first.has_more, first
    assert first.first_id == first.data[0].id and first.last_id == first.data[-1].id
    assert sorted(every) == sorted([*GROUPS, "house"]), every
    assert len(every) == len(set(every))  # each page continued after the last one's last id
    model = first.data[0]
    assert model.type == "model" and model.display_name == model.id
    assert model.created_at.year >= 2024  # an RFC 3339 time, parsed by the SDK
    assert house.id == "house" and house.type == "model"


async def test_before_id_pages_backwards(gateway: RunningGateway) -> None:
    async with _anthropic(gateway) as client:
        page = await client.models.list(before_id="model-05", limit=3)
        start = await client.models.list(before_id="model-02", limit=5)
    assert [model.id for model in page.data] == ["model-02", "model-03", "model-04"]
    assert page.has_more
    assert [model.id for model in start.data] == ["house", "model-00", "model-01"]
    assert not start.has_more


async def test_the_openai_sdk_still_gets_openai_shapes(gateway: RunningGateway) -> None:
    async with openai.AsyncOpenAI(base_url=f"{gateway.url}/v1", api_key=MASTER) as client:
        listed = [model.id async for model in client.models.list()]
        house = await client.models.retrieve("house")
    assert sorted(listed) == sorted([*GROUPS, "house"])
    assert house.object == "model" and house.owned_by == "turnout"


async def test_anthropic_callers_get_anthropic_errors(gateway: RunningGateway) -> None:
    async with _anthropic(gateway) as client:
        with pytest.raises(anthropic.NotFoundError) as missing:
            await client.models.retrieve("no-such-model")
        with pytest.raises(anthropic.BadRequestError) as bad_limit:
            await client.models.list(limit=0)
        with pytest.raises(anthropic.BadRequestError) as unknown_after:
            await client.models.list(after_id="no-such-model")
    async with _anthropic(gateway, key="sk-wrong") as client:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            await client.models.list()
    for raised in (missing, bad_limit, unknown_after, refused):
        body = raised.value.body
        assert isinstance(body, dict) and body["type"] == "error", body
        assert body["error"]["type"].endswith("_error"), body
    assert "no-such-model" in str(missing.value) and "model-00" not in str(missing.value)
    assert "sk-wrong" not in str(refused.value)


async def test_both_cursors_at_once_are_refused(gateway: RunningGateway) -> None:
    headers = {"x-api-key": MASTER, "anthropic-version": "2023-06-01"}
    query = {"after_id": "model-01", "before_id": "model-09"}
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{gateway.url}/v1/models", headers=headers, params=query) as answer,
    ):
        body = await answer.json()
    assert answer.status == 400, body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error", body
