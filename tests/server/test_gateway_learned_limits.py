"""Learned limits through the whole gateway, with the official SDK at its default retries.

The shape most users run: a LiteLLM config with one deployment per model plus ``fallbacks``,
``num_retries: 2``, ``timeout: 30``. The fakes answer over loopback; only the learned limits'
floors, caps and cold values are scaled down (to fractions of a second), so that what takes
seconds with the defaults takes a fraction here; the defaults themselves are proven on the
injected clock in tests/router/test_learned_limits.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import openai
import pytest

from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import RunningGateway, running_gateway
from litellm_shape import one_per_model
from turnout.config.load import parse_config

MESSAGES: Any = [{"role": "user", "content": "Tell me something"}]

#: The defaults' shape, scaled down: a floor of 0.3 s, cold values of about a second.
SCALED = {
    "min_samples": 3,
    "first_token": {"floor": 0.3, "cap": 5, "cold": 1.5},
    "idle": {"floor": 0.3, "cap": 5, "cold": 1.5},
    "request": {"floor": 0.3, "cap": 10, "cold": 1.5},
}


@dataclass
class Setup:
    primary: FakeOpenAI
    backup: FakeOpenAI
    client: openai.AsyncOpenAI
    gateway: RunningGateway


@asynccontextmanager
async def _gateway(
    learned: dict[str, Any] | None = SCALED, sdk_timeout: float = 30
) -> AsyncIterator[Setup]:
    async with AsyncExitStack() as stack:
        primary = await stack.enter_async_context(FakeOpenAI())
        backup = await stack.enter_async_context(FakeOpenAI())
        data = one_per_model(
            primary.url, backup.url, names=("primary", "backup"), num_retries=2, timeout=30
        )
        data["server"] = {"port": 0}
        if learned is not None:
            data["learned_timeouts"] = learned
        config = parse_config(data, environ={})
        assert config.format == "litellm"
        gateway = await stack.enter_async_context(running_gateway(config))
        # The official SDK as users run it: its default retries, a 30 s timeout.
        client = openai.AsyncOpenAI(
            base_url=f"{gateway.url}/v1", api_key="sk-anything", timeout=sdk_timeout
        )
        await stack.enter_async_context(client)
        yield Setup(primary, backup, client, gateway)


async def _warm(setup: Setup, *, stream: bool, count: int = 4) -> None:
    for _ in range(count):
        if stream:
            async for _chunk in await setup.client.chat.completions.create(
                model="primary", messages=MESSAGES, stream=True
            ):
                pass
        else:
            await setup.client.chat.completions.create(model="primary", messages=MESSAGES)
    assert len(setup.backup.requests) == 0


async def _read(stream: Any) -> str:
    text = ""
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    return text


async def test_a_silent_primary_is_left_at_its_learned_limit() -> None:
    async with _gateway() as setup:
        await _warm(setup, stream=False)
        setup.primary.enqueue(Fault("hang"))
        started = time.monotonic()
        raw = await setup.client.chat.completions.with_raw_response.create(
            model="primary", messages=MESSAGES
        )
        elapsed = time.monotonic() - started
        completion = raw.parse()
    assert completion.choices[0].message.content == "Fake answer to: Tell me something"
    assert raw.headers["x-turnout-model-group"] == "backup"
    assert raw.headers["x-turnout-attempts"] == "2"
    assert 0.25 <= elapsed < 2.0, elapsed
    assert len(setup.primary.requests) == 5  # four to learn from, one left: not retried
    assert len(setup.backup.requests) == 1


async def test_a_slow_first_token_after_warm_up_moves_to_the_fallback() -> None:
    async with _gateway() as setup:
        await _warm(setup, stream=True)
        setup.primary.enqueue(Fault("slow_first_token", seconds=20))
        started = time.monotonic()
        stream = await setup.client.chat.completions.create(
            model="primary", messages=MESSAGES, stream=True
        )
        text = await _read(stream)
        elapsed = time.monotonic() - started
    assert text == "Fake answer to: Tell me something"
    assert elapsed < 2.0, elapsed
    assert len(setup.primary.requests) == 5
    assert len(setup.backup.requests) == 1


async def test_a_stalled_stream_continues_on_the_fallback() -> None:
    async with _gateway() as setup:
        await _warm(setup, stream=True)
        setup.primary.enqueue(Fault("stall", after_chunks=3))
        started = time.monotonic()
        stream = await setup.client.chat.completions.create(
            model="primary", messages=MESSAGES, stream=True
        )
        text = await _read(stream)
        elapsed = time.monotonic() - started
    assert text  # whole: no error event ended it
    assert elapsed < 2.5, elapsed
    assert len(setup.primary.requests) == 5
    assert len(setup.backup.requests) == 1  # the continuation
    assert setup.backup.requests[0].json["messages"][-1]["role"] in ("assistant", "user")


async def test_a_slow_but_healthy_primary_is_not_cut() -> None:
    async with _gateway() as setup:
        setup.primary.set_default(Fault("delay", seconds=0.4))
        await _warm(setup, stream=False, count=3)
        # Slower than ever before, but within three times its usual longest answer.
        setup.primary.set_default(Fault("delay", seconds=0.9))
        raw = await setup.client.chat.completions.with_raw_response.create(
            model="primary", messages=MESSAGES
        )
    assert raw.headers["x-turnout-model-group"] == "primary"
    assert raw.headers["x-turnout-attempts"] == "1"
    assert len(setup.backup.requests) == 0


async def test_a_request_sets_its_own_first_token_limit_by_header() -> None:
    async with _gateway(learned=None) as setup:  # the defaults: a cold first token is 60 s
        setup.primary.enqueue(Fault("slow_first_token", seconds=20))
        started = time.monotonic()
        stream = await setup.client.chat.completions.create(
            model="primary",
            messages=MESSAGES,
            stream=True,
            extra_headers={"x-turnout-first-token-timeout-ms": "300"},
        )
        text = await _read(stream)
        elapsed = time.monotonic() - started
    assert text == "Fake answer to: Tell me something"
    assert elapsed < 2.0, elapsed
    assert len(setup.backup.requests) == 1


async def test_a_request_sets_litellms_per_call_timeout_in_its_body() -> None:
    async with _gateway(learned=None) as setup:
        setup.primary.enqueue(Fault("hang"))
        started = time.monotonic()
        raw = await setup.client.chat.completions.with_raw_response.create(
            model="primary", messages=MESSAGES, extra_body={"timeout": 0.3}
        )
        elapsed = time.monotonic() - started
    assert raw.headers["x-turnout-model-group"] == "backup"
    assert elapsed < 2.0, elapsed
    # LiteLLM's field is the gateway's, not the upstream's: it is not forwarded.
    assert "timeout" not in setup.backup.requests[0].json


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"extra_headers": {"x-turnout-idle-timeout-ms": "soon"}}, "x-turnout-idle-timeout-ms"),
        ({"extra_headers": {"x-turnout-attempt-timeout-ms": "-5"}}, "x-turnout-attempt-timeout-ms"),
        ({"extra_body": {"stream_timeout": "fast"}}, "stream_timeout"),
        ({"extra_body": {"timeout": 0}}, "timeout"),
    ],
)
async def test_bad_limits_are_a_400_naming_them(extra: dict[str, Any], param: str) -> None:
    async with _gateway(learned=None) as setup:
        with pytest.raises(openai.BadRequestError) as caught:
            await setup.client.chat.completions.create(model="primary", messages=MESSAGES, **extra)
    body: Any = caught.value.body
    assert body["param"] == param
    assert body["type"] == "invalid_request_error"
    assert len(setup.primary.requests) == 0


async def test_health_shows_each_deployments_learned_limits() -> None:
    async with _gateway() as setup:
        await _warm(setup, stream=True)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{setup.gateway.url}/health") as response,
        ):
            body = await response.json()
    by_group = {entry["model_group"]: entry["timeouts"] for entry in body["deployments"]}
    primary, backup = by_group["primary"], by_group["backup"]
    assert primary["first_token"]["source"] == "learned"
    assert primary["first_token"]["samples"] == 4
    assert primary["first_token"]["seconds"] == 0.3
    assert backup["first_token"] == {"seconds": 1.5, "source": "cold", "samples": 0}


# ---- at turnout's defaults: the time kept for the fallback inside the SDK's timeout ---------


async def test_at_the_defaults_a_silent_primary_leaves_the_fallback_time_to_answer() -> None:
    async with _gateway(learned=None, sdk_timeout=3) as setup:
        setup.primary.enqueue(Fault("hang"))
        started = time.monotonic()
        raw = await setup.client.chat.completions.with_raw_response.create(
            model="primary", messages=MESSAGES
        )
        elapsed = time.monotonic() - started
    assert raw.headers["x-turnout-model-group"] == "backup"
    # 40% of the 2.85 s the SDK waits (less the gateway's margin) is kept for the fallback.
    assert 1.6 <= elapsed < 2.85, elapsed
    assert len(setup.primary.requests) == 1  # not retried, by the gateway or the SDK
    assert len(setup.backup.requests) == 1


async def test_at_the_defaults_a_slow_first_token_leaves_the_fallback_time_to_start() -> None:
    async with _gateway(learned=None, sdk_timeout=3) as setup:
        setup.primary.enqueue(Fault("slow_first_token", seconds=20))
        started = time.monotonic()
        stream = await setup.client.chat.completions.create(
            model="primary", messages=MESSAGES, stream=True
        )
        text = await _read(stream)
        elapsed = time.monotonic() - started
    assert text == "Fake answer to: Tell me something"
    assert 1.6 <= elapsed < 2.85, elapsed
    assert len(setup.primary.requests) == 1
    assert len(setup.backup.requests) == 1


async def test_at_the_defaults_a_stall_is_continued_within_the_sdks_read_timeout() -> None:
    async with _gateway(learned=None, sdk_timeout=3) as setup:
        setup.primary.enqueue(Fault("stall", after_chunks=3))
        started = time.monotonic()
        stream = await setup.client.chat.completions.create(
            model="primary", messages=MESSAGES, stream=True
        )
        text = await _read(stream)
        elapsed = time.monotonic() - started
    assert text
    assert 1.6 <= elapsed < 2.85, elapsed
    assert len(setup.primary.requests) == 1
    assert len(setup.backup.requests) == 1
