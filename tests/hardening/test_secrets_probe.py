"""No secret reaches a client through an upstream's error, for every provider family.

Each family's fake upstream answers with an error whose message echoes secrets, the way an
upstream that quotes the request's headers back would: the failing deployment's own key,
another deployment's key (of a shape nothing would guess), a ``Bearer`` token and an
``sk-``-shaped key that no deployment has. The error comes as the stream's first event (the
client gets an error answer), as a stream's last event (after text was sent) and as a plain
error answer. Everything the client receives, headers and body, must be free of all of them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import openai
import pytest
from probe_kit import openai_error

from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_anthropic import Fault as AnthropicFault
from fakes.fake_azure import FakeAzure
from fakes.fake_bedrock import FakeBedrock
from fakes.fake_bedrock import Fault as BedrockFault
from fakes.fake_gemini import FakeGemini
from fakes.fake_gemini import Fault as GeminiFault
from fakes.fake_openai import FakeOpenAI
from fakes.fake_openai import Fault as OpenAIFault
from gateway_harness import gateway_config, running_gateway
from turnout import Deployment, RetryConfig, Secret

Position = Literal["first_event", "mid_stream", "error_answer"]
POSITIONS: tuple[Position, ...] = ("first_event", "mid_stream", "error_answer")

#: Keys of the failing deployment, one per family, each in the shape that family's keys have.
OPENAI_KEY = "sk-proj-Q7hV2mLx9TzB4nRk8WcY3pDf6GsJ1uNa"
AZURE_KEY = "3f9c2a7d1e4b8c6f0a5d9e2b7c1f4a8d"  # 32 hex digits, like Azure's keys
ANTHROPIC_KEY = "sk-ant-api03-Xw4Lr8Tq2Vn6Bz1Mk5Hc9Jd3Fs7Ga0Pe-Yu2Io6Kt"
GEMINI_KEY = "AIzaSyD4r7Tq1Wn8Kx2Lm5Vb9Hc3Jf6Gs0PeYu"
BEDROCK_ACCESS_KEY = "AKIAQ4PROBE7W2E6R8T0"
BEDROCK_SECRET_KEY = "Zq8vLm3Np7Rt2Wx5Yb9Cd4Fg6Hj1Kl0Mn8Pq3Rs/"
#: Another deployment's key, shaped like nothing: only knowing every configured secret hides it.
OTHER_KEY = "tangerine-velvet-48213-orbit-quasar-7719"
#: Secrets no deployment has, that only their shape gives away.
BEARER_TOKEN = "eyJhbGciOiJIUzI1NiJ9.cHJvYmUtdG9rZW4.c2lnbmF0dXJlLXByb2Jl"
LOOSE_SK_KEY = "sk-live-8Hq2Zr6Wm0Xc4Vb7Nt1Ky5Lp9Ja3Sd"

MESSAGES: Any = [{"role": "user", "content": "Tell me a story"}]


def leaky_message(*own_keys: str) -> str:
    """What an upstream that echoes its request's headers and a few other secrets would say."""
    echoed = ", ".join(f"credential {index}={key}" for index, key in enumerate(own_keys))
    return (
        f"upstream failed; request had {echoed}; authorization: Bearer {own_keys[0]}; "
        f"routing peer key {OTHER_KEY}; session Authorization: Bearer {BEARER_TOKEN}; "
        f"fallback key {LOOSE_SK_KEY}"
    )


def forbidden(*own_keys: str) -> list[str]:
    """Every secret, whole and as its middle part (a partial redaction still leaks)."""
    values = [*own_keys, OTHER_KEY, BEARER_TOKEN, LOOSE_SK_KEY]
    return [*values, *(value[len(value) // 4 : len(value) // 4 + 12] for value in values)]


@dataclass(frozen=True)
class Family:
    """One provider family: how to start its fake, its deployment, and its leaky fault."""

    name: str
    start: Callable[[], AbstractAsyncContextManager[Any]]
    deployment: Callable[[Any], Deployment]
    fault: Callable[[Position, str], Any]
    own_keys: tuple[str, ...]


def _openai_fault(position: Position, message: str) -> OpenAIFault:
    if position == "error_answer":
        return OpenAIFault.http_error(500, message)
    return OpenAIFault(
        "error_event", after_chunks=0 if position == "first_event" else 2, message=message
    )


def _anthropic_fault(position: Position, message: str) -> AnthropicFault:
    if position == "error_answer":
        return AnthropicFault.http_error(500, "api_error", message)
    return AnthropicFault(
        "error_event", after_chunks=0 if position == "first_event" else 4, message=message
    )


def _gemini_fault(position: Position, message: str) -> GeminiFault:
    if position == "error_answer":
        return GeminiFault.http_error(500, "INTERNAL", message)
    return GeminiFault(
        "error_event", after_chunks=0 if position == "first_event" else 1, message=message
    )


def _bedrock_fault(position: Position, message: str) -> BedrockFault:
    if position == "error_answer":
        return BedrockFault.http_error(500, "InternalServerException", message)
    return BedrockFault(
        "error_event",
        after_frames=0 if position == "first_event" else 2,
        error_type="ModelStreamErrorException",
        message=message,
    )


def _deployment(provider: str, model: str, base_url: str, **fields: Any) -> Deployment:
    return Deployment(
        model_name="chat",
        provider=provider,
        model=model,
        id=f"{provider}-chat",
        base_url=base_url,
        **fields,
    )


FAMILIES = [
    Family(
        "openai-compatible",
        lambda: FakeOpenAI(api_key=OPENAI_KEY, models=None),
        lambda fake: _deployment(
            "openai-compatible", "gpt-4o-mini", fake.url, api_key=Secret(OPENAI_KEY)
        ),
        _openai_fault,
        (OPENAI_KEY,),
    ),
    Family(
        "azure",
        lambda: FakeAzure(api_key=AZURE_KEY),
        lambda fake: _deployment(
            "azure", "gpt-4o-mini", fake.url, api_key=Secret(AZURE_KEY), api_version="2024-10-21"
        ),
        _openai_fault,
        (AZURE_KEY,),
    ),
    Family(
        "anthropic",
        lambda: FakeAnthropic(api_key=ANTHROPIC_KEY, models=None),
        lambda fake: _deployment(
            "anthropic", "claude-sonnet-4-5", fake.url, api_key=Secret(ANTHROPIC_KEY)
        ),
        _anthropic_fault,
        (ANTHROPIC_KEY,),
    ),
    Family(
        "gemini",
        lambda: FakeGemini(api_key=GEMINI_KEY, models=None),
        lambda fake: _deployment(
            "gemini", "gemini-2.0-flash", fake.url, api_key=Secret(GEMINI_KEY)
        ),
        _gemini_fault,
        (GEMINI_KEY,),
    ),
    Family(
        "bedrock",
        lambda: FakeBedrock(
            api_key=None, access_key=BEDROCK_ACCESS_KEY, secret_key=BEDROCK_SECRET_KEY
        ),
        lambda fake: _deployment(
            "bedrock",
            "anthropic.claude-3-5-sonnet-20240620-v1:0",
            fake.url,
            params={
                "aws_region_name": fake.region,
                "aws_access_key_id": BEDROCK_ACCESS_KEY,
                "aws_secret_access_key": Secret(BEDROCK_SECRET_KEY),
            },
        ),
        _bedrock_fault,
        (BEDROCK_SECRET_KEY, BEDROCK_ACCESS_KEY),
    ),
]


@asynccontextmanager
async def leaky_gateway(family: Family, position: Position) -> AsyncIterator[str]:
    """A gateway whose ``chat`` deployment always fails with a leaky error, and which also
    holds another deployment (group ``other``) whose key must stay hidden too."""
    async with family.start() as fake:
        fake.set_default(family.fault(position, leaky_message(*family.own_keys)))
        other = Deployment(
            model_name="other",
            provider="openai-compatible",
            model="gpt-4o-mini",
            id="other-deployment",
            base_url="http://127.0.0.1:9/v1",
            api_key=Secret(OTHER_KEY),
        )
        config = gateway_config(family.deployment(fake), other, retries=RetryConfig(num_retries=0))
        async with running_gateway(config) as running:
            yield running.url


async def _received(url: str, stream: bool) -> tuple[int, bytes]:
    """Status and every byte the client received: the header block and the whole body."""
    body = {"model": "chat", "messages": MESSAGES, "stream": stream}
    timeout = aiohttp.ClientTimeout(total=20)
    async with (
        aiohttp.ClientSession(timeout=timeout) as http,
        http.post(f"{url}/v1/chat/completions", json=body) as answer,
    ):
        payload = await answer.read()
        head = b"".join(name + b": " + value + b"\n" for name, value in answer.raw_headers)
        return answer.status, head + b"\n" + payload


def _assert_hidden(received: bytes, family: Family) -> None:
    text = received.decode("utf-8", errors="replace")
    leaked = [secret for secret in forbidden(*family.own_keys) if secret in text]
    assert not leaked, f"{family.name}: the client received {leaked!r} in:\n{text[:3000]}"


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.name)
async def test_no_secret_reaches_the_client(family: Family, position: Position) -> None:
    async with leaky_gateway(family, position) as url:
        status, received = await _received(url, stream=position != "error_answer")
    if position == "mid_stream":
        # The stream had started: a 200 whose last event reports the failure.
        assert status == 200, received[:2000]
        assert b'"error"' in received, "the broken stream did not end with an error event"
    else:
        assert status >= 400, received[:2000]
        openai_error(received.partition(b"\n\n")[2])
    _assert_hidden(received, family)


@pytest.mark.parametrize("family", FAMILIES, ids=lambda family: family.name)
async def test_the_sdk_sees_no_secret_in_a_broken_stream(family: Family) -> None:
    """What the official SDK raises or yields for a stream broken mid-way, as a user sees it."""
    async with (
        leaky_gateway(family, "mid_stream") as url,
        openai.AsyncOpenAI(
            base_url=f"{url}/v1", api_key="sk-anything", max_retries=0, timeout=20
        ) as client,
    ):
        seen: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            stream = await client.chat.completions.create(
                model="chat", messages=MESSAGES, stream=True
            )
            async for chunk in stream:
                seen.append(chunk.model_dump_json())
        seen.append(str(caught.value))
        seen.append(repr(getattr(caught.value, "body", None)))
    _assert_hidden("\n".join(seen).encode(), family)
