"""The gateway in front of real HTTP upstreams that speak OpenAI's wire format and misbehave.

Every test runs the real server on loopback, its OpenAI-compatible adapter and upstream client,
against `FakeOpenAI` servers, and drives it with the official SDK.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import openai
import pytest

from fakes.fake_openai import FakeOpenAI, Fault, RateLimits
from gateway_harness import RunningGateway, gateway_config, running_gateway
from turnout import Deployment, RetryConfig, RoutingConfig, Secret, Timeouts

MESSAGES: Any = [{"role": "user", "content": "Tell me something"}]


def upstream(
    fake: FakeOpenAI, deployment_id: str, *, group: str = "chat", priority: int = 0, **fields: Any
) -> Deployment:
    return Deployment(
        model_name=group,
        provider="openai-compatible",
        model="gpt-4o-mini",
        id=deployment_id,
        base_url=fake.url,
        api_key=Secret("sk-fake"),
        priority=priority,
        **fields,
    )


@asynccontextmanager
async def setup(
    count: int = 1, *, deployment: dict[str, Any] | None = None, **router: Any
) -> AsyncIterator[tuple[RunningGateway, list[FakeOpenAI], openai.AsyncOpenAI]]:
    """`count` fakes, one deployment each (priority order), a gateway, and an SDK client."""
    async with AsyncExitStack() as stack:
        fakes = [await stack.enter_async_context(FakeOpenAI()) for _ in range(count)]
        deployments = [
            upstream(fake, f"up{index}", priority=index, **(deployment or {}))
            for index, fake in enumerate(fakes)
        ]
        router.setdefault("routing", RoutingConfig(strategy="priority"))
        gw = await stack.enter_async_context(
            running_gateway(gateway_config(*deployments, **router))
        )
        client = await stack.enter_async_context(gw.client())
        yield gw, fakes, client


async def test_requests_pass_through_with_the_model_replaced() -> None:
    async with setup() as (_, [fake], client):
        completion = await client.chat.completions.create(
            model="chat",
            messages=MESSAGES,
            temperature=0.2,
            extra_body={"some_new_field": {"nested": [1, 2]}},
        )
    assert completion.choices[0].message.content
    sent = fake.requests[-1]
    assert sent.json is not None
    assert sent.json["model"] == "gpt-4o-mini"
    assert sent.json["temperature"] == 0.2
    assert sent.json["some_new_field"] == {"nested": [1, 2]}
    assert sent.headers["authorization"] == "Bearer sk-fake"


async def test_streams_are_relayed_with_usage_asked_of_the_upstream() -> None:
    async with setup() as (gw, [fake], client):
        stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
        assert fake.requests[-1].json is not None
        assert fake.requests[-1].json["stream_options"] == {"include_usage": True}
        # The caller did not ask for usage: no choices-less usage chunk reaches it.
        assert all(chunk.choices for chunk in chunks)
        assert chunks[-1].choices[0].finish_reason == "stop"
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks)
        assert text
        # ...but the gateway accounted the tokens.
        body, _ = gw.gateway.metrics.render()
        assert (
            b'turnout_tokens_total{deployment="up0",kind="completion",model_group="chat"}' in body
        )


async def test_tool_calls_stream_through_intact() -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    async with setup() as (_, _fakes, client):
        stream = await client.chat.completions.create(
            model="chat", messages=MESSAGES, tools=tools, stream=True
        )
        names = []
        finish = None
        async for chunk in stream:
            for call in chunk.choices[0].delta.tool_calls or []:
                if call.function and call.function.name:
                    names.append(call.function.name)
            finish = chunk.choices[0].finish_reason or finish
    assert names == ["get_weather"]
    assert finish == "tool_calls"


@pytest.mark.parametrize(
    ("fault", "error", "status"),
    [
        (Fault.unauthorized(), openai.InternalServerError, 502),
        (Fault.context_length_exceeded(), openai.BadRequestError, 400),
        (Fault.content_policy(), openai.BadRequestError, 400),
        (Fault.server_error(), openai.InternalServerError, 502),
    ],
)
async def test_upstream_errors_reach_the_sdk_as_its_classes(
    fault: Fault, error: type[openai.APIStatusError], status: int
) -> None:
    async with setup(retries=RetryConfig(num_retries=0)) as (_, [fake], client):
        fake.enqueue(fault)
        with pytest.raises(error) as caught:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert caught.value.status_code == status
    assert "sk-fake" not in str(caught.value)


async def test_upstream_429_keeps_its_retry_after() -> None:
    async with setup(retries=RetryConfig(num_retries=0)) as (_, [fake], client):
        fake.enqueue(Fault.rate_limited(retry_after=4))
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "4"


@pytest.mark.parametrize(
    "fault",
    [Fault.server_error(), Fault.unavailable(), Fault.rate_limited(), Fault("reset")],
)
async def test_a_failing_upstream_fails_over_invisibly(fault: Fault) -> None:
    async with setup(2) as (_, [first, second], client):
        first.enqueue(fault)
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES
        )
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-turnout-deployment"] == "up1"
    assert raw.headers["x-turnout-attempts"] == "2"
    assert len(first.requests) == 1
    assert len(second.requests) == 1


async def test_a_hanging_upstream_times_out_and_fails_over() -> None:
    async with setup(2, deployment={"timeouts": Timeouts(request=0.3)}) as (_, fakes, client):
        fakes[0].enqueue(Fault("hang"))
        raw = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES
        )
    assert raw.headers["x-turnout-deployment"] == "up1"


async def test_a_hanging_only_upstream_is_a_timeout_error() -> None:
    async with setup(
        deployment={"timeouts": Timeouts(request=0.3)}, retries=RetryConfig(num_retries=0)
    ) as (_, [fake], client):
        fake.enqueue(Fault("hang"))
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert caught.value.status_code == 504


async def test_failure_before_the_first_chunk_of_a_stream_is_invisible() -> None:
    async with setup(2) as (_, [first, _second], client):
        first.enqueue(Fault.server_error())
        stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].choices[0].finish_reason == "stop"


async def _stream_text(client: openai.AsyncOpenAI) -> str:
    stream = await client.chat.completions.create(model="chat", messages=MESSAGES, stream=True)
    text = ""
    async for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
    return text


@pytest.mark.parametrize(
    "fault",
    [
        Fault("cut", after_chunks=2),
        Fault("malformed", after_chunks=2),
        Fault("no_finish"),
        Fault("error_event", after_chunks=2),
    ],
)
async def test_a_stream_that_breaks_after_content_continues_on_another_deployment(
    fault: Fault,
) -> None:
    async with setup(2) as (_, [first, second], client):
        first.enqueue(fault)
        text = await _stream_text(client)
        assert text == "Fake answer to: Tell me something"  # whole, once, no seam visible
        assert len(second.requests) == 1
        continuation = second.requests[0].json
        assert continuation is not None
        assert continuation["messages"][-2]["role"] == "assistant"  # the partial answer


@pytest.mark.parametrize(
    "fault",
    [
        Fault("cut", after_chunks=2),
        Fault("malformed", after_chunks=2),
        Fault("no_finish"),
        Fault("error_event", after_chunks=2),
    ],
)
async def test_without_stream_failover_a_broken_stream_ends_in_an_error(fault: Fault) -> None:
    async with setup(2, stream_failover=False) as (_, [first, second], client):
        first.enqueue(fault)
        with pytest.raises(openai.APIError):
            await _stream_text(client)
        assert len(second.requests) == 0  # nothing was retried behind the client's back


async def test_a_stalled_stream_is_ended_by_the_idle_limit() -> None:
    async with setup(deployment={"timeouts": Timeouts(idle=0.3)}) as (_, [fake], client):
        fake.enqueue(Fault("stall", after_chunks=2))
        with pytest.raises(openai.APIError, match="stalled"):
            await _stream_text(client)


async def test_a_stream_without_done_but_with_a_finish_reason_completes() -> None:
    async with setup() as (_, [fake], client):
        fake.enqueue(Fault("no_done"))
        assert await _stream_text(client)


async def test_the_raw_stream_ends_in_an_error_event_and_never_in_done() -> None:
    async with setup(stream_failover=False) as (gw, [fake], _client):
        fake.enqueue(Fault("cut", after_chunks=2))
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{gw.url}/v1/chat/completions",
                json={"model": "chat", "messages": MESSAGES, "stream": True},
            ) as response,
        ):
            body = await response.read()
    events = [line for line in body.split(b"\n\n") if line]
    assert events[-1].startswith(b'data: {"error":')
    assert b"[DONE]" not in body
    assert b"stream_interrupted" in events[-1]


async def test_provider_rate_limit_headers_reach_the_router() -> None:
    async with AsyncExitStack() as stack:
        fake = await stack.enter_async_context(
            FakeOpenAI(rate_limits=RateLimits(limit_requests=100, remaining_requests=0))
        )
        other = await stack.enter_async_context(FakeOpenAI())
        config = gateway_config(
            upstream(fake, "exhausted"),
            upstream(other, "spare", priority=1),
            routing=RoutingConfig(strategy="priority"),
        )
        gw = await stack.enter_async_context(running_gateway(config))
        client = await stack.enter_async_context(gw.client())
        first = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES
        )
        second = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES
        )
    assert first.headers["x-turnout-deployment"] == "exhausted"
    # The provider said no requests remain: the router goes elsewhere until the quota resets.
    assert second.headers["x-turnout-deployment"] == "spare"
