"""The built-in demo: a gateway on simulated providers, no API keys needed.

Three chat deployments with different speed, price and failure behaviour make routing visible:
the fast one sometimes fails or is rate limited (watch it cool down and come back), the cheap
one has a slow tail, a large-context group takes long prompts and is the general fallback, and
an embedding group has two members. OpenAI model names are aliases, so examples written for
OpenAI work unchanged.

The simulated models answer the whole Chat Completions API as an OpenAI model would (tool calls,
JSON mode and structured outputs, ``n``, ``stop``, ``logprobs``, ``seed``, usage in streams) and
refuse out-of-range parameters with OpenAI's 400s; the embedding models are 1536-dimensional,
like ``text-embedding-3-small``, and shorten to ``dimensions`` (`turnout.providers.simulated`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from turnout.config.providers import SimulatedSettings
from turnout.config.router import (
    Deployment,
    FallbackConfig,
    HealthConfig,
    RouterConfig,
    RoutingConfig,
)
from turnout.config.server import GatewayConfig, ServerConfig
from turnout.config.simulated import Behaviour

#: The demo's embedding size: that of ``text-embedding-3-small``, which it stands in for.
EMBEDDING_DIMENSIONS = 1536


def _simulated(
    group: str, name: str, *, price: tuple[float, float], window: int, **behaviour: Any
) -> Deployment:
    return Deployment(
        model_name=group,
        provider="simulated",
        model=name,
        id=name,
        input_cost_per_token=price[0],
        output_cost_per_token=price[1],
        context_window=window,
        # Converted, not built, so that msgspec checks the ranges of the behaviour's fields.
        settings=SimulatedSettings(simulate=msgspec.convert(behaviour, Behaviour)),
    )


def demo_config(host: str = "127.0.0.1", port: int = 4000) -> GatewayConfig:
    model_list = (
        _simulated(
            "chat",
            "sim-fast",
            price=(0.15e-6, 0.6e-6),
            window=8_000,
            latency=0.08,
            ttft=0.04,
            chunk_interval=0.01,
            output_tokens=24,
            error_rate=0.2,
            errors={"server_error": 2.0, "rate_limited": 1.0},
            retry_after=3.0,
        ),
        _simulated(
            "chat",
            "sim-steady",
            price=(0.5e-6, 1.5e-6),
            window=8_000,
            latency=0.25,
            ttft=0.1,
            chunk_interval=0.02,
            output_tokens=24,
        ),
        _simulated(
            "chat",
            "sim-cheap",
            price=(0.05e-6, 0.2e-6),
            window=8_000,
            latency=0.4,
            ttft=0.2,
            chunk_interval=0.03,
            output_tokens=24,
            tail_probability=0.1,
            tail_latency=2.0,
        ),
        _simulated(
            "chat-large",
            "sim-large",
            price=(2.5e-6, 10e-6),
            window=200_000,
            latency=0.5,
            ttft=0.25,
            chunk_interval=0.02,
            output_tokens=32,
        ),
        _simulated(
            "embed",
            "sim-embed-a",
            price=(0.02e-6, 0.0),
            window=8_000,
            latency=0.02,
            embedding_dimensions=EMBEDDING_DIMENSIONS,
        ),
        _simulated(
            "embed",
            "sim-embed-b",
            price=(0.02e-6, 0.0),
            window=8_000,
            latency=0.05,
            embedding_dimensions=EMBEDDING_DIMENSIONS,
        ),
    )
    router = RouterConfig(
        model_list=model_list,
        aliases={
            "gpt-4o-mini": "chat",
            "gpt-4o": "chat-large",
            "text-embedding-3-small": "embed",
        },
        routing=RoutingConfig(strategy="lowest-latency", latency_buffer=0.1),
        fallbacks=FallbackConfig(
            general={"chat": ["chat-large"]}, context_window={"chat": ["chat-large"]}
        ),
        health=HealthConfig(cooldown_time=5.0, allowed_fails=2, min_requests=3),
        timeout=60.0,
    )
    return GatewayConfig(
        server=ServerConfig(host=host, port=port, demo=True),
        router=router,
        format="turnout",
    )
