"""The gateway's listening socket: aiohttp's runner and app, behind a `ConnectionGuard`.

aiohttp's `TCPSite` hands connections to its own request handler; `GatewaySite` hands them to
the guard, which times and counts every connection (gateway/connections.py). Everything else
(the application, middlewares, graceful shutdown) is aiohttp's, unchanged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from aiohttp import web

from turnout.gateway.connections import ConnectionGuard, ConnectionLimits


class GatewaySite(web.BaseSite):
    __slots__ = ("_guard", "_host", "_port", "_reuse_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        limits: Callable[[], ConnectionLimits],
        *,
        reuse_port: bool = False,
        backlog: int = 2048,
        access_log: bool = False,
    ) -> None:
        """`access_log`: one line per answered request (`turnout.gateway.access_log`)."""
        super().__init__(runner, backlog=backlog)
        assert runner.server is not None
        self._guard = ConnectionGuard(
            runner.server, limits, asyncio.get_running_loop(), access_log=access_log
        )
        self._host = host
        self._port = port
        self._reuse_port = reuse_port

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def guard(self) -> ConnectionGuard:
        return self._guard

    async def start(self) -> None:
        await super().start()
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._guard,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_port=self._reuse_port or None,
        )
        self._guard.start()

    async def stop(self) -> None:
        # aiohttp calls this first on shutdown, then waits for the requests in flight: the guard
        # keeps timing those connections until the last one is gone.
        self._guard.drain()
        await super().stop()
