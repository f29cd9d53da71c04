"""Gateways that enforce keys' budgets and limits, and readers of what they charged, through the
public HTTP API only (`/key/info`, `/spend/logs`), so the checks hold whatever writes the rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from gateway_harness import RunningGateway, gateway_config, running_gateway, simulated
from key_harness import MASTER, Admin, priced
from turnout import Deployment
from turnout.config.state import StateConfig
from turnout.config.store import StoreConfig

#: Seconds a test waits at most for rows written off the request path.
ROWS_WITHIN = 20.0


def chat(deployment_id: str = "a", **behaviour: Any) -> Deployment:
    """A priced simulated deployment in the ``chat`` group."""
    return priced(simulated(deployment_id, **behaviour))


@asynccontextmanager
async def enforcing_gateway(
    url: str,
    *deployments: Deployment,
    state: StateConfig | None = None,
    fail_open: bool = False,
    **router: Any,
) -> AsyncIterator[tuple[RunningGateway, Admin]]:
    """A gateway with its store at `url` and the key cache off, serving `deployments` (one
    priced simulated deployment answering three tokens, by default)."""
    if state is not None:
        router["state"] = state
    config = gateway_config(
        *(deployments or (chat(output_tokens=3),)),
        master_key=MASTER,
        store=StoreConfig(url=url, enabled=True, key_cache_ttl=0, fail_open=fail_open),
        **router,
    )
    async with running_gateway(config) as gateway, aiohttp.ClientSession() as session:
        yield gateway, Admin(gateway.url, session)


async def spend_rows(admin: Admin, token: str | None, count: int) -> list[dict[str, Any]]:
    """The key's spend log rows (every key's: None) once there are `count` of them (waiting
    for their writes)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ROWS_WITHIN
    rows: list[dict[str, Any]] = []
    while loop.time() < deadline:
        by_key = {} if token is None else {"api_key": token}
        rows = await admin.get("/spend/logs", summarize="false", **by_key)
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(rows)} spend rows of {count} after {ROWS_WITHIN}s")


def micros(dollars: float) -> int:
    return round(dollars * 1_000_000)


async def key_spend(admin: Admin, key: str) -> int:
    """What `/key/info` says the key spent, in micro-dollars."""
    return micros((await admin.get("/key/info", key=key))["info"]["spend"])
