"""Poison requests through the real gateway: the official SDK in front, fake OpenAI upstreams
behind, in the shape most configs have (one deployment per model group, and fallbacks).

The upstreams answer 500 to any request carrying a marker, as a model server crashing on some
input would. Such requests must fail cleanly as the cause, and leave every deployment in
rotation for the valid requests around them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import msgspec
import openai
import pytest
from aiohttp import web

from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import RunningGateway, gateway_config, running_gateway
from turnout import Deployment, FallbackConfig, Secret

MARKER = "<<crash-the-model>>"
VALID: Any = [{"role": "user", "content": "Tell me something"}]
POISON: Any = [{"role": "user", "content": f"Summarise this: {MARKER}"}]


class CrashingOpenAI(FakeOpenAI):
    """A fake OpenAI server whose model crashes (500) on every request carrying `MARKER`."""

    _poisoned = False

    def _receive(self, request: web.Request, raw: bytes, body: Any, arrived: float) -> str:
        self._poisoned = MARKER.encode() in raw
        return super()._receive(request, raw, body, arrived)

    def _next_fault(self, target: str | None) -> Fault | None:
        if self._poisoned:
            return Fault.server_error()
        return super()._next_fault(target)


def upstream(fake: FakeOpenAI, group: str) -> Deployment:
    return Deployment(
        model_name=group,
        provider="openai-compatible",
        model="gpt-4o-mini",
        id=f"{group}-1",
        base_url=fake.url,
        api_key=Secret("sk-fake"),
    )


@asynccontextmanager
async def gateway() -> AsyncIterator[tuple[RunningGateway, list[CrashingOpenAI]]]:
    async with AsyncExitStack() as stack:
        fakes = [await stack.enter_async_context(CrashingOpenAI()) for _ in range(2)]
        config = gateway_config(
            upstream(fakes[0], "gpt"),
            upstream(fakes[1], "claude"),
            fallbacks=FallbackConfig(general={"gpt": ["claude"], "claude": ["gpt"]}),
        )
        yield await stack.enter_async_context(running_gateway(config)), fakes


async def test_poison_requests_leave_every_deployment_serving(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "turnout")
    async with gateway() as (gw, fakes), gw.client() as client:

        async def served(model: str) -> None:
            completion = await client.chat.completions.create(model=model, messages=VALID)
            assert completion.choices[0].message.content

        for model in ("gpt", "claude", "gpt", "claude"):
            await served(model)
        for model in ("gpt", "gpt", "claude", "gpt"):
            with pytest.raises(openai.UnprocessableEntityError) as caught:
                await client.chat.completions.create(model=model, messages=POISON)
            error = caught.value
            assert error.status_code == 422
            assert error.code == "request_fails_upstream"
            assert "the request itself appears to be the cause" in error.message
            assert "2 attempts" in error.message  # the attempts summary, one per deployment
            await served("gpt")
            await served("claude")
        for _ in range(3):
            await served("gpt")
            await served("claude")
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{gw.url}/health") as health:
                report = msgspec.json.decode(await health.read())
            async with session.get(f"{gw.url}/metrics") as metrics:
                exposition = await metrics.text()
    deployments = report["deployments"]
    assert {d["id"] for d in deployments} == {"gpt-1", "claude-1"}
    for deployment in deployments:
        assert deployment["cooling_down"] is False, deployment
        assert deployment["breaker"] == "closed", deployment
    # Each poison request reached each upstream once, and went no further.
    poisoned = [r for fake in fakes for r in fake.requests if MARKER in str(r.json)]
    assert len(poisoned) == 8
    assert 'turnout_poison_requests_total{model_group="gpt"} 3.0' in exposition
    assert 'turnout_poison_requests_total{model_group="claude"} 1.0' in exposition
    assert MARKER not in exposition
    verdicts = [r.getMessage() for r in caplog.records if "poison-request" in r.getMessage()]
    assert len(verdicts) == 4
    assert verdicts[0].startswith("poison-request group=gpt deployments=gpt-1,claude-1 attempts=2")
    assert all(MARKER not in record.getMessage() for record in caplog.records)
