"""The official SDK at its default retries (two) in front of the gateway, which retries and
falls back itself: its error answers say whether a repeat could help (``x-should-retry``,
Retry-After), a caller's deadline is met answer or error, and a provider refusing the gateway's
own credentials is the deployment's fault, not the caller's.

Mostly in the shape most users run: a LiteLLM ``config.yaml`` with one deployment per model and
``fallbacks``, loaded as the gateway loads it, against `FakeOpenAI` upstreams. Each test counts
the requests the gateway saw (the SDK's repeats), those each upstream saw, and the time taken.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest

from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import RunningGateway, gateway_config, running_gateway
from turnout import Deployment, RetryConfig, RoutingConfig, Secret
from turnout.config.load import load_config
from turnout.config.router import BreakerConfig, HealthConfig
from turnout.observe.events import Event, HttpRequestFinished

MESSAGES: Any = [{"role": "user", "content": "Tell me something"}]
#: How late after the caller's deadline its answer may arrive (loopback, a loaded machine).
SLACK = 0.15


class HttpCount:
    """The HTTP requests the gateway answered on a routed path, by status."""

    def __init__(self) -> None:
        self.statuses: list[int] = []

    def on_event(self, event: Event) -> None:
        if isinstance(event, HttpRequestFinished):
            self.statuses.append(event.status)


@dataclass
class Env:
    gateway: RunningGateway
    primary: FakeOpenAI
    backup: FakeOpenAI
    seen: HttpCount

    def sdk(self, **options: Any) -> openai.AsyncOpenAI:
        """The SDK as users run it: default retries unless told otherwise."""
        return openai.AsyncOpenAI(base_url=f"{self.gateway.url}/v1", api_key="sk-x", **options)


def _litellm_yaml(
    primary: FakeOpenAI, backup: FakeOpenAI, primary_key: str, backup_key: str
) -> str:
    def entry(name: str, fake: FakeOpenAI, key: str) -> str:
        return (
            f"  - model_name: {name}\n"
            "    litellm_params:\n"
            "      model: openai/gpt-4o-mini\n"
            f"      api_base: {fake.url}\n"
            f"      api_key: {key}\n"
            "    model_info:\n"
            f"      id: {name}-deployment\n"
        )

    return (
        "model_list:\n"
        + entry("chat", primary, primary_key)
        + entry("backup", backup, backup_key)
        + "litellm_settings:\n"
        "  num_retries: 2\n"
        "  timeout: 30\n"
        '  fallbacks: [{"chat": ["backup"]}]\n'
    )


@asynccontextmanager
async def litellm_env(
    tmp_path: Path, *, primary_key: str = "sk-fake", backup_key: str = "sk-fake"
) -> AsyncIterator[Env]:
    """Two fakes, a gateway loaded from a LiteLLM config: `chat` falls back to `backup`."""
    async with AsyncExitStack() as stack:
        primary = await stack.enter_async_context(FakeOpenAI())
        backup = await stack.enter_async_context(FakeOpenAI())
        path = tmp_path / "config.yaml"
        path.write_text(_litellm_yaml(primary, backup, primary_key, backup_key))
        gw = await stack.enter_async_context(running_gateway(load_config(path)))
        seen = HttpCount()
        gw.gateway.bus.subscribe(seen)
        yield Env(gw, primary, backup, seen)


async def _warm(client: openai.AsyncOpenAI) -> None:
    """Load what the SDK loads on first use and open its connection, before a timed call."""
    await client.models.list()
    assert client.chat.completions is not None


def _attempts(error: openai.APIStatusError) -> int:
    found = re.search(r"\[(\d+) attempts?:", error.message)
    assert found is not None, error.message
    return int(found.group(1))


# ---- the caller's deadline, with the SDK's retries on ---------------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_the_sdks_own_timeout_is_met_by_a_final_error(tmp_path: Path, stream: bool) -> None:
    async with litellm_env(tmp_path) as env, env.sdk(timeout=0.3) as client:
        env.primary.set_default(Fault("hang"))
        env.backup.set_default(Fault("hang"))
        await _warm(client)
        started = time.perf_counter()
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(model="chat", messages=MESSAGES, stream=stream)
        elapsed = time.perf_counter() - started
    # The gateway answered before the SDK gave up (which it would have repeated, twice).
    assert caught.value.status_code == 504
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "retry-after" not in caught.value.response.headers
    assert elapsed < 0.3 + SLACK
    assert env.seen.statuses == [504]
    assert len(env.primary.requests) == 1


@pytest.mark.parametrize("stream", [False, True])
async def test_an_explicit_deadline_is_met_by_a_final_error(tmp_path: Path, stream: bool) -> None:
    async with litellm_env(tmp_path) as env, env.sdk() as client:
        env.primary.set_default(Fault("hang"))
        env.backup.set_default(Fault("hang"))
        await _warm(client)
        started = time.perf_counter()
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="chat",
                messages=MESSAGES,
                stream=stream,
                extra_headers={"x-turnout-timeout-ms": "300"},
            )
        elapsed = time.perf_counter() - started
    assert caught.value.status_code == 504
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert 0.3 <= elapsed < 0.3 + SLACK
    assert env.seen.statuses == [504]


async def test_the_sooner_of_the_two_deadlines_applies(tmp_path: Path) -> None:
    async with litellm_env(tmp_path) as env, env.sdk(timeout=0.3) as client:
        env.primary.set_default(Fault("hang"))
        env.backup.set_default(Fault("hang"))
        await _warm(client)
        started = time.perf_counter()
        with pytest.raises(openai.APIStatusError) as caught:
            await client.chat.completions.create(
                model="chat", messages=MESSAGES, extra_headers={"x-turnout-timeout-ms": "5000"}
            )
    assert caught.value.status_code == 504
    assert time.perf_counter() - started < 0.3 + SLACK
    assert env.seen.statuses == [504]


async def test_a_slow_primary_is_answered_by_the_fallback_inside_the_deadline(
    tmp_path: Path,
) -> None:
    async with litellm_env(tmp_path) as env, env.sdk(timeout=5.0) as client:
        env.primary.set_default(Fault.server_error())
        completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert completion.choices[0].message.content
    assert env.seen.statuses == [200]
    assert len(env.backup.requests) == 1


# ---- failures the gateway already retried and fell back from ------------------------------


@pytest.mark.parametrize("stream", [False, True])
async def test_a_failure_after_retries_and_fallback_is_not_repeated_by_the_sdk(
    tmp_path: Path, stream: bool
) -> None:
    async with litellm_env(tmp_path) as env, env.sdk() as client:
        env.primary.set_default(Fault.server_error())
        env.backup.set_default(Fault.server_error())
        started = time.perf_counter()
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="chat", messages=MESSAGES, stream=stream)
    assert time.perf_counter() - started < 5.0
    headers = caught.value.response.headers
    assert headers["x-should-retry"] == "false"
    assert "retry-after" not in headers
    # One request reached the gateway; every upstream request was one of its own attempts.
    assert env.seen.statuses == [502]
    assert len(env.backup.requests) >= 1
    assert len(env.primary.requests) + len(env.backup.requests) == _attempts(caught.value)


async def test_an_open_circuit_is_not_waited_out_by_the_sdk() -> None:
    async with AsyncExitStack() as stack:
        fakes = [await stack.enter_async_context(FakeOpenAI()) for _ in range(2)]
        deployments = [
            Deployment(
                model_name="chat",
                provider="openai-compatible",
                model="gpt-4o-mini",
                id=f"up{index}",
                base_url=fake.url,
                api_key=Secret("sk-fake"),
            )
            for index, fake in enumerate(fakes)
        ]
        config = gateway_config(
            *deployments,
            routing=RoutingConfig(strategy="simple-shuffle"),
            breaker=BreakerConfig(failure_threshold=1, open_timeout=30),
            health=HealthConfig(disable_cooldowns=True),
        )
        gw = await stack.enter_async_context(running_gateway(config))
        seen = HttpCount()
        gw.gateway.bus.subscribe(seen)
        for fake in fakes:
            fake.set_default(Fault.server_error())
        client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="sk-x")
        await stack.enter_async_context(client)
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="chat", messages=MESSAGES)
        states = {
            entry.deployment_id: entry.breaker.name for entry in await gw.gateway.router.health()
        }
        assert states == {"up0": "OPEN", "up1": "OPEN"}
        started = time.perf_counter()
        with pytest.raises(openai.RateLimitError) as caught:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
        elapsed = time.perf_counter() - started
    assert "circuit open" in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "retry-after" not in caught.value.response.headers
    assert elapsed < 1.0
    assert seen.statuses == [502, 429]
    assert sum(len(fake.requests) for fake in fakes) == 2


# ---- where waiting is what helps -----------------------------------------------------------


def _rate_limited_gateway(fake: FakeOpenAI) -> Any:
    return running_gateway(
        gateway_config(
            Deployment(
                model_name="chat",
                provider="openai-compatible",
                model="gpt-4o-mini",
                id="only",
                base_url=fake.url,
                api_key=Secret("sk-fake"),
            ),
            retries=RetryConfig(num_retries=0),
            health=HealthConfig(disable_cooldowns=True),
        )
    )


async def test_a_rate_limit_with_a_short_wait_is_repeated_after_that_wait() -> None:
    async with FakeOpenAI() as fake, _rate_limited_gateway(fake) as gw:
        seen = HttpCount()
        gw.gateway.bus.subscribe(seen)
        fake.enqueue(Fault.rate_limited(retry_after=0.5))
        started = time.perf_counter()
        async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="sk-x") as client:
            raw = await client.chat.completions.with_raw_response.create(
                model="chat", messages=MESSAGES
            )
        elapsed = time.perf_counter() - started
    assert raw.parse().choices[0].message.content
    assert seen.statuses == [429, 200]
    assert raw.retries_taken == 1
    assert 0.5 <= elapsed < 0.5 + 1.0


async def test_a_rate_limit_longer_than_the_deadline_is_not_repeated() -> None:
    async with FakeOpenAI() as fake, _rate_limited_gateway(fake) as gw:
        seen = HttpCount()
        gw.gateway.bus.subscribe(seen)
        fake.set_default(Fault.rate_limited(retry_after=3))
        started = time.perf_counter()
        async with openai.AsyncOpenAI(
            base_url=f"{gw.url}/v1", api_key="sk-x", timeout=1.0
        ) as client:
            with pytest.raises(openai.RateLimitError) as caught:
                await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "retry-after" not in caught.value.response.headers
    assert time.perf_counter() - started < 1.0
    assert seen.statuses == [429]
    assert len(fake.requests) == 1


# ---- the gateway's own credentials refused -------------------------------------------------


async def test_a_refused_gateway_key_fails_over_and_cools_the_deployment(tmp_path: Path) -> None:
    async with litellm_env(tmp_path, primary_key="sk-wrong-key-in-config") as env:
        async with env.sdk() as client:
            for _ in range(2):
                completion = await client.chat.completions.create(model="chat", messages=MESSAGES)
                assert completion.choices[0].message.content
        health = {entry.deployment_id: entry for entry in await env.gateway.gateway.router.health()}
    refused = health["chat-deployment"]
    assert refused.cooling_down
    assert refused.cooldown_reason is not None
    assert refused.cooldown_reason.value == "auth"
    # Tried once, then left alone while it cools down; the fallback answered both.
    assert len(env.primary.requests) == 1
    assert len(env.backup.requests) == 2
    assert env.seen.statuses == [200, 200]


@pytest.mark.parametrize("stream", [False, True])
async def test_refused_gateway_keys_everywhere_are_a_server_error_naming_the_deployment(
    tmp_path: Path, stream: bool
) -> None:
    wrong = "sk-wrong-key-in-config-0123456789"
    async with (
        litellm_env(tmp_path, primary_key=wrong, backup_key=wrong) as env,
        env.sdk() as client,
    ):
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="chat", messages=MESSAGES, stream=stream)
    error = caught.value
    assert not isinstance(error, openai.AuthenticationError)
    assert error.status_code == 502
    body = error.body
    assert isinstance(body, dict)
    assert body["type"] == "api_error"
    assert body["code"] == "upstream_credentials_refused"
    assert re.search(
        r"gateway's credentials for deployment `(chat|backup)-deployment`", error.message
    )
    assert wrong not in error.message
    assert error.response.headers["x-should-retry"] == "false"
    assert env.seen.statuses == [502]
    assert (len(env.primary.requests), len(env.backup.requests)) == (1, 1)


async def test_a_group_cooling_for_a_refused_key_is_not_repeated(tmp_path: Path) -> None:
    wrong = "sk-wrong-key-in-config-0123456789"
    async with (
        litellm_env(tmp_path, primary_key=wrong, backup_key=wrong) as env,
        env.sdk() as client,
    ):
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="chat", messages=MESSAGES)
        started = time.perf_counter()
        with pytest.raises(openai.InternalServerError) as caught:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
    # Both cool down for a refused key: waiting the cooldown out would not fix it, and the
    # caller hears what the first request heard, not a rate limit inviting a repeat.
    assert caught.value.code == "upstream_credentials_refused"
    assert "refused the gateway's credentials for `" in caught.value.message
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert "retry-after" not in caught.value.response.headers
    assert time.perf_counter() - started < 1.0
    assert env.seen.statuses == [502, 502]
    assert (len(env.primary.requests), len(env.backup.requests)) == (1, 1)


async def test_a_callers_own_wrong_key_stays_a_401(tmp_path: Path) -> None:
    async with AsyncExitStack() as stack:
        fake = await stack.enter_async_context(FakeOpenAI())
        path = tmp_path / "config.yaml"
        path.write_text(
            _litellm_yaml(fake, fake, "sk-fake", "sk-fake")
            + "general_settings:\n  master_key: sk-gateway-master-key\n"
        )
        gw = await stack.enter_async_context(running_gateway(load_config(path)))
        client = openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="sk-not-the-master-key")
        await stack.enter_async_context(client)
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
    assert caught.value.status_code == 401
    assert caught.value.response.headers["x-should-retry"] == "false"
    assert fake.requests == []


async def test_a_model_the_provider_does_not_know_is_the_gateways_fault(tmp_path: Path) -> None:
    """A deployment naming a model its provider does not have (a typo in the config) is cooled
    down and the fallback answers; with both wrong, every request gets the same 502 naming the
    deployments, never the provider's 404 (which the SDK would raise as the caller's own
    NotFoundError) nor a 429 inviting a repeat."""
    async with litellm_env(tmp_path) as env, env.sdk() as client:
        env.primary.models = ("gpt-4o",)
        answer = await client.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES
        )
        assert answer.headers["x-turnout-deployment"] == "backup-deployment"
        env.backup.models = ("gpt-4o",)
        # The first: the attempt's own 404; then: both groups out, the last one named.
        for expected in ("for deployment `backup-deployment`", "for `backup-deployment`"):
            with pytest.raises(openai.InternalServerError) as caught:
                await client.chat.completions.create(model="chat", messages=MESSAGES)
            assert caught.value.code == "upstream_model_not_found"
            assert expected in caught.value.message
            assert caught.value.response.headers["x-should-retry"] == "false"
    assert env.seen.statuses == [200, 502, 502]
    assert (len(env.primary.requests), len(env.backup.requests)) == (1, 2)
