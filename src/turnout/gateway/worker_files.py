"""A file per worker in a directory the gateway's workers share: written whole, read by the
others, removed when its worker stops.

Several workers of one gateway each keep their own state; what one shows of the whole gateway
(`/health`'s merge, the status page's traffic) comes from the files the others publish here. A
file is named by its worker's process id, replaced atomically (written aside, then renamed), and
read only while that process lives: a worker that crashed leaves a file nobody reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether process `pid` still runs."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkerFile:
    """This worker's file (``<pid><suffix>`` in `directory`), and the other live workers'."""

    __slots__ = ("_alive", "directory", "path", "suffix", "worker")

    def __init__(
        self,
        directory: Path,
        worker: int,
        suffix: str,
        is_alive: Callable[[int], bool] = alive,
    ) -> None:
        self.directory = directory
        self.worker = worker
        self.suffix = suffix
        self.path = directory / f"{worker}{suffix}"
        self._alive = is_alive

    def write(self, data: bytes) -> None:
        """Replace this worker's file with `data` at once (readers see the old or the new)."""
        temporary = self.path.with_suffix(".tmp")
        temporary.write_bytes(data)
        temporary.replace(self.path)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    def others(self) -> Iterator[bytes]:
        """The contents of the other live workers' files (a file removed meanwhile is
        skipped)."""
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return
        for entry in entries:
            stem = entry.name.removesuffix(self.suffix)
            if stem == entry.name or not stem.isdigit():
                continue
            worker = int(stem)
            if worker == self.worker or not self._alive(worker):
                continue
            try:
                yield Path(entry.path).read_bytes()
            except OSError:
                continue


async def cancel_quietly(task: asyncio.Task[None] | None) -> None:
    """Cancel a publishing task and wait for it to end."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
