"""The gateway's events, end to end: the caller it authenticated reaches every request's events
as its principal, each routed HTTP request is reported once, and no key is in any event."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any

import openai
import pytest

from fakes.fake_openai import FakeOpenAI
from gateway_harness import gateway_config, running_gateway, simulated
from harness import Recorder
from turnout import Deployment, Principal, Secret
from turnout.observe.events import (
    AttemptFinished,
    AttemptStarted,
    HttpRequestFinished,
    RequestFinished,
    RequestStarted,
)

MASTER_KEY = "sk-gw-master-R4nD0mK3y9x"
UPSTREAM_KEY = "sk-upstream-Zq81LmT0vW"
WRONG_KEY = "sk-wrong-Hh3Jk5Ll7"
MESSAGES: Any = [{"role": "user", "content": "Hello there"}]


async def until(condition: Callable[[], bool]) -> None:
    """Wait for the server's side to catch up (a stream's end is reported after its last byte)."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the events never arrived")


def upstream(fake: FakeOpenAI) -> Deployment:
    return Deployment(
        model_name="chat",
        provider="openai-compatible",
        model="gpt-4o-mini",
        id="up",
        base_url=fake.url,
        api_key=Secret(UPSTREAM_KEY),
    )


def assert_no_key_in(recorder: Recorder, *keys: str) -> None:
    for event in recorder.events:
        text = repr(event)
        for key in keys:
            assert key not in text, event


async def test_the_master_key_caller_is_the_principal_of_every_request_and_attempt() -> None:
    async with FakeOpenAI(UPSTREAM_KEY) as fake:
        config = gateway_config(
            upstream(fake),
            simulated("e", group="embed", embedding_dimensions=4),
            master_key=MASTER_KEY,
        )
        async with running_gateway(config) as gw:
            recorder = Recorder()
            gw.gateway.bus.subscribe(recorder)
            async with gw.client(MASTER_KEY) as client:
                await client.chat.completions.create(model="chat", messages=MESSAGES)
                stream = await client.chat.completions.create(
                    model="chat", messages=MESSAGES, stream=True
                )
                async for _ in stream:
                    pass
                await client.embeddings.create(model="embed", input=["one"])
            async with gw.client(WRONG_KEY) as intruder:
                with pytest.raises(openai.AuthenticationError):
                    await intruder.chat.completions.create(model="chat", messages=MESSAGES)
            await until(lambda: len(recorder.of(HttpRequestFinished)) == 4)
            await until(lambda: len(recorder.of(RequestFinished)) == 3)
    master = Principal("master")
    started = recorder.of(RequestStarted)
    assert [(e.model, e.stream, e.principal) for e in started] == [
        ("chat", False, master),
        ("chat", True, master),
        ("embed", False, master),
    ]
    finished = recorder.of(RequestFinished)
    assert Counter(e.request_id for e in finished) == Counter(e.request_id for e in started)
    assert all(e.principal == master for e in finished)
    attempts = recorder.of(AttemptFinished)
    assert len(attempts) == 3
    assert all(e.principal == master and e.error is None for e in attempts)
    # The refused request never reached the router, but was answered and counted.
    answered = recorder.of(HttpRequestFinished)
    assert sorted((e.route, e.status) for e in answered) == [
        ("chat_completions", 200),
        ("chat_completions", 200),
        ("chat_completions", 401),
        ("embeddings", 200),
    ]
    assert [e.stream for e in answered if e.status == 200 and e.route == "chat_completions"] == [
        False,
        True,
    ]
    assert_no_key_in(recorder, MASTER_KEY, UPSTREAM_KEY, WRONG_KEY)


async def test_an_open_gateway_attributes_requests_to_the_anonymous_caller() -> None:
    async with running_gateway(gateway_config(simulated("a"))) as gw:
        recorder = Recorder()
        gw.gateway.bus.subscribe(recorder)
        async with gw.client(WRONG_KEY) as client:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
        await until(lambda: len(recorder.of(HttpRequestFinished)) == 1)
    [started] = recorder.of(RequestStarted)
    [attempt] = recorder.of(AttemptStarted)
    [finished] = recorder.of(RequestFinished)
    assert started.principal == finished.principal == Principal("anonymous")
    assert attempt.request_id == started.request_id == finished.request_id
    assert_no_key_in(recorder, WRONG_KEY)


async def test_metrics_are_built_from_the_events_on_the_gateways_bus() -> None:
    async with running_gateway(gateway_config(simulated("a"))) as gw:
        assert gw.gateway.metrics in gw.gateway.bus.observers
        async with gw.client() as client:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
        body, _ = gw.gateway.metrics.render()
    exposition = body.decode()
    assert (
        'turnout_requests_total{model_group="chat",route="chat_completions",status="200"} 1.0'
        in exposition
    )
    assert (
        'turnout_attempts_total{deployment="a",model_group="chat",outcome="success"} 1.0'
        in exposition
    )
