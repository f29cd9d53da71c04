"""A file per worker in a directory the gateway's workers share: written whole, read by the
others, removed when its worker stops.

Several workers of one gateway each keep their own state; what one shows of the whole gateway
(`/health`'s merge, the status page's traffic) comes from the files the others publish here. A
file is named by its worker's process id, replaced atomically (written aside, then renamed), and
read only while that process lives: a worker that crashed leaves a file nobody reads.

A directory listing taken while a peer renames its new file into place may leave that file out
(POSIX leaves it unspecified whether `readdir` reports an entry added meanwhile, and a rename
adds one), so a reader remembers every peer it has listed once and opens their files by name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from turnout.processes import alive


class WorkerFile:
    """This worker's file (``<pid><suffix>`` in `directory`), and the other live workers'."""

    __slots__ = ("_alive", "_peers", "directory", "path", "suffix", "worker")

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
        #: Peers listed once; read by name from then on, until their process ends.
        self._peers: set[int] = set()

    def write(self, data: bytes) -> None:
        """Replace this worker's file with `data` at once (readers see the old or the new)."""
        temporary = self.directory / f"{self.worker}{self.suffix}.tmp"
        temporary.write_bytes(data)
        temporary.replace(self.path)

    def remove(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    def others(self) -> Iterator[bytes]:
        """The contents of the other live workers' files (a file removed meanwhile is
        skipped)."""
        self._peers.update(self._listed())
        for worker in sorted(self._peers):
            if not self._alive(worker):
                self._peers.discard(worker)
                continue
            try:
                yield (self.directory / f"{worker}{self.suffix}").read_bytes()
            except OSError:
                continue

    def _listed(self) -> Iterator[int]:
        """The other workers whose files the directory lists now."""
        try:
            entries = list(os.scandir(self.directory))
        except OSError:
            return
        for entry in entries:
            stem = entry.name.removesuffix(self.suffix)
            if stem != entry.name and stem.isdigit() and int(stem) != self.worker:
                yield int(stem)


async def cancel_quietly(task: asyncio.Task[None] | None) -> None:
    """Cancel a publishing task and wait for it to end."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
