"""The status page across the workers of one gateway: each worker publishes its traffic, any
one merges.

With `turnout serve --workers N` each worker has its own event bus, so its traffic observer
(`turnout.observe.traffic`) sees only the requests the kernel handed to it. Each worker writes
its traffic export every `interval` seconds to the gateway's private status directory
(``<pid>.msgpack``, written to a temporary file and renamed, so a reader never sees half a
file); the worker answering `/status` merges its own live export with the other live workers'
files (`turnout.observe.traffic_view.merge`). This holds with a shared state store too: health
is shared there, but traffic is counted where it is served. A file is ignored once its worker's
process is gone (the parent also removes it when the worker exits) or when it is older than
`stale` seconds (a hung worker); an exited worker's traffic leaves the page with it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from turnout.gateway.worker_files import WorkerFile, cancel_quietly
from turnout.observe.traffic import TrafficExport
from turnout.processes import alive

logger = logging.getLogger("turnout.gateway")

_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(TrafficExport).decode


class StatusPeers:
    """This worker's publisher of its traffic, and the reader of the other workers'."""

    def __init__(
        self,
        directory: str,
        export: Callable[[], TrafficExport],
        *,
        worker: int | None = None,
        wall: Callable[[], float] = time.time,
        interval: float = 1.0,
        stale: float = 15.0,
        alive: Callable[[int], bool] = alive,
    ) -> None:
        self.directory = Path(directory)
        self.worker = os.getpid() if worker is None else worker
        self._export = export
        self._wall = wall
        self.interval = interval
        self.stale = stale
        self._file = WorkerFile(self.directory, self.worker, ".msgpack", alive)
        self._task: asyncio.Task[None] | None = None
        self._failed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop publishing and remove this worker's file: its traffic leaves with it."""
        await cancel_quietly(self._task)
        self._task = None
        self._file.remove()

    async def _run(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(self.interval)

    def publish(self) -> None:
        """Write this worker's traffic export now (a failure is logged once, then retried at
        the next interval)."""
        try:
            self._file.write(_ENCODE(self._export()))
        except OSError as error:
            if not self._failed:
                logger.warning("could not publish this worker's traffic for /status: %s", error)
                self._failed = True

    def peers(self) -> list[TrafficExport]:
        """The latest exports of the other live workers."""
        now = self._wall()
        found = []
        for data in self._file.others():
            try:
                export = _DECODE(data)
            except (msgspec.DecodeError, msgspec.ValidationError):
                continue  # from an older format: skip it
            if now - export.at <= self.stale:
                found.append(export)
        return found
