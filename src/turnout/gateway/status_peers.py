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
import contextlib
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import msgspec

from turnout.observe.traffic import TrafficExport

logger = logging.getLogger("turnout.gateway")

_ENCODE = msgspec.msgpack.Encoder().encode
_DECODE = msgspec.msgpack.Decoder(TrafficExport).decode


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        alive: Callable[[int], bool] = _alive,
    ) -> None:
        self.directory = Path(directory)
        self.worker = os.getpid() if worker is None else worker
        self._export = export
        self._wall = wall
        self.interval = interval
        self.stale = stale
        self._alive = alive
        self._path = self.directory / f"{self.worker}.msgpack"
        self._task: asyncio.Task[None] | None = None
        self._failed = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop publishing and remove this worker's file: its traffic leaves with it."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(OSError):
            self._path.unlink()

    async def _run(self) -> None:
        while True:
            self.publish()
            await asyncio.sleep(self.interval)

    def publish(self) -> None:
        """Write this worker's traffic export now (a failure is logged once, then retried at
        the next interval)."""
        try:
            temporary = self._path.with_suffix(".tmp")
            temporary.write_bytes(_ENCODE(self._export()))
            temporary.replace(self._path)
        except OSError as error:
            if not self._failed:
                logger.warning("could not publish this worker's traffic for /status: %s", error)
                self._failed = True

    def peers(self) -> list[TrafficExport]:
        """The latest exports of the other live workers."""
        now = self._wall()
        found = []
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return []
        for entry in entries:
            name = entry.name
            stem = name.removesuffix(".msgpack")
            if stem == name or not stem.isdigit():
                continue
            worker = int(stem)
            if worker == self.worker or not self._alive(worker):
                continue
            try:
                export = _DECODE(Path(entry.path).read_bytes())
            except (OSError, msgspec.DecodeError, msgspec.ValidationError):
                continue  # removed meanwhile, or from an older format: skip it
            if now - export.at <= self.stale:
                found.append(export)
        return found
