"""Shared pieces of the ledger tests: ledgers to test, asks, and bounded waits on real time."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from governance_stores import postgres_database
from services import RedisServer
from turnout.config.state import StateConfig
from turnout.config.store import StoreConfig
from turnout.governance.ledger import MINUTE_MS, Ask, Budget, Limits, MemoryLedger
from turnout.governance.redis_ledger import RedisLedger
from turnout.governance.sql import SqlLedger, open_store

#: A generous command bound: a loaded machine must not look like Redis being down.
TIMEOUT_MS = 5000.0


def redis_config(server: RedisServer, prefix: str | None = None, **extra: Any) -> StateConfig:
    """Settings for a ledger on `server`, under a prefix of the test's own."""
    return StateConfig(
        backend="redis",
        url=server.url,
        prefix=prefix or f"t{os.urandom(4).hex()}",
        timeout_ms=TIMEOUT_MS,
        **extra,
    )


@asynccontextmanager
async def redis_ledgers(
    server: RedisServer, count: int, **options: Any
) -> AsyncIterator[list[RedisLedger]]:
    """`count` ledgers on one Redis and prefix, as if in `count` instances."""
    config = redis_config(server)
    ledgers = [RedisLedger(config, **options) for _ in range(count)]
    try:
        yield ledgers
    finally:
        for ledger in ledgers:
            await ledger.aclose()


Factory = Callable[..., Any]


def ask(
    cost: int = 0,
    *,
    budgets: tuple[Budget, ...] = (),
    limits: tuple[Limits, ...] = (),
    tokens: int = 0,
) -> Ask:
    return Ask(cost=cost, tokens=tokens, budgets=budgets, limits=limits, partition="team-a")


async def wait_until(predicate: Callable[[], Any], bound: float) -> None:
    """Poll an async predicate until it holds; fail after `bound` seconds."""
    deadline = time.monotonic() + bound
    while True:
        if await predicate():
            return
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def fresh_minute(margin_seconds: float = 3.0) -> None:
    """Wait (at most `margin_seconds`) so that a test's counts fall in one minute."""
    into = time.time() * 1000 % MINUTE_MS
    if into > MINUTE_MS - margin_seconds * 1000:
        await asyncio.sleep((MINUTE_MS - into) / 1000 + 0.05)


def memory(**options: Any) -> MemoryLedger:
    return MemoryLedger(**options)


@asynccontextmanager
async def sql_ledgers(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Callable[..., SqlLedger]]:
    """A builder of `SqlLedger`s on one database (``request.param``: sqlite, a file of the
    test's own; postgresql, a database of the test's own), each on a store of its own as the
    ledger of another worker process would be."""
    if request.param == "postgresql":
        request.applymarker(pytest.mark.services)
        async with postgres_database() as url, _sql_ledgers(url) as build:
            yield build
        return
    async with _sql_ledgers(f"sqlite:///{tmp_path / 'ledger.db'}") as build:
        yield build


@asynccontextmanager
async def _sql_ledgers(url: str) -> AsyncIterator[Callable[..., SqlLedger]]:
    # Opening a store is async (it migrates), building a ledger is not: stores are opened
    # ahead, one per ledger a test builds (two at most).
    stores = [await open_store(StoreConfig(url=url, pool_size=4)) for _ in range(3)]
    unused = list(stores)

    def build(**options: Any) -> SqlLedger:
        return SqlLedger(unused.pop().runner, **options)

    try:
        yield build
    finally:
        for store in stores:
            await store.aclose()
