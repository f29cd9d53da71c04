"""Fallbacks through the gateway, the way most users run it: a LiteLLM config.yaml with
``fallbacks`` (one deployment per model, or a group of several), every other setting at its
default, and the official SDK at its default retries.

- An outage of the main model that lasts far longer than the retry budget would allow hops:
  every request is answered by the fallback, first time (the SDK never retries), because a hop
  away from a group with nothing available sends the failing provider nothing and is free.
- A content-policy refusal goes to another model only through ``content_policy_fallbacks``;
  with only ``fallbacks`` the caller gets the provider's reason in a 400 and the fallback
  upstream sees nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import running_gateway
from turnout.config.load import load_config

MAIN = "gpt-4o"
FALLBACK = "gpt-4o-mini"
#: Requests in the outage: the default budget (1 per second over 10 s, plus 20% of requests)
#: would allow about a third as many hops.
OUTAGE_REQUESTS = 60


@dataclass
class Setup:
    client: openai.AsyncOpenAI
    main: list[FakeOpenAI]
    fallback: FakeOpenAI
    #: Requests the SDK sent to the gateway, its own retries included.
    sent: list[str]


def _litellm_config(
    path: Path, main: list[FakeOpenAI], fallback: FakeOpenAI, settings: tuple[str, ...]
) -> Path:
    deployments = [(MAIN, server) for server in main] + [(FALLBACK, fallback)]
    lines = ["model_list:"]
    for group, server in deployments:
        lines += [
            f"  - model_name: {group}",
            "    litellm_params:",
            f"      model: openai/{group}",
            f"      api_base: {server.url}",
            "      api_key: sk-fallback-test-upstream",
        ]
    lines += ["router_settings:", "  num_retries: 2", "  timeout: 30", *settings]
    path.write_text("\n".join(lines) + "\n")
    return path


@asynccontextmanager
async def setup(tmp_path: Path, *settings: str, main_deployments: int = 1) -> AsyncIterator[Setup]:
    async with AsyncExitStack() as stack:
        servers = [
            await stack.enter_async_context(FakeOpenAI(api_key=None, models=None))
            for _ in range(main_deployments + 1)
        ]
        main, fallback = servers[:-1], servers[-1]
        config = load_config(_litellm_config(tmp_path / "config.yaml", main, fallback, settings))
        assert config.format == "litellm"
        gateway = await stack.enter_async_context(running_gateway(config))
        sent: list[str] = []

        async def count(request: httpx2.Request) -> None:
            sent.append(request.url.path)

        http = await stack.enter_async_context(
            openai.DefaultAsyncHttpxClient(event_hooks={"request": [count]}, timeout=60)
        )
        # The SDK at its defaults: max_retries stays at 2.
        client = openai.AsyncOpenAI(
            base_url=f"{gateway.url}/v1", api_key="sk-anything", http_client=http
        )
        yield Setup(client, main, fallback, sent)


async def _ask(client: openai.AsyncOpenAI, text: str, *, stream: bool = False) -> str:
    messages: Any = [{"role": "user", "content": text}]
    if stream:
        chunks = await client.chat.completions.create(model=MAIN, messages=messages, stream=True)
        return "".join([c.choices[0].delta.content or "" async for c in chunks if c.choices])
    completion = await client.chat.completions.create(model=MAIN, messages=messages)
    return completion.choices[0].message.content or ""


async def _refused_code(client: openai.AsyncOpenAI, text: str, *, stream: bool) -> str | None:
    """None when the request is answered; the error's code when it fails with a 422."""
    try:
        assert await _ask(client, text, stream=stream)
    except openai.UnprocessableEntityError as error:
        body = error.body
        return str(body.get("code")) if isinstance(body, dict) else error.message
    return None


def _saw(server: FakeOpenAI) -> int:
    return len(server.requests)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
@pytest.mark.parametrize("main_deployments", [1, 2], ids=["one-deployment", "two-deployments"])
async def test_an_outage_longer_than_the_budget_is_served_by_the_fallback(
    tmp_path: Path, main_deployments: int, stream: bool
) -> None:
    fallbacks = f'  fallbacks: [{{"{MAIN}": ["{FALLBACK}"]}}]'
    async with setup(tmp_path, fallbacks, main_deployments=main_deployments) as probe:
        assert await _ask(probe.client, "before the outage", stream=stream)
        for server in probe.main:
            server.set_default(Fault.server_error())
        # On a group of several, the outage's first request fails on two deployments that
        # answered others just before: it cannot be told from a poison request, and may fail as
        # the cause (`turnout.health.poison`). With one deployment it never does.
        refused = await _refused_code(probe.client, "the outage begins", stream=stream)
        assert refused is None or (main_deployments > 1 and refused == "request_fails_upstream")
        before_main = sum(_saw(server) for server in probe.main)
        before_fallback = _saw(probe.fallback)
        before_sent = len(probe.sent)
        for index in range(OUTAGE_REQUESTS):
            assert await _ask(probe.client, f"during the outage {index}", stream=stream)
        to_main = sum(_saw(server) for server in probe.main) - before_main
        to_fallback = _saw(probe.fallback) - before_fallback
        sent = len(probe.sent) - before_sent
    # Every request was answered first time: the SDK never had a reason to retry.
    assert sent == OUTAGE_REQUESTS
    assert to_fallback == OUTAGE_REQUESTS
    # The main group saw only the attempts that found it down (a few per deployment), not one
    # per request: once it is out, requests go straight to the fallback.
    assert to_main <= 4 * main_deployments, to_main


async def test_a_refusal_with_only_general_fallbacks_is_the_callers_400(tmp_path: Path) -> None:
    fallbacks = f'  fallbacks: [{{"{MAIN}": ["{FALLBACK}"]}}]'
    async with setup(tmp_path, fallbacks) as probe:
        probe.main[0].enqueue(Fault.content_policy())
        with pytest.raises(openai.BadRequestError) as caught:
            await _ask(probe.client, "something the safety system refuses")
        assert caught.value.status_code == 400
        assert "safety system" in caught.value.message
        assert isinstance(caught.value.body, dict)
        assert caught.value.body.get("code") == "content_policy_violation"
        assert len(probe.sent) == 1
        assert _saw(probe.main[0]) == 1
        assert _saw(probe.fallback) == 0
        # The deployment was not blamed: the next request is served by it.
        assert await _ask(probe.client, "an ordinary question")
        assert (_saw(probe.main[0]), _saw(probe.fallback)) == (2, 0)


async def test_a_refusal_goes_to_the_content_policy_fallback(tmp_path: Path) -> None:
    content_policy = f'  content_policy_fallbacks: [{{"{MAIN}": ["{FALLBACK}"]}}]'
    async with setup(tmp_path, content_policy) as probe:
        probe.main[0].enqueue(Fault.content_policy())
        assert await _ask(probe.client, "something the safety system refuses")
        assert len(probe.sent) == 1
        assert (_saw(probe.main[0]), _saw(probe.fallback)) == (1, 1)
