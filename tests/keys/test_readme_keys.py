"""README's virtual-key command does what it says, run as a reader would run it: against
`turnout serve --config examples/keys.yaml`, through bash and curl."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import socket
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _command() -> str:
    readme = (ROOT / "README.md").read_text()
    found = re.search(
        r"<!-- keys-command -->\n```sh\n(.*?)```\n<!-- /keys-command -->", readme, re.S
    )
    assert found, "README lost its keys command"
    return found.group(1)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_the_readme_command_makes_a_key_and_uses_it(tmp_path: Path) -> None:
    if shutil.which("curl") is None or shutil.which("bash") is None:
        pytest.skip("the README command needs bash and curl")
    port = _free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "turnout.cli",
        "serve",
        "--config",
        str(ROOT / "examples" / "keys.yaml"),
        "--port",
        str(port),
        cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert server.stderr is not None
    try:
        async with asyncio.timeout(15):
            while b"listening on" not in (line := await server.stderr.readline()):
                assert line, "turnout exited early"
        command = _command().replace("localhost:4000", f"127.0.0.1:{port}")
        shell = await asyncio.create_subprocess_exec(
            "bash", "-c", command, stdout=asyncio.subprocess.PIPE
        )
        output, _ = await asyncio.wait_for(shell.communicate(), 30)
    finally:
        server.terminate()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait(), 10)
    answer = json.loads(output)
    assert answer["choices"][0]["message"]["content"]
    assert (tmp_path / "turnout-keys.db").exists()
