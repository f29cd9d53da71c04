"""A router with real providers, assembled from a config: the library's front door.

`open_router` does for a program what the gateway does for its process: one pooled HTTP
transport, one provider per provider name the config uses (native adapters for Azure,
Anthropic, Gemini and Bedrock, the OpenAI-compatible one for the rest, the simulated provider
for its deployments), and a `Router` that owns the transport, so that ``aclose()`` (or leaving
``async with``) releases every connection.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Sequence

from turnout.clock import Clock
from turnout.config.router import RouterConfig
from turnout.observe.bus import Observer
from turnout.router.router import Router
from turnout.state.base import StateStore
from turnout.upstream import Transport

logger = logging.getLogger("turnout")


def open_router(
    config: RouterConfig | str | os.PathLike[str],
    *,
    clock: Clock | None = None,
    rng: random.Random | None = None,
    state: StateStore | None = None,
    observers: Sequence[Observer] = (),
    transport: Transport | None = None,
) -> Router:
    """A `Router` for `config` (or the turnout or LiteLLM config file at that path, whose
    ``${VAR}`` references are read from the environment) calling real providers.

    They send through `transport` when one is given (one wrapping the HTTP client, say), else
    through a new pooled HTTP client; either way the router owns it and closes it in
    `Router.aclose`. Use it as ``async with open_router(config) as router:`` or call
    ``await router.aclose()`` when done. A config that does not build raises `ConfigError`
    with nothing opened (the pool opens at the first call), and a given transport stays its
    caller's.
    """
    # Imported here, so that importing turnout loads no YAML reader, adapter or HTTP client.
    from turnout.config.load import load_config
    from turnout.providers.registry import provider_set
    from turnout.upstream.aiohttp import AiohttpTransport

    if not isinstance(config, RouterConfig):
        loaded = load_config(config)
        for warning in loaded.warnings:
            logger.warning("config: %s", warning)
        config = loaded.router
    if transport is None:
        transport = AiohttpTransport()
    providers = provider_set(config, transport, clock).providers
    return Router(
        config,
        providers,
        clock=clock,
        rng=rng,
        state=state,
        observers=observers,
        transport=transport,
    )
