"""`turnout serve` under a low open-file limit, with more silent sockets than it has files."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import openai

FILE_LIMIT = 256
MESSAGES: Any = [{"role": "user", "content": "Hello"}]


def _low_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, hard))


async def test_real_requests_work_while_300_silent_sockets_are_open(tmp_path: Path) -> None:
    config = tmp_path / "turnout.yaml"
    config.write_text(
        "server:\n  port: 0\n  header_timeout: 60\n"
        "model_list:\n  - model_name: chat\n    provider: simulated\n    model: a\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "turnout.cli",
        "serve",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_low_file_limit,
        env=dict(os.environ),
    )
    assert process.stderr is not None
    lines: list[str] = []
    try:
        async with asyncio.timeout(15):
            while not (found := re.search(r"listening on http://[\d.]+:(\d+)", "".join(lines))):
                line = (await process.stderr.readline()).decode()
                assert line, "turnout exited early:\n" + "".join(lines)
                lines.append(line)
        port = int(found.group(1))
        async with AsyncExitStack() as silent:
            for _ in range(300):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                silent.callback(writer.close)
            client = openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x", max_retries=0, timeout=10
            )
            async with client:
                for _ in range(5):
                    completion = await client.chat.completions.create(
                        model="chat", messages=MESSAGES
                    )
                    assert completion.choices
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            rest = (await process.stderr.read()).decode()
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    log = "".join(lines) + rest
    assert f"at most {FILE_LIMIT // 2} connections" in log
    assert f"connection cap of {FILE_LIMIT // 2} reached" in log
    assert "Traceback" not in log
