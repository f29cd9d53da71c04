"""The built-in demo served on 127.0.0.1, for the official `openai` SDK to talk to.

`instant_demo` is the demo's own configuration (`turnout.demo.demo_config`: its groups,
aliases and answers) with every deployment made instant and reliable, so that a test of what
the demo answers never waits for its simulated latency or meets its simulated failures.
`demo` serves the configuration unchanged, as ``turnout --demo`` does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import msgspec
import openai

from gateway_harness import running_gateway
from turnout.config.providers import SimulatedSettings, settings_of
from turnout.config.server import GatewayConfig
from turnout.demo import demo_config


def instant_demo() -> GatewayConfig:
    config = demo_config(port=0)
    deployments = []
    for deployment in config.router.model_list:
        behaviour = settings_of(deployment.settings, SimulatedSettings).simulate
        quick = msgspec.structs.replace(
            behaviour,
            latency=0.0,
            ttft=None,
            chunk_interval=0.0,
            jitter=0.0,
            tail_probability=0.0,
            error_rate=0.0,
        )
        settings = SimulatedSettings(simulate=quick)
        deployments.append(msgspec.structs.replace(deployment, settings=settings))
    router = msgspec.structs.replace(config.router, model_list=tuple(deployments))
    return msgspec.structs.replace(config, router=router)


@asynccontextmanager
async def demo_client(config: GatewayConfig | None = None) -> AsyncIterator[openai.AsyncOpenAI]:
    """An SDK client of a demo gateway (`instant_demo` unless told otherwise)."""
    async with running_gateway(config or instant_demo()) as gateway, gateway.client() as client:
        yield client
