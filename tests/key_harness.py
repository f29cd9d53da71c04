"""A gateway with its key store on, served over loopback, and a plain HTTP client for the
management API (which LiteLLM's own scripts call without an SDK)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec

from gateway_harness import RunningGateway, gateway_config, running_gateway, simulated
from turnout import Deployment
from turnout.config.store import StoreConfig

MASTER = "sk-master-of-keys"
MESSAGES: Any = [{"role": "user", "content": "Hello"}]


@dataclass
class Admin:
    """Calls the management API with a key (the master key unless told otherwise)."""

    url: str
    session: aiohttp.ClientSession

    async def call(
        self, method: str, path: str, *, key: str = MASTER, **options: Any
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key}"}
        async with self.session.request(
            method, self.url + path, headers=headers, **options
        ) as response:
            return response.status, await response.json()

    async def post(self, path: str, body: Any, **options: Any) -> Any:
        """POST as the master key; the answer, which must be a 200."""
        status, answer = await self.call("POST", path, json=body, **options)
        assert status == 200, answer
        return answer

    async def get(self, path: str, **params: Any) -> Any:
        status, answer = await self.call("GET", path, params=params)
        assert status == 200, answer
        return answer


#: Prices of the deployments of keyed gateways: one and two micro-dollars a token, so that a
#: request's exact cost is a whole number of micro-dollars anyone can work out.
INPUT_PRICE = 1e-6
OUTPUT_PRICE = 2e-6


def priced(deployment: Deployment) -> Deployment:
    """`deployment` with the test prices (a budgeted key needs priced models)."""
    return msgspec.structs.replace(
        deployment, input_cost_per_token=INPUT_PRICE, output_cost_per_token=OUTPUT_PRICE
    )


def exact_micros(prompt_tokens: int, completion_tokens: int) -> int:
    """What usage costs at the test prices, in micro-dollars."""
    return prompt_tokens + 2 * completion_tokens


@asynccontextmanager
async def keyed_gateway(
    url: str, *, ttl: float = 0.0
) -> AsyncIterator[tuple[RunningGateway, Admin]]:
    """Two model groups (``chat``, ``other``) with an alias ``gpt-4o`` for ``chat``, the store at
    `url`, and the key cache at `ttl` seconds (0: every request reads the store)."""
    config = gateway_config(
        priced(simulated("a", output_tokens=3)),
        priced(simulated("b", group="other", output_tokens=3)),
        master_key=MASTER,
        store=StoreConfig(url=url, enabled=True, key_cache_ttl=ttl),
        aliases={"gpt-4o": "chat"},
    )
    async with running_gateway(config) as gateway, aiohttp.ClientSession() as session:
        yield gateway, Admin(gateway.url, session)
