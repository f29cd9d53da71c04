"""The provider boundary: every `ProviderError` leaves `HttpProvider` redacted, answered whole or
streamed, by status or by an error event, whether the configuration's redactor was given or
not (then the failing deployment's own credentials are used)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from turnout import Deployment, Request, Secret
from turnout.errors import ProviderError
from turnout.providers.http import HttpProvider
from turnout.providers.openai import OpenAICompatibleAdapter
from turnout.secrets import Redactor
from turnout.testing.fake_openai import FakeOpenAI, Fault
from turnout.upstream import Upstream

KEY = "q7LmX2vR9tKpW4zN"
OTHER = "zX81mQ0pLr5sTuV3hG7k"
MASK = "**********"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(KEY) as server:
        yield server


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    client = Upstream()
    try:
        yield client
    finally:
        await client.close()


def _deployment(fake: FakeOpenAI) -> Deployment:
    return Deployment(
        model_name="chat",
        provider="openai-compatible",
        model="gpt-4o-mini",
        base_url=fake.url,
        api_key=Secret(KEY),
    )


def _request(stream: bool) -> Request:
    body = {"messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return Request(model="chat", body=body)


async def _fail(provider: HttpProvider, deployment: Deployment, stream: bool) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        if stream:
            async for _ in provider.stream(deployment, _request(stream=True)):
                pass
        else:
            await provider.complete(deployment, _request(stream=False))
    return caught.value


_BAD = "invalid_request_error"


@pytest.mark.parametrize(
    ("fault", "stream"),
    [
        (Fault.http_error(400, f"peer {OTHER}", _BAD, param=KEY), False),
        (Fault.http_error(400, f"peer {OTHER}", _BAD, param=KEY), True),
        (
            Fault(
                "error_event", after_chunks=0, error_type=_BAD, message=f"peer {OTHER}", param=KEY
            ),
            True,
        ),
        (
            Fault(
                "error_event", after_chunks=2, error_type=_BAD, message=f"peer {OTHER}", param=KEY
            ),
            True,
        ),
    ],
    ids=["status-whole", "status-streamed", "first-event", "mid-stream-event"],
)
async def test_errors_leave_the_provider_redacted(
    fake: FakeOpenAI, upstream: Upstream, fault: Fault, stream: bool
) -> None:
    fake.enqueue(replace(fault, echo_credentials=True))
    adapter = OpenAICompatibleAdapter("openai-compatible", {})
    provider = HttpProvider(adapter, upstream, Redactor([KEY, OTHER]))
    error = await _fail(provider, _deployment(fake), stream)
    assert error.message.endswith(f"peer {MASK} (credentials received: {MASK})")
    assert str(error) == error.message
    assert error.param == MASK


async def test_without_a_redactor_the_failing_deployments_credentials_are_removed(
    fake: FakeOpenAI, upstream: Upstream
) -> None:
    fake.enqueue(Fault("error_event", after_chunks=0, echo_credentials=True))
    provider = HttpProvider(OpenAICompatibleAdapter("openai-compatible", {}), upstream)
    error = await _fail(provider, _deployment(fake), stream=True)
    assert KEY not in error.message
    assert error.message.endswith(f"(credentials received: {MASK})")
