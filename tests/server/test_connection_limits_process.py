"""`turnout serve` processes (uvloop, real signals): a low open-file limit with more silent
sockets than files, refusals at the connection cap, and a drain on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import re
import resource
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import openai
from raw_http import BODY, read_response, request

FILE_LIMIT = 256
MESSAGES: Any = [{"role": "user", "content": "Hello"}]


def _low_file_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, hard))


@dataclass
class _Served:
    process: asyncio.subprocess.Process
    port: int
    lines: list[str] = field(default_factory=list)

    async def stop(self, within: float = 15) -> float:
        """SIGTERM, then seconds until the process exited (0 expected); the log is complete."""
        assert self.process.stderr is not None
        started = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(within):
            self.lines.append((await self.process.stderr.read()).decode())
            assert await self.process.wait() == 0
        return time.monotonic() - started

    @property
    def log(self) -> str:
        return "".join(self.lines)


@asynccontextmanager
async def _turnout_serve(
    tmp_path: Path, yaml: str, preexec_fn: Callable[[], None] | None = None
) -> AsyncIterator[_Served]:
    config = tmp_path / "turnout.yaml"
    config.write_text(yaml)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "turnout.cli",
        "serve",
        "--config",
        str(config),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=preexec_fn,
        env=dict(os.environ),
    )
    assert process.stderr is not None
    served = _Served(process, 0)
    try:
        async with asyncio.timeout(15):
            while not (found := re.search(r"listening on http://[\d.]+:(\d+)", served.log)):
                line = (await process.stderr.readline()).decode()
                assert line, "turnout exited early:\n" + served.log
                served.lines.append(line)
        served.port = int(found.group(1))
        yield served
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_real_requests_work_while_300_silent_sockets_are_open(tmp_path: Path) -> None:
    yaml = (
        "server:\n  port: 0\n  header_timeout: 60\n"
        "model_list:\n  - model_name: chat\n    provider: simulated\n    model: a\n"
    )
    async with _turnout_serve(tmp_path, yaml, _low_file_limit) as served:
        async with AsyncExitStack() as silent:
            for _ in range(300):
                _, writer = await asyncio.open_connection("127.0.0.1", served.port)
                silent.callback(writer.close)
            client = openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{served.port}/v1",
                api_key="sk-x",
                max_retries=0,
                timeout=10,
            )
            async with client:
                for _ in range(5):
                    completion = await client.chat.completions.create(
                        model="chat", messages=MESSAGES
                    )
                    assert completion.choices
        await served.stop()
    log = served.log
    assert f"at most {FILE_LIMIT // 2} connections" in log
    assert f"connection cap of {FILE_LIMIT // 2} reached" in log
    assert "Traceback" not in log


def _simulated(server: str, **behaviour: float) -> str:
    simulate = "".join(f"\n          {name}: {value}" for name, value in behaviour.items())
    return (
        f"server:\n  port: 0\n{server}"
        "model_list:\n  - model_name: chat\n    provider: simulated\n    model: a\n"
        f"    params:\n      simulate:{simulate}\n"
    )


async def test_every_connection_over_a_busy_cap_gets_a_503_under_uvloop(tmp_path: Path) -> None:
    """`turnout serve` runs uvloop, whose transports are not asyncio's classes: 50 clients
    over a cap of 4 busy connections each read a 503 in OpenAI's shape, and nothing is logged
    as an error."""
    yaml = _simulated("  max_connections: 4\n", latency=4)
    async with _turnout_serve(tmp_path, yaml) as served, AsyncExitStack() as stack:

        async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            stack.callback(writer.close)
            return reader, writer

        for _ in range(4):
            _, writer = await connect()
            writer.write(request())
        await asyncio.sleep(0.5)

        async def refused() -> tuple[int, dict[str, str], bytes]:
            reader, writer = await connect()
            writer.write(request())
            return await read_response(reader)

        answers = await asyncio.gather(*(refused() for _ in range(50)))
        await served.stop()
    for status, headers, body in answers:
        assert status == 503
        assert headers["retry-after"] == "1"
        error = msgspec.json.decode(body)["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert "connection limit" in error["message"]
    assert " ERROR " not in served.log
    assert "Traceback" not in served.log
    assert "connection cap of 4 reached" in served.log


async def test_a_drain_finishes_streams_and_answers_a_silent_body_at_once(tmp_path: Path) -> None:
    """SIGTERM with a stream in flight and a client that sent its headers but no body: the
    stream ends normally, the silent client gets its 408 within the body timeout, and the
    process exits long before the shutdown timeout."""
    server = "  body_timeout: 3\n  shutdown_timeout: 30\n  header_timeout: 30\n"
    yaml = _simulated(server, ttft=0.2, chunk_interval=0.1, output_tokens=20)
    async with _turnout_serve(tmp_path, yaml) as served:
        streamer, stream_writer = await asyncio.open_connection("127.0.0.1", served.port)
        silent, silent_writer = await asyncio.open_connection("127.0.0.1", served.port)
        try:
            stream_body = BODY[:-1] + b', "stream": true}'
            stream_writer.write(request(body=stream_body))
            silent_writer.write(request(body=b"", Content_Length="500"))
            async with asyncio.timeout(5):
                head = await streamer.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200")
            stopping = asyncio.create_task(served.stop(within=25))
            started = time.monotonic()
            status, _, body = await read_response(silent)
            answered_after = time.monotonic() - started
            async with asyncio.timeout(10):
                streamed = head + await streamer.read()
            exited_after = await stopping
        finally:
            stream_writer.close()
            silent_writer.close()
    assert status == 408
    assert "did not arrive in time" in msgspec.json.decode(body)["error"]["message"]
    assert answered_after < 3
    assert b"data: [DONE]" in streamed
    assert exited_after < 10
    assert "Traceback" not in served.log
