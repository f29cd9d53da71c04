"""A real `turnout serve` process for end-to-end tests: started, awaited until it listens, its
log kept, and stopped whatever happens."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

TURNOUT = [sys.executable, "-m", "turnout.cli"]
_LISTENING = re.compile(r"listening on http://[\d.]+:(\d+)")


@asynccontextmanager
async def serving(
    *args: str,
    env: dict[str, str] | None = None,
    listeners: int = 1,
    cwd: str | None = None,
    within: float = 30.0,
    stdout: int = asyncio.subprocess.DEVNULL,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int, list[str]]]:
    """Start `turnout serve ARGS`; yield the process, its port and its log lines (kept as
    they come) once `listeners` processes (the workers of ``--workers N``) listen; `stdout`:
    ``asyncio.subprocess.PIPE`` to read the process's standard output. Killed
    at the end if it is still running; a test that wants a clean stop sends SIGTERM itself.
    It runs in `cwd`, by default a directory of its own that goes with it, so that what a
    gateway writes beside it (a default SQLite file, spilled spend rows) never lands in the
    checkout."""
    with contextlib.ExitStack() as stack:
        if cwd is None:
            cwd = stack.enter_context(tempfile.TemporaryDirectory(prefix="turnout-serve-"))
        async with _serving(args, env, listeners, cwd, within, stdout) as served:
            yield served


@asynccontextmanager
async def _serving(
    args: tuple[str, ...],
    env: dict[str, str] | None,
    listeners: int,
    cwd: str,
    within: float,
    stdout: int,
) -> AsyncIterator[tuple[asyncio.subprocess.Process, int, list[str]]]:
    process = await asyncio.create_subprocess_exec(
        *TURNOUT,
        "serve",
        *args,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "FAKE_KEY": "sk-fake", **(env or {})},
        cwd=cwd,
    )
    assert process.stderr is not None
    lines: list[str] = []
    reader: asyncio.Task[None] | None = None
    try:
        port = listening = 0
        async with asyncio.timeout(within):
            while listening < listeners:
                line = (await process.stderr.readline()).decode()
                if not line:
                    raise AssertionError("turnout exited early:\n" + "".join(lines))
                lines.append(line)
                found = _LISTENING.search(line)
                if found:
                    port, listening = int(found.group(1)), listening + 1

        async def drain() -> None:
            assert process.stderr is not None
            while line := await process.stderr.readline():
                lines.append(line.decode())

        reader = asyncio.create_task(drain())
        yield process, port, lines
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
        if reader is not None:
            await reader


async def stop(process: asyncio.subprocess.Process, within: float = 30.0) -> int:
    """SIGTERM, then the exit code (killed if it does not exit within `within` seconds)."""
    if process.returncode is None:
        process.terminate()
        try:
            return await asyncio.wait_for(process.wait(), within)
        except TimeoutError:
            process.kill()
    return await process.wait()
