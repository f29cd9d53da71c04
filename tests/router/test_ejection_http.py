"""A primary's outage over real HTTP, where users stand: a LiteLLM config with one deployment
per model plus a fallback, the official SDK at its default retries, turnout's defaults except
a cooldown time scaled down (0.3 s for 5 s) so that the test is quick.

Every request is answered (by the fallback during the outage), the primary sees a bounded
number of attempts, is back in rotation soon after it recovers, and `/health` tells the
ejection's state on the way: ejected with its reason and count, then in rotation again.
"""

from __future__ import annotations

import asyncio
import json
import time
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import aiohttp
import msgspec

from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import running_gateway
from litellm_shape import one_per_model
from turnout.config.load import load_config

QUESTION: Any = [{"role": "user", "content": "Tell me about turnouts"}]
COOLDOWN = 0.3


async def _health(url: str, deployment_id: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{url}/health") as response:
        report = msgspec.json.decode(await response.read())
    [entry] = [d for d in report["deployments"] if d["id"] == deployment_id]
    return dict(entry)


def _chats(fake: FakeOpenAI) -> int:
    return sum(1 for r in fake.requests if r.path == "/v1/chat/completions")


async def test_a_primary_out_for_a_while_is_served_around_and_back_soon_after(
    tmp_path: Path,
) -> None:
    async with AsyncExitStack() as stack:
        primary = await stack.enter_async_context(FakeOpenAI())
        spare = await stack.enter_async_context(FakeOpenAI())
        data = one_per_model(
            primary.url, spare.url, ids=True, num_retries=2, timeout=30, cooldown_time=COOLDOWN
        )
        path = tmp_path / "config.yaml"
        path.write_text(json.dumps(data))  # JSON is YAML
        config = load_config(path)
        assert config.format == "litellm"
        gateway = await stack.enter_async_context(running_gateway(config))
        client = await stack.enter_async_context(gateway.client(max_retries=2, timeout=30.0))

        served: list[tuple[float, str]] = []
        seen: list[dict[str, Any]] = []
        start = time.monotonic()
        recovered_at = 0.0
        for index in range(24):
            await asyncio.sleep(max(0.0, start + index * 0.1 - time.monotonic()))
            if index == 1:
                primary.set_default(Fault.unavailable())
            elif index == 15:
                primary.set_default(None)
                recovered_at = time.monotonic()
            answer = await client.chat.completions.with_raw_response.create(
                model="chat", messages=QUESTION
            )
            assert answer.parse().choices[0].message.content
            served.append((time.monotonic(), answer.headers["x-turnout-deployment"]))
            if 1 < index < 15:
                seen.append(await _health(gateway.url, "chat"))
        assert served[0][1] == "chat"
        assert "spare" in {who for _, who in served}
        # While out, /health said so: ejected, why, and how many times in a row.
        ejected = [h for h in seen if h["ejection"] == "ejected"]
        assert ejected, seen
        assert ejected[0]["cooling_down"] and ejected[0]["breaker"] == "open"
        assert ejected[0]["cooldown_reason"] == "failures"
        assert ejected[0]["ejections"] >= 1
        # Back within a few of its (scaled) ejections of its recovery, and in rotation since.
        back = [at for at, who in served if who == "chat" and at > recovered_at]
        assert back and back[0] - recovered_at < 1.5
        assert all(who == "chat" for at, who in served if at > back[0])
        # The outage cost the primary a handful of attempts, not one per request.
        assert _chats(primary) <= 2 + 8 + len(back)
        health = await _health(gateway.url, "chat")
        assert (health["ejection"], health["breaker"], health["cooling_down"]) == (
            "in_rotation",
            "closed",
            False,
        )
        assert health["probes_in_flight"] == 0
