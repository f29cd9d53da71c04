"""The gateway keeps answering: faults injected on command, asserted end to end.

Each scenario runs the real gateway on loopback with the official SDK against `FakeOpenAI`
servers that misbehave on command, and checks three things: what the client received (a
complete, correct answer or a clean, bounded error), how many attempts each fake saw and when,
and that the gateway is healthy afterwards. Time is real here, so limits are short.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
import openai
import pytest

from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import RunningGateway, gateway_config, running_gateway
from turnout import (
    BreakerConfig,
    Deployment,
    HealthConfig,
    RetryConfig,
    RoutingConfig,
    Secret,
    Timeouts,
)
from turnout.config.router import FallbackConfig, HedgeConfig

QUESTION: Any = [{"role": "user", "content": "Tell me about turnouts"}]
ANSWER = "Fake answer to: Tell me about turnouts"


@dataclass
class Rig:
    gateway: RunningGateway
    fakes: list[FakeOpenAI]
    client: openai.AsyncOpenAI

    async def healthy(self) -> None:
        """The gateway still answers, and nothing is left in flight."""
        answer = await self.client.chat.completions.create(model="chat", messages=QUESTION)
        assert answer.choices[0].message.content
        await asyncio.sleep(0.05)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.gateway.url}/health") as response,
        ):
            report = msgspec.json.decode(await response.read())
        assert all(d["in_flight"] == 0 for d in report["deployments"]), report


@asynccontextmanager
async def rig(
    count: int = 2,
    *,
    timeouts: Timeouts | None = None,
    groups: tuple[str, ...] | None = None,
    **router: Any,
) -> AsyncIterator[Rig]:
    """`count` fakes, one deployment each in priority order (group "chat" unless `groups`)."""
    async with AsyncExitStack() as stack:
        fakes = [
            await stack.enter_async_context(FakeOpenAI(chunk_delay=0.005)) for _ in range(count)
        ]
        names = groups or ("chat",) * count
        deployments = [
            Deployment(
                model_name=names[index],
                provider="openai-compatible",
                model="gpt-4o-mini",
                id=f"up{index}",
                base_url=fake.url,
                api_key=Secret("sk-fake"),
                priority=index,
                timeouts=timeouts or Timeouts(),
            )
            for index, fake in enumerate(fakes)
        ]
        router.setdefault("routing", RoutingConfig(strategy="priority"))
        router.setdefault("retries", RetryConfig(base_delay=0.01, max_delay=0.05))
        gateway = await stack.enter_async_context(
            running_gateway(gateway_config(*deployments, **router))
        )
        client = await stack.enter_async_context(gateway.client())
        yield Rig(gateway, fakes, client)


def chats(fake: FakeOpenAI) -> list[Any]:
    return [r for r in fake.requests if r.path == "/v1/chat/completions"]


async def stream_text(client: openai.AsyncOpenAI, **options: Any) -> tuple[str, set[str], Any]:
    stream = await client.chat.completions.create(
        model="chat", messages=QUESTION, stream=True, **options
    )
    text, ids, usage = "", set(), None
    async for chunk in stream:
        ids.add(chunk.id)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        if chunk.usage is not None:
            usage = chunk.usage
    return text, ids, usage


# ---- failures before anything was sent -----------------------------------------------------


async def test_429_with_retry_after_moves_on_and_is_honoured() -> None:
    async with rig() as r:
        r.fakes[0].enqueue(Fault.rate_limited(retry_after=30))
        answer = await r.client.chat.completions.with_raw_response.create(
            model="chat", messages=QUESTION
        )
        assert answer.parse().choices[0].message.content == ANSWER
        assert answer.headers["x-turnout-deployment"] == "up1"
        # The deployment that said 429 is left alone for its Retry-After.
        for _ in range(3):
            await r.client.chat.completions.create(model="chat", messages=QUESTION)
        assert len(chats(r.fakes[0])) == 1
        await r.healthy()


async def test_429_without_retry_after_on_the_only_deployment_is_a_clean_429() -> None:
    async with rig(1, health=HealthConfig(cooldown_time=30)) as r:
        r.fakes[0].enqueue(Fault.rate_limited())
        started = time.monotonic()
        with pytest.raises(openai.RateLimitError) as caught:
            await r.client.chat.completions.create(model="chat", messages=QUESTION)
        assert time.monotonic() - started < 2
        assert caught.value.status_code == 429
        assert len(chats(r.fakes[0])) == 1  # never hammered
        with pytest.raises(openai.RateLimitError, match="cooling down"):
            await r.client.chat.completions.create(model="chat", messages=QUESTION)
        assert len(chats(r.fakes[0])) == 1


async def test_500_once_then_healthy_is_retried_invisibly() -> None:
    async with rig(1) as r:
        r.fakes[0].enqueue(Fault.server_error())
        answer = await r.client.chat.completions.with_raw_response.create(
            model="chat", messages=QUESTION
        )
        assert answer.parse().choices[0].message.content == ANSWER
        assert answer.headers["x-turnout-attempts"] == "2"
        first, second = chats(r.fakes[0])
        assert second.received_at > first.received_at
        await r.healthy()


async def test_persistent_503_is_routed_around_then_reported_when_alone() -> None:
    async with rig(health=HealthConfig(min_requests=2, allowed_fails=1)) as r:
        r.fakes[0].set_default(Fault.unavailable())
        for _ in range(6):
            answer = await r.client.chat.completions.create(model="chat", messages=QUESTION)
            assert answer.choices[0].message.content == ANSWER
        # Cooled down after a couple of failures: no longer hit on every request.
        assert len(chats(r.fakes[0])) <= 3
        r.fakes[1].set_default(Fault.unavailable())
        with pytest.raises(openai.InternalServerError) as caught:
            await r.client.chat.completions.create(model="chat", messages=QUESTION)
        assert "attempt" in caught.value.message
        r.fakes[0].set_default(None)
        r.fakes[1].set_default(None)


async def test_connection_reset_before_headers_fails_over() -> None:
    async with rig() as r:
        r.fakes[0].enqueue(Fault("reset"))
        answer = await r.client.chat.completions.create(model="chat", messages=QUESTION)
        assert answer.choices[0].message.content == ANSWER
        assert len(chats(r.fakes[1])) == 1
        await r.healthy()


async def test_a_provider_that_never_answers_is_cut_off_and_failed_over() -> None:
    async with rig(timeouts=Timeouts(request=0.3)) as r:
        r.fakes[0].enqueue(Fault("hang"))
        started = time.monotonic()
        answer = await r.client.chat.completions.create(model="chat", messages=QUESTION)
        elapsed = time.monotonic() - started
        assert answer.choices[0].message.content == ANSWER
        assert 0.25 < elapsed < 2.0
        await r.healthy()


async def test_slow_first_token_fails_over_before_anything_is_sent() -> None:
    async with rig(timeouts=Timeouts(first_token=0.3)) as r:
        r.fakes[0].enqueue(Fault("slow_first_token", seconds=3))
        text, ids, _ = await stream_text(r.client)
        assert text == ANSWER
        assert len(ids) == 1
        assert len(chats(r.fakes[1])) == 1
        await r.healthy()


async def test_context_window_exceeded_goes_to_the_context_window_fallback() -> None:
    async with rig(
        groups=("chat", "long"),
        fallbacks=FallbackConfig(context_window={"chat": ["long"]}),
    ) as r:
        r.fakes[0].enqueue(Fault.context_length_exceeded())
        answer = await r.client.chat.completions.with_raw_response.create(
            model="chat", messages=QUESTION
        )
        assert answer.headers["x-turnout-deployment"] == "up1"
        assert len(chats(r.fakes[0])) == 1  # never retried on the same model
        await r.healthy()


async def test_content_policy_rejection_is_a_clean_400_and_not_retried() -> None:
    async with rig() as r:
        r.fakes[0].enqueue(Fault.content_policy())
        with pytest.raises(openai.BadRequestError) as caught:
            await r.client.chat.completions.create(model="chat", messages=QUESTION)
        assert caught.value.code == "content_policy_violation"
        assert len(chats(r.fakes[0])) == 1
        assert len(chats(r.fakes[1])) == 0
        await r.healthy()


# ---- failures after content was sent --------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault("cut", after_chunks=3),
        Fault("stall", after_chunks=3),
        Fault("malformed", after_chunks=3),
        Fault("error_event", after_chunks=3),
        Fault("no_finish"),
    ],
    ids=lambda fault: fault.kind,
)
async def test_a_stream_broken_halfway_continues_as_one_stream(fault: Fault) -> None:
    async with rig(timeouts=Timeouts(idle=0.3)) as r:
        r.fakes[0].enqueue(fault)
        text, ids, usage = await stream_text(r.client, stream_options={"include_usage": True})
        assert text == ANSWER  # once, whole, no seam
        assert len(ids) == 1  # one stream id
        assert usage is not None
        assert usage.completion_tokens >= len(ANSWER.split())
        [continuation] = chats(r.fakes[1])
        assert continuation.json is not None
        assert continuation.json["messages"][-2]["role"] == "assistant"
        await r.healthy()


async def test_a_stream_without_done_but_with_a_finish_reason_is_complete() -> None:
    async with rig() as r:
        r.fakes[0].enqueue(Fault("no_done"))
        text, _, _ = await stream_text(r.client)
        assert text == ANSWER
        assert len(chats(r.fakes[1])) == 0


async def test_when_nothing_can_continue_the_client_gets_the_original_failure() -> None:
    async with rig(timeouts=Timeouts(idle=0.3)) as r:
        r.fakes[0].enqueue(Fault("cut", after_chunks=3))
        r.fakes[1].enqueue(Fault.server_error())
        with pytest.raises(openai.APIError) as caught:
            await stream_text(r.client)
        message = str(caught.value)
        assert "broke" in message or "stream" in message
        assert "continuing on another deployment failed too" in message
        await r.healthy()


async def test_a_tool_call_cut_halfway_fails_cleanly() -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}},
                    "required": ["query"],
                },
            },
        }
    ]
    async with rig() as r:
        r.fakes[0].enqueue(Fault("cut", after_chunks=2))
        with pytest.raises(openai.APIError):
            stream = await r.client.chat.completions.create(
                model="chat", messages=QUESTION, tools=tools, stream=True
            )
            async for _ in stream:
                pass
        assert len(chats(r.fakes[1])) == 0  # a half-sent call is never restarted blindly
        await r.healthy()


async def test_usage_and_model_after_a_failover_are_accounted() -> None:
    async with rig() as r:
        r.fakes[0].enqueue(Fault("cut", after_chunks=4))
        text, _, usage = await stream_text(r.client, stream_options={"include_usage": True})
        assert text == ANSWER
        body, _ = r.gateway.gateway.metrics.render()
        metrics = body.decode()
    assert 'outcome="stream_interrupted"' in metrics
    assert (
        'turnout_stream_failovers_total{error="stream_interrupted",method="instruction"' in metrics
    )
    assert 'turnout_tokens_total{deployment="up1",kind="completion",model_group="chat"}' in metrics
    assert usage.prompt_tokens > 0


# ---- recovery -----------------------------------------------------------------------------


async def test_a_flapping_provider_is_routed_around_probed_and_brought_back() -> None:
    breaker = BreakerConfig(
        failure_threshold=2, open_timeout=0.4, half_open_probes=1, success_threshold=1
    )
    async with rig(breaker=breaker, health=HealthConfig(disable_cooldowns=True)) as r:
        r.fakes[0].set_default(Fault.unavailable())
        for _ in range(6):
            answer = await r.client.chat.completions.create(model="chat", messages=QUESTION)
            assert answer.choices[0].message.content == ANSWER
        down = len(chats(r.fakes[0]))
        assert down == 2  # the breaker opened after two failures: routed around since
        r.fakes[0].set_default(None)  # it recovers
        await asyncio.sleep(0.45)
        served = [
            (
                await r.client.chat.completions.with_raw_response.create(
                    model="chat", messages=QUESTION
                )
            ).headers["x-turnout-deployment"]
            for _ in range(4)
        ]
        assert served[0] == "up0"  # the probe went to it, succeeded, closed the circuit
        assert set(served) == {"up0"}
        await r.healthy()


async def test_hedging_rescues_a_slow_upstream() -> None:
    async with rig(hedging={"chat": HedgeConfig(delay=0.2, budget=1.0)}) as r:
        r.fakes[0].enqueue(Fault("delay", seconds=3))
        started = time.monotonic()
        answer = await r.client.chat.completions.with_raw_response.create(
            model="chat", messages=QUESTION
        )
        assert time.monotonic() - started < 1.5
        assert answer.headers["x-turnout-deployment"] == "up1"
        await r.healthy()


async def test_a_deadline_header_ends_the_request_on_time() -> None:
    async with rig(1) as r:
        r.fakes[0].enqueue(Fault("delay", seconds=5))
        started = time.monotonic()
        with pytest.raises(openai.InternalServerError) as caught:
            await r.client.chat.completions.create(
                model="chat", messages=QUESTION, extra_headers={"x-turnout-timeout-ms": "400"}
            )
        elapsed = time.monotonic() - started
        assert caught.value.status_code == 504
        assert 0.35 < elapsed < 1.5
        await r.healthy()
