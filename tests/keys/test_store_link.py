"""The gateway's link to its store when the database does not answer: it starts anyway."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from turnout.config.store import StoreConfig
from turnout.gateway.store_link import StoreLink, StoreUnavailableError


async def test_a_database_that_never_answers_does_not_hold_the_start() -> None:
    """A server that accepts connections and says nothing (a host behind a firewall that drops
    packets looks the same to the driver) costs the start `open_within`, not the driver's
    minute-long connect timeout; the store stays closed and calls are 503s."""
    held: list[asyncio.StreamWriter] = []

    async def silent(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    link = StoreLink(
        StoreConfig(url=f"postgresql://postgres@127.0.0.1:{port}/turnout"),
        reopen_every=60,
        open_within=0.5,
    )
    try:
        async with asyncio.timeout(10):
            await link.start()
        assert not link.is_open
        with pytest.raises(StoreUnavailableError):
            link.key_hash("sk-anything")
        with pytest.raises(StoreUnavailableError):
            await link.call(lambda store: store.get_key("x"))
    finally:
        await link.aclose()
        for writer in held:
            writer.close()
        server.close()
        with contextlib.suppress(Exception):
            await server.wait_closed()
