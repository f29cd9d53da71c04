"""examples/resilience.yaml does what its table says, tried as a new user would: the gateway
loaded from the file, the official SDK at its default retries, one request per feature.

Each model of the file misbehaves in one way on simulated providers and has one deployment plus
a fallback; every request here must be answered, by the deployment the table says, in time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest

from gateway_harness import RunningGateway, running_gateway
from turnout.config.load import load_config

EXAMPLE = Path(__file__).parent.parent / "examples" / "resilience.yaml"
QUESTION: Any = [{"role": "user", "content": "Tell me about turnouts"}]


@pytest.fixture
async def gateway() -> AsyncIterator[RunningGateway]:
    async with running_gateway(load_config(EXAMPLE)) as running:
        yield running


@pytest.fixture
async def client(gateway: RunningGateway) -> AsyncIterator[openai.AsyncOpenAI]:
    # The SDK's own defaults, but for a timeout that ends a hung test sooner than 600 s.
    async with gateway.client(max_retries=2, timeout=30.0) as sdk:
        yield sdk


async def ask(client: openai.AsyncOpenAI, model: str, **options: Any) -> tuple[str, str, float]:
    """Who answered (the served model), the text, and how long it took."""
    started = time.monotonic()
    answer = await client.chat.completions.create(
        model=model, messages=options.pop("messages", QUESTION), **options
    )
    content = answer.choices[0].message.content
    assert content
    return answer.model, content, time.monotonic() - started


async def stream(client: openai.AsyncOpenAI, model: str) -> tuple[str, set[str], float]:
    started = time.monotonic()
    chunks = await client.chat.completions.create(model=model, messages=QUESTION, stream=True)
    text, ids, finish = "", set(), None
    async for chunk in chunks:
        ids.add(chunk.id)
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    assert finish == "stop"
    return text, ids, time.monotonic() - started


@pytest.mark.parametrize(
    ("model", "broken_from", "within"),
    [("cuts-mid-stream", "sim-cuts", 3.0), ("stalls-mid-stream", "sim-stalls", 6.0)],
)
async def test_a_broken_stream_is_continued_as_one(
    client: openai.AsyncOpenAI, model: str, broken_from: str, within: float
) -> None:
    text, ids, took = await stream(client, model)
    # What the broken deployment sent, then the rest from `steady`, in one stream.
    assert text.startswith(f"Simulated answer from {broken_from}")
    assert "Simulated answer from sim-steady" in text
    assert len(ids) == 1
    assert took < within


async def test_a_silent_deployment_is_left_at_its_limit_and_not_retried(
    client: openai.AsyncOpenAI,
) -> None:
    served, _, took = await ask(client, "never-answers")
    assert served == "sim-steady"
    assert 4.5 < took < 8.0  # the cold attempt limit of 5 s, once, then the fallback


async def test_a_slow_first_token_is_left_at_its_limit(client: openai.AsyncOpenAI) -> None:
    text, _, took = await stream(client, "slow-first-token")
    assert text.startswith("Simulated answer from sim-steady")
    assert 2.5 < took < 6.0  # the 20 s first token is left at the cold 3 s limit


async def test_a_flaky_deployment_never_reaches_the_caller(client: openai.AsyncOpenAI) -> None:
    served = {(await ask(client, "flaky"))[0] for _ in range(12)}
    assert served <= {"sim-flaky", "sim-steady"}
    assert "sim-steady" in served  # half of the flaky one's calls fail


async def test_a_rate_limit_goes_to_the_fallback_at_once(client: openai.AsyncOpenAI) -> None:
    # The simulated limit counts per minute of the wall clock: start clear of a minute's end,
    # so that the five requests fall in one minute.
    into_minute = time.time() % 60
    if into_minute > 55:
        await asyncio.sleep(60.5 - into_minute)
    answers = [await ask(client, "rate-limited") for _ in range(5)]
    assert [served for served, _, _ in answers] == ["sim-limited"] * 3 + ["sim-steady"] * 2
    assert all(took < 2.0 for _, _, took in answers)


async def test_hedging_cuts_the_slow_tail(client: openai.AsyncOpenAI) -> None:
    for _ in range(12):  # samples for the group's p75
        await ask(client, "slow-tail")
    # A call in the 3 s tail is overtaken by its hedge after the p75 (about 0.1 s).
    took = [(await ask(client, "slow-tail"))[2] for _ in range(20)]
    assert max(took) < 2.0, took


async def test_a_long_prompt_goes_to_the_larger_window(client: openai.AsyncOpenAI) -> None:
    assert (await ask(client, "small-window"))[0] == "sim-small"
    long: Any = [{"role": "user", "content": "turnout " * 600}]
    assert (await ask(client, "small-window", messages=long))[0] == "sim-steady"


async def test_a_refusal_goes_to_the_content_policy_fallback(client: openai.AsyncOpenAI) -> None:
    assert (await ask(client, "moderated"))[0] == "sim-moderated"
    refused: Any = [{"role": "user", "content": "Something forbidden"}]
    assert (await ask(client, "moderated", messages=refused))[0] == "sim-steady"


async def test_a_parameter_the_model_lacks_goes_where_it_is_honoured(
    client: openai.AsyncOpenAI,
) -> None:
    assert (await ask(client, "no-choices"))[0] == "sim-one-choice"
    answer = await client.chat.completions.create(model="no-choices", messages=QUESTION, n=2)
    assert (answer.model, len(answer.choices)) == ("sim-steady", 2)


async def test_a_refused_gateway_key_fails_over_and_says_so(
    client: openai.AsyncOpenAI, gateway: RunningGateway
) -> None:
    assert (await ask(client, "wrong-key"))[0] == "sim-steady"
    report = await gateway.gateway.router.health()
    [entry] = [h for h in report if h.model_group == "wrong-key"]
    assert entry.cooldown_reason == "auth"
