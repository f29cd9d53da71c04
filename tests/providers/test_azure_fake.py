"""`FakeAzure` on its own (Azure's URLs, auth, errors and annotations), and the Azure adapter
against it end to end: the v1 API, Entra ID tokens and the Asynchronous Filter's streams."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import openai
import pytest

from fakes import fake_azure
from fakes.fake_azure import ACCESS_DENIED, FakeAzure
from gateway_harness import gateway_config, running_gateway
from turnout import Deployment, HealthConfig, RetryConfig, Secret

CHAT = "gpt-4o-mini"
KEY = "azure-fake-key"
PATH = f"/openai/deployments/{CHAT}/chat/completions"
MESSAGES: Any = [{"role": "user", "content": "hello there"}]


@pytest.fixture
async def fake() -> AsyncIterator[FakeAzure]:
    async with FakeAzure(KEY, deployments=(CHAT, "text-embedding-3-small")) as server:
        yield server


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    body: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any]:
    headers = {"api-key": KEY} if headers is None else headers
    async with session.post(url, json=body or {"messages": MESSAGES}, headers=headers) as reply:
        raw = await reply.read()
    return reply.status, raw


def _json(raw: bytes) -> Any:
    return msgspec.json.decode(raw)


def _events(raw: bytes) -> list[Any]:
    data = [event.removeprefix(b"data: ") for event in raw.split(b"\n\n") if event]
    assert data[-1] == b"[DONE]"
    return [msgspec.json.decode(item) for item in data[:-1]]


async def test_the_dated_api_needs_an_api_version(
    fake: FakeAzure, session: aiohttp.ClientSession
) -> None:
    status, raw = await _post(session, fake.url + PATH)
    assert (status, _json(raw)) == (
        404,
        {"error": {"code": "404", "message": "Resource not found"}},
    )
    status, raw = await _post(session, fake.url + PATH + "?api-version=yesterday")
    assert status == 400
    assert _json(raw)["error"]["message"] == "API version not supported"
    status, raw = await _post(session, fake.url + PATH + "?api-version=2024-10-21")
    assert status == 200
    answer = _json(raw)
    assert answer["model"] == CHAT
    assert answer["prompt_filter_results"][0]["prompt_index"] == 0
    assert "content_filter_results" in answer["choices"][0]
    assert fake.requests[-1].json == {"messages": MESSAGES}  # the record keeps what came


async def test_auth_is_an_api_key_or_an_entra_token(
    fake: FakeAzure, session: aiohttp.ClientSession
) -> None:
    url = fake.url + PATH + "?api-version=2024-10-21"
    status, raw = await _post(session, url, headers={"api-key": "wrong"})
    assert (status, _json(raw)) == (401, {"statusCode": 401, "message": ACCESS_DENIED})
    status, raw = await _post(session, url, headers={"Authorization": "Bearer nope"})
    assert status == 401
    assert _json(raw)["error"]["code"] == "401"
    status, _ = await _post(session, url, headers={"Authorization": "Bearer fake-entra-token"})
    assert status == 200


async def test_unknown_deployments_and_urls(
    fake: FakeAzure, session: aiohttp.ClientSession
) -> None:
    url = fake.url + "/openai/deployments/nope/chat/completions?api-version=2024-10-21"
    status, raw = await _post(session, url)
    assert (status, _json(raw)["error"]["code"]) == (404, "DeploymentNotFound")
    status, raw = await _post(session, fake.url + "/v1/chat/completions")
    assert (status, _json(raw)["error"]["message"]) == (404, "Resource not found")
    body = {"model": "nope", "messages": MESSAGES}
    status, raw = await _post(session, fake.url + "/openai/v1/chat/completions", body)
    assert (status, _json(raw)["error"]["code"]) == (404, "DeploymentNotFound")


async def test_streams_open_with_the_prompt_annotation(
    fake: FakeAzure, session: aiohttp.ClientSession
) -> None:
    body = {"messages": MESSAGES, "stream": True}
    status, raw = await _post(session, fake.url + PATH + "?api-version=2024-10-21", body)
    assert status == 200
    first, *rest = _events(raw)
    assert (first["id"], first["choices"]) == ("", [])
    assert first["prompt_filter_results"][0]["content_filter_results"]["hate"]["filtered"] is False
    assert {event["id"] for event in rest} != {""}


async def test_the_asynchronous_filter_annotates_and_may_end_the_answer(
    fake: FakeAzure, session: aiohttp.ClientSession
) -> None:
    fake.async_filter = True
    body = {"model": CHAT, "messages": MESSAGES, "stream": True}
    status, raw = await _post(session, fake.url + "/openai/v1/chat/completions", body)
    events = _events(raw)
    annotations = [e for e in events[1:] if e["id"] == ""]
    assert status == 200
    assert annotations
    assert all("delta" not in a["choices"][0] for a in annotations)
    assert events[-1]["id"] == ""  # an annotation after the finish
    fake.filtered = True
    _, raw = await _post(session, fake.url + "/openai/v1/chat/completions", body)
    last = _events(raw)[-1]
    assert (last["id"], last["choices"][0]["finish_reason"]) == ("", "content_filter")


async def test_faults_send_azures_bodies(fake: FakeAzure, session: aiohttp.ClientSession) -> None:
    fake.enqueue(fake_azure.content_filter(), fake_azure.rate_limited(retry_after=2))
    url = fake.url + PATH + "?api-version=2024-10-21"
    status, raw = await _post(session, url)
    error = _json(raw)["error"]
    assert (status, error["code"]) == (400, "content_filter")
    assert error["innererror"]["code"] == "ResponsibleAIPolicyViolation"
    async with session.post(url, json={"messages": MESSAGES}) as reply:
        assert reply.status == 429
        assert reply.headers["retry-after"] == "2"
        assert _json(await reply.read())["error"]["code"] == "429"


# --- the adapter against the fake, through the gateway and the SDK ---------------------------


def _deployment(fake: FakeAzure, group: str, **fields: Any) -> Deployment:
    fields.setdefault("api_key", Secret(KEY))
    fields.setdefault("base_url", fake.url)
    return Deployment(model_name=group, provider="azure", model=CHAT, id=group, **fields)


@pytest.fixture
async def client(fake: FakeAzure) -> AsyncIterator[openai.AsyncOpenAI]:
    config = gateway_config(
        _deployment(fake, "dated", api_version="2024-10-21"),
        _deployment(fake, "v1", api_version="v1"),
        _deployment(fake, "v1-base", base_url=fake.url + "/openai/v1/"),
        _deployment(
            fake, "entra", api_key=None, params={"azure_ad_token": Secret("fake-entra-token")}
        ),
        _deployment(fake, "old", api_version="2024-06-01"),
        retries=RetryConfig(num_retries=0),
        health=HealthConfig(disable_cooldowns=True),
    )
    async with running_gateway(config) as gateway, gateway.client() as sdk:
        yield sdk


@pytest.mark.parametrize("group", ["dated", "v1", "v1-base", "entra", "old"])
async def test_every_url_and_auth_form_answers(
    fake: FakeAzure, client: openai.AsyncOpenAI, group: str
) -> None:
    answer = await client.chat.completions.create(model=group, messages=MESSAGES)
    assert answer.choices[0].message.content == "Fake answer to: hello there"
    sent = fake.requests[-1]
    assert sent.path.startswith("/openai/v1/" if group.startswith("v1") else "/openai/deployments/")
    assert ("authorization" in sent.headers) is (group == "entra")


@pytest.mark.parametrize("include_usage", [False, True])
async def test_asynchronous_filter_streams_reach_the_sdk_as_one_stream(
    fake: FakeAzure, client: openai.AsyncOpenAI, include_usage: bool
) -> None:
    fake.async_filter = True
    options: Any = {"include_usage": True} if include_usage else openai.NOT_GIVEN
    stream = await client.chat.completions.create(
        model="dated", messages=MESSAGES, stream=True, stream_options=options
    )
    ids: set[str] = set()
    text, finish, usage = "", None, None
    async for chunk in stream:
        ids.add(chunk.id)
        assert chunk.object == "chat.completion.chunk"
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
        usage = chunk.usage or usage
    assert len(ids) == 1
    assert "" not in ids
    assert (text, finish) == ("Fake answer to: hello there", "stop")
    assert (usage is not None) is include_usage


async def test_a_filtered_stream_ends_with_content_filter(
    fake: FakeAzure, client: openai.AsyncOpenAI
) -> None:
    fake.async_filter = fake.filtered = True
    stream = await client.chat.completions.create(
        model="v1",
        messages=MESSAGES,
        stream=True,
    )
    chunks = [chunk async for chunk in stream]
    assert len({chunk.id for chunk in chunks}) == 1
    assert chunks[-1].choices[0].finish_reason == "content_filter"


async def test_a_missing_deployment_is_the_gateways_fault(
    fake: FakeAzure, client: openai.AsyncOpenAI
) -> None:
    """Azure's 404 for a deployment the resource does not have is a wrong config, not the
    caller's model: a 502 naming the deployment, with Azure's words in the attempts."""
    fake.enqueue(fake_azure.deployment_not_found())
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model="dated", messages=MESSAGES)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_model_not_found"
    assert "configured for deployment `dated`" in str(caught.value)
    assert "azure: The API deployment" in str(caught.value)
