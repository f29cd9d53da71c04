"""One model group served by three providers at once, failing over across them mid-traffic."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import AsyncExitStack
from typing import Any

import setup_anthropic
import setup_bedrock
import setup_openai

from gateway_harness import gateway_config, running_gateway
from turnout import HealthConfig, RoutingConfig

QUESTION: Any = [{"role": "user", "content": "Which track?"}]
SETUPS = (setup_anthropic.SETUP, setup_bedrock.SETUP, setup_openai.SETUP)


async def test_claude_on_anthropic_and_bedrock_and_gpt_fail_over_mid_traffic() -> None:
    async with AsyncExitStack() as stack:
        fakes = [await stack.enter_async_context(setup.start()) for setup in SETUPS]
        deployments = [setup.chat(fake, "chat") for setup, fake in zip(SETUPS, fakes, strict=True)]
        config = gateway_config(
            *deployments,
            routing=RoutingConfig(strategy="round-robin"),
            health=HealthConfig(cooldown_time=30, allowed_fails=0, min_requests=1),
        )
        gateway = await stack.enter_async_context(running_gateway(config))
        client = await stack.enter_async_context(gateway.client())

        async def ask(stream: bool) -> tuple[str, str]:
            if stream:
                chunks = await client.chat.completions.create(
                    model="chat", messages=QUESTION, stream=True
                )
                text = ""
                async for chunk in chunks:
                    if chunk.choices:
                        text += chunk.choices[0].delta.content or ""
                return text, "stream"
            raw = await client.chat.completions.with_raw_response.create(
                model="chat", messages=QUESTION
            )
            return raw.parse().choices[0].message.content or "", raw.headers["x-turnout-deployment"]

        # Healthy traffic spreads over the three providers.
        before = await asyncio.gather(*(ask(stream=i % 2 == 1) for i in range(12)))
        assert all(text.startswith("Fake answer to: Which track?") for text, _ in before)
        assert set(Counter(d for _, d in before if d != "stream")) == {d.id for d in deployments}

        # Anthropic goes down mid-traffic: every request still succeeds.
        anthropic_fake = fakes[0]
        anthropic_fake.set_default(setup_anthropic._FAULTS["overloaded"])
        during = await asyncio.gather(*(ask(stream=i % 3 == 0) for i in range(18)))
        assert all(text.startswith("Fake answer to: Which track?") for text, _ in during)
        served = Counter(d for _, d in during if d != "stream")
        assert deployments[0].id not in served  # nothing was answered by the failing provider
        assert set(served) <= {deployments[1].id, deployments[2].id}
        # Once its failures were seen it is out of rotation: later traffic leaves it alone.
        hits = len([r for r in anthropic_fake.requests if r.path.endswith("/messages")])
        after = [await ask(stream=i % 2 == 0) for i in range(6)]
        assert all(text.startswith("Fake answer to: Which track?") for text, _ in after)
        assert len([r for r in anthropic_fake.requests if r.path.endswith("/messages")]) == hits
