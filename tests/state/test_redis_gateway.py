"""The gateway built from a config with ``state: {backend: redis}``: it shares its state, says so
in /health and /metrics, and keeps serving (saying that too) while Redis is away."""

from __future__ import annotations

from typing import Any

import aiohttp
import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gateway_harness import gateway_config, running_gateway, simulated
from turnout.config.state import StateConfig

pytestmark = pytest.mark.services

MESSAGES: Any = [{"role": "user", "content": "hi"}]


async def _report(url: str) -> tuple[dict[str, Any], float]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{url}/health") as health:
            report = msgspec.json.decode(await health.read())
        async with session.get(f"{url}/metrics") as metrics:
            text = await metrics.text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    [up] = families["turnout_state_backend_up"].samples
    assert up.labels == {"backend": "redis"}
    return report["state"], up.value


@pytest.mark.parametrize("reachable", [True, False])
async def test_a_gateway_on_redis_state_reports_it(redis_server: Any, reachable: bool) -> None:
    redis_server.flush()
    url = redis_server.url if reachable else "redis://127.0.0.1:1/0"
    state = StateConfig(backend="redis", url=url, timeout_ms=100, retry_interval=30)
    config = gateway_config(simulated("a"), simulated("b"), state=state)
    async with running_gateway(config) as gw:
        async with gw.client(max_retries=2) as client:  # the SDK at its default retries
            for _ in range(3):
                await client.chat.completions.create(model="chat", messages=MESSAGES)
        status, up = await _report(gw.url)
    assert status["backend"] == "redis"
    assert status["shared"] is reachable
    assert up == (1.0 if reachable else 0.0)
