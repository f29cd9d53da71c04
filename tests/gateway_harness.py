"""A real gateway on 127.0.0.1 for end-to-end tests, driven by the official `openai` SDK.

`running_gateway` serves in the test's own event loop (for the async SDK); `threaded_gateway`
serves from a thread with its own loop (for the blocking SDK client).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import msgspec
import openai
from aiohttp import web

from fakes.fake_openai import FakeOpenAI
from turnout import Deployment, RouterConfig, Secret
from turnout.config.server import GatewayConfig, ServerConfig
from turnout.config.store import StoreConfig
from turnout.gateway.app import create_app
from turnout.gateway.gateway import Gateway
from turnout.gateway.site import GatewaySite


def simulated(deployment_id: str, group: str = "chat", **behaviour: Any) -> Deployment:
    return Deployment(
        model_name=group,
        provider="simulated",
        model=deployment_id,
        id=deployment_id,
        params={"simulate": behaviour},
    )


def gateway_config(
    *deployments: Deployment,
    master_key: str | None = None,
    max_body_bytes: int = 1024 * 1024,
    store: StoreConfig | None = None,
    **router: Any,
) -> GatewayConfig:
    """`store`: the key store (None: off, so that no test writes a database by accident)."""
    return GatewayConfig(
        server=ServerConfig(
            port=0,
            master_key=Secret(master_key) if master_key else None,
            max_body_bytes=max_body_bytes,
            shutdown_timeout=5,
        ),
        router=RouterConfig(model_list=deployments, **router),
        store=store or StoreConfig(enabled=False),
        format="turnout",
    )


@dataclass
class RunningGateway:
    url: str
    gateway: Gateway
    site: GatewaySite | None = None

    def client(self, api_key: str = "sk-anything", **options: Any) -> openai.AsyncOpenAI:
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 10.0)
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=api_key, **options)


@asynccontextmanager
async def running_gateway(config: GatewayConfig) -> AsyncIterator[RunningGateway]:
    """Serve `config`; its key store only when the config turns it on explicitly (a master key
    alone would open ``turnout.db`` in the working directory)."""
    if config.store.enabled is None:
        config = msgspec.structs.replace(config, store=StoreConfig(enabled=False))
    gateway = Gateway(config)
    await gateway.start()
    runner = web.AppRunner(create_app(gateway), access_log=None, shutdown_timeout=5)
    await runner.setup()
    site = GatewaySite(runner, "127.0.0.1", 0, lambda: gateway.limits)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield RunningGateway(f"http://127.0.0.1:{port}", gateway, site)
    finally:
        await runner.cleanup()
        await gateway.close()


@contextmanager
def threaded_gateway(config: GatewayConfig | Callable[[str], GatewayConfig]) -> Iterator[str]:
    """Serve from a thread with its own loop; yields the base URL. Given a function instead of
    a config, a fake OpenAI upstream is served on the same loop and the function gets its URL."""
    loop = asyncio.new_event_loop()
    started = threading.Event()
    stop = asyncio.Event()
    url: list[str] = []

    async def main() -> None:
        async with AsyncExitStack() as stack:
            resolved = config
            if not isinstance(resolved, GatewayConfig):
                fake = await stack.enter_async_context(FakeOpenAI())
                resolved = resolved(fake.url)
            running = await stack.enter_async_context(running_gateway(resolved))
            url.append(running.url)
            started.set()
            await stop.wait()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert started.wait(10), "the gateway did not start"
        yield url[0]
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)
        loop.close()
