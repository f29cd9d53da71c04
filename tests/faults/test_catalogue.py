"""A catalogue of provider faults, run against turnout as most users run it.

Every scenario gets a fresh gateway fed a LiteLLM ``config.yaml`` at turnout's defaults: one
deployment per model, ``fallbacks``, ``context_window_fallbacks``, ``num_retries: 2``,
``timeout: 30`` (see `fault_rig`, shape ``litellm``), and the official SDK at its default retries
with a 30 s timeout. Each is labelled with the outcome it must have:

- ``rescued``: the client gets the whole, correct answer, within a bound well under its deadline;
- ``clean error``: the right status, type and code, no advice to retry, in bounded time, with no
  retry storm (the calls each fake saw are counted).

``pytest -s`` prints the table of outcomes at the end of the module.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from fault_rig import (
    ANSWER,
    CLAUDE,
    GPT,
    LEAVE_WITHIN,
    Failed,
    Rig,
    chats,
    rig,
    sdk_client,
    within,
)

from fakes import fake_anthropic
from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import running_gateway
from turnout.config.load import load_config

Outcome = Literal["rescued", "clean error"]
#: A rescued whole answer that needs no waiting comes at once.
PROMPTLY = 1.5


@dataclass(frozen=True)
class Scenario:
    name: str
    outcome: Outcome
    run: Callable[[Path], Awaitable[None]]


CATALOGUE: list[Scenario] = []
RESULTS: list[tuple[str, Outcome, str, float]] = []


def scenario(
    name: str, outcome: Outcome
) -> Callable[[Callable[[Path], Awaitable[None]]], Callable[[Path], Awaitable[None]]]:
    def register(run: Callable[[Path], Awaitable[None]]) -> Callable[[Path], Awaitable[None]]:
        CATALOGUE.append(Scenario(name, outcome, run))
        return run

    return register


@asynccontextmanager
async def defaults(tmp_path: Path, **options: Any) -> AsyncIterator[Rig]:
    async with rig("litellm", tmp_path, **options) as r:
        yield r


async def rescued_promptly(r: Rig, *, stream: bool = False) -> None:
    if stream:
        streamed = await r.stream()
        assert (streamed.text, streamed.finish, len(streamed.ids)) == (ANSWER, "stop", 1)
        assert streamed.elapsed < PROMPTLY
    else:
        answer = await r.ask()
        assert answer.text == ANSWER
        assert answer.elapsed < PROMPTLY


def clean(failed: Failed, status: int, code: str | None = None) -> None:
    assert failed.status == status, failed.error
    if code is not None:
        assert failed.code == code
    assert failed.should_retry == "false"
    assert failed.elapsed < 3.0


# ---- before the headers ----------------------------------------------------------------------


@scenario("429 with Retry-After", "rescued")
async def rate_limited_with_retry_after(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        r.primary.enqueue(Fault.rate_limited(retry_after=2))
        await rescued_promptly(r)
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)
        await rescued_promptly(r)
        assert len(chats(r.primary)) == 1  # honoured: left alone for its 2 s


@scenario("429 without Retry-After", "rescued")
async def rate_limited(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        r.primary.enqueue(Fault.rate_limited())
        await rescued_promptly(r)
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)


@scenario("500 once", "rescued")
async def server_error_once(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        r.primary.enqueue(Fault.server_error())
        await rescued_promptly(r)
        assert len(chats(r.primary)) + len(chats(r.spare)) == 2


@scenario("persistent 503", "rescued")
async def persistent_unavailable(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        r.primary.set_default(Fault.unavailable())
        for _ in range(10):
            await rescued_promptly(r)
        assert len(chats(r.primary)) <= 5  # taken out, not hit by every request
        assert len(chats(r.spare)) == 10


@scenario("529 overloaded", "rescued")
async def overloaded(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        r.primary.enqueue(Fault.overloaded())
        await rescued_promptly(r)
        assert len(chats(r.primary)) + len(chats(r.spare)) == 2


@scenario("connection reset before headers", "rescued")
async def reset(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        r.primary.enqueue(Fault("reset"))
        await rescued_promptly(r)
        assert len(chats(r.primary)) + len(chats(r.spare)) == 2


@scenario("silent upstream (accepts, never answers)", "rescued")
async def silent(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        await r.warm_up()
        r.primary.set_default(Fault("hang"))
        answer = await within(LEAVE_WITHIN, r.ask(), "a silent upstream")
        assert (answer.text, answer.deployment) == (ANSWER, "spare")
        assert len(chats(r.primary)) == 1  # timed out: not retried on it
        r.primary.set_default(None)


@scenario("slow first token (20 s)", "rescued")
async def slow_first_token(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        await r.warm_up(stream=True)
        r.primary.enqueue(Fault("slow_first_token", seconds=20))
        streamed = await within(LEAVE_WITHIN, r.stream(), "a 20 s first token")
        assert (streamed.text, streamed.deployment) == (ANSWER, "spare")
        assert len(chats(r.primary)) == 1


@scenario("context window exceeded", "rescued")
async def context_window(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        r.primary.enqueue(Fault.context_length_exceeded())
        answer = await r.ask()
        assert (answer.text, answer.deployment) == (ANSWER, "long")
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 0)


@scenario("content policy", "clean error")
async def content_policy(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        r.primary.enqueue(Fault.content_policy())
        failed = await r.fails()
        clean(failed, 400, "content_policy_violation")
        assert (len(chats(r.primary)), len(chats(r.spare)), len(chats(r.long))) == (1, 0, 0)


@scenario("gateway's provider key refused", "rescued")
async def key_refused(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        r.primary.api_key = "sk-rotated"
        await rescued_promptly(r)
        await rescued_promptly(r)
        assert len(chats(r.primary)) == 1  # cooled down for it: not asked again


@scenario("gateway's provider key refused, no fallback", "clean error")
async def key_refused_alone(tmp_path: Path) -> None:
    async with defaults(tmp_path, alone=True) as r:
        r.primary.api_key = "sk-rotated"
        clean(await r.fails(), 502, "upstream_credentials_refused")
        assert len(chats(r.primary)) == 1


@scenario("everything down", "clean error")
async def everything_down(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        r.primary.set_default(Fault.unavailable())
        r.spare.set_default(Fault.unavailable())
        failed = await within(LEAVE_WITHIN, r.fails(), "everything down")
        assert failed.status is not None and failed.status >= 500
        assert failed.should_retry == "false"
        # Each tried as its retries allow, once over: the SDK does not repeat it all.
        assert len(chats(r.primary)) <= 3
        assert len(chats(r.spare)) <= 3


# ---- after the headers -----------------------------------------------------------------------


@scenario("stream cut mid-answer", "rescued")
async def cut(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        r.primary.enqueue(Fault("cut", after_chunks=4))
        await rescued_promptly(r, stream=True)
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)


@scenario("stream stalled mid-answer", "rescued")
async def stall(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        await r.warm_up(stream=True)
        r.primary.enqueue(Fault("stall", after_chunks=4))
        streamed = await within(LEAVE_WITHIN, r.stream(), "a stalled stream")
        assert (streamed.text, len(streamed.ids)) == (ANSWER, 1)
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)


@scenario("malformed SSE event mid-answer", "rescued")
async def malformed(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        r.primary.enqueue(Fault("malformed", after_chunks=4))
        await rescued_promptly(r, stream=True)
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)


@scenario("assistant prefill refused by the fallback", "rescued")
async def prefill_refused(tmp_path: Path) -> None:
    async with defaults(tmp_path, claude_spare=True) as r:
        r.primary.enqueue(Fault("cut", after_chunks=4))
        r.claude.enqueue(
            fake_anthropic.Fault.http_error(
                400, "invalid_request_error", "This model does not support assistant prefill."
            )
        )
        await rescued_promptly(r, stream=True)
        refused, accepted = chats(r.claude)
        assert refused.json["messages"][-1]["role"] == "assistant"
        assert accepted.json["messages"][-1]["role"] == "user"  # re-asked by instruction


@scenario("flapping primary", "rescued")
async def flapping(tmp_path: Path) -> None:
    async with defaults(tmp_path) as r:
        for _ in range(2):
            r.primary.set_default(Fault.unavailable())
            down_until = time.monotonic() + 1.0
            while time.monotonic() < down_until:
                await rescued_promptly(r)
                await asyncio.sleep(0.1)
            r.primary.set_default(None)
            recovered = time.monotonic()
            while (await r.ask()).deployment != "chat":
                # Back in rotation within seconds of recovering.
                assert time.monotonic() - recovered < 12.0, "the primary stayed out"
                await asyncio.sleep(0.1)
            assert [(await r.ask()).deployment for _ in range(3)] == ["chat"] * 3


# ---- a parameter one deployment cannot honour ------------------------------------------------


@asynccontextmanager
async def claude_first(tmp_path: Path, *, one_group: bool) -> AsyncIterator[Rig]:
    """Claude as the primary and GPT as its stand-in: in one mixed group (`one_group`), or as
    the fallback model of a model of one deployment."""
    async with AsyncExitStack() as stack:
        claude = await stack.enter_async_context(FakeAnthropic(chunk_delay=0.005))
        gpt = await stack.enter_async_context(FakeOpenAI(chunk_delay=0.005))
        spare_group = "chat" if one_group else "spare"
        data: dict[str, Any] = {
            "model_list": [
                {
                    "model_name": "chat",
                    "litellm_params": {
                        "model": f"anthropic/{CLAUDE}",
                        "api_base": claude.url,
                        "api_key": "sk-ant-fake",
                    },
                    "model_info": {"id": "chat"},
                },
                {
                    "model_name": spare_group,
                    "litellm_params": {
                        "model": f"openai/{GPT}",
                        "api_base": gpt.url,
                        "api_key": "sk-fake",
                    },
                    "model_info": {"id": "spare"},
                },
            ],
            "router_settings": {"num_retries": 2, "timeout": 30},
        }
        if not one_group:
            data["router_settings"]["fallbacks"] = [{"chat": ["spare"]}]
        path = tmp_path / "config.yaml"
        path.write_text(json.dumps(data))
        gateway = await stack.enter_async_context(running_gateway(load_config(path)))
        client = sdk_client(gateway.url)
        stack.push_async_callback(client.close)
        fakes: dict[str, FakeOpenAI | FakeAnthropic] = {"chat": claude, "spare": gpt}
        # Claude is `claude`; the OpenAI slots all hold the GPT deployment's fake.
        yield Rig("litellm", gateway, gpt, gpt, gpt, client, claude, fakes)


@scenario("n=2 on a Claude primary, GPT fallback", "rescued")
async def unsupported_parameter_fallback(tmp_path: Path) -> None:
    async with claude_first(tmp_path, one_group=False) as r:
        answer = await r.ask(n=2)
        assert (answer.text, answer.deployment, answer.choices) == (ANSWER, "spare", 2)
        assert answer.elapsed < PROMPTLY


@scenario("n=2 in a mixed Claude and GPT group", "rescued")
async def unsupported_parameter_group(tmp_path: Path) -> None:
    async with claude_first(tmp_path, one_group=True) as r:
        for _ in range(8):  # weighted-random by default: Claude would be picked by chance
            answer = await r.ask(n=2)
            assert (answer.text, answer.deployment, answer.choices) == (ANSWER, "spare", 2)
        assert chats(r.claude) == []  # routed by capability, not by trial


# ---- the run -------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def _table() -> Iterator[None]:
    yield
    width = max(len(name) for name, *_ in RESULTS) if RESULTS else 0
    print(f"\n{'scenario':<{width}}  {'expected':<11}  result  seconds")
    for name, outcome, result, seconds in RESULTS:
        print(f"{name:<{width}}  {outcome:<11}  {result:<6}  {seconds:6.2f}")


def test_the_catalogue_has_its_scenarios() -> None:
    assert len(CATALOGUE) >= 16
    assert len({s.name for s in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda s: s.name)
async def test_catalogue(entry: Scenario, tmp_path: Path) -> None:
    started = time.monotonic()
    result = "fail"
    try:
        await entry.run(tmp_path)
        result = "pass"
    finally:
        RESULTS.append((entry.name, entry.outcome, result, time.monotonic() - started))
