"""What the hardening probes share: raw HTTP on a socket, OpenAI's error shape, a real
`turnout serve` process, and the log checks a client's input must pass.

The probes judge the gateway from outside only: bytes on 127.0.0.1, the official SDK, the
process's own log. Nothing here reaches into the gateway's internals.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import queue
import re
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The four fields of every OpenAI error object.
OPENAI_ERROR_FIELDS = frozenset({"message", "type", "param", "code"})
TURNOUT = [sys.executable, "-m", "turnout.cli"]
TESTS_DIR = Path(__file__).resolve().parent.parent


@dataclass
class RawAnswer:
    """An HTTP answer as it came off the socket."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes

    @property
    def raw(self) -> bytes:
        """Everything received, headers included, for "nothing leaks" checks."""
        lines = "".join(f"{name}: {value}\r\n" for name, value in self.headers.items())
        return f"HTTP/1.1 {self.status} {self.reason}\r\n{lines}\r\n".encode() + self.body


def openai_error(body: bytes) -> dict[str, Any]:
    """The error object of an OpenAI-shaped error body; fails the test on any other shape."""
    try:
        decoded = json.loads(body)
    except ValueError:
        raise AssertionError(f"the error body is not JSON: {body[:300]!r}") from None
    assert isinstance(decoded, dict), f"the error body is not an object: {body[:300]!r}"
    assert set(decoded) == {"error"}, f"not OpenAI's error shape: {body[:300]!r}"
    error = decoded["error"]
    assert isinstance(error, dict), f"`error` is not an object: {body[:300]!r}"
    assert set(error) >= OPENAI_ERROR_FIELDS, f"`error` lacks OpenAI's fields: {body[:300]!r}"
    assert isinstance(error["message"], str), f"`error.message` is not a string: {body[:300]!r}"
    assert error["message"], "`error.message` is empty"
    assert isinstance(error["type"], str), f"`error.type` is not a string: {body[:300]!r}"
    return error


async def read_answer(reader: asyncio.StreamReader) -> RawAnswer:
    """One HTTP/1.1 answer (Content-Length, chunked, or up to the close)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    _, status, *reason = status_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in header_lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = await _read_chunked(reader)
    else:
        body = await reader.read()
    return RawAnswer(int(status), reason[0] if reason else "", headers, body)


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return b"".join(parts)
        parts.append(await reader.readexactly(size))
        await reader.readexactly(2)


async def raw_exchange(
    port: int, data: bytes, *, within: float = 10.0, close_write: bool = False
) -> RawAnswer:
    """Send `data` as is on a fresh connection and read one answer, all within `within` s."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        async with asyncio.timeout(within):
            writer.write(data)
            await writer.drain()
            if close_write:
                writer.write_eof()
            return await read_answer(reader)
    finally:
        writer.close()
        await _closed(writer)


async def _closed(writer: asyncio.StreamWriter) -> None:
    with suppress(ConnectionError, OSError):
        await writer.wait_closed()


def http_request(
    path: str,
    body: bytes = b"",
    *,
    method: str = "POST",
    headers: Iterable[tuple[str, str | bytes]] = (),
    content_length: bool = True,
) -> bytes:
    """The bytes of one HTTP/1.1 request; header values may be raw bytes (sent unencoded)."""
    lines = [f"{method} {path} HTTP/1.1\r\n".encode(), b"Host: 127.0.0.1\r\n"]
    for name, value in headers:
        raw = value if isinstance(value, bytes) else value.encode("latin-1")
        lines.append(name.encode() + b": " + raw + b"\r\n")
    if content_length:
        lines.append(f"Content-Length: {len(body)}\r\n".encode())
    return b"".join(lines) + b"\r\n" + body


def chat_body(text: str = "Hello", **fields: Any) -> bytes:
    return json.dumps(
        {"model": "chat", "messages": [{"role": "user", "content": text}], **fields}
    ).encode()


# ---- logs ---------------------------------------------------------------------------------


def assert_quiet(records: Iterable[logging.LogRecord]) -> None:
    """A client's input is worth at most a one-line log at INFO or DEBUG: no warning, no error,
    no traceback."""
    loud = [
        f"{record.levelname} {record.name}: {record.getMessage()}"
        for record in records
        if record.levelno >= logging.WARNING
        or record.exc_info is not None
        or "\n" in record.getMessage()
    ]
    assert not loud, "client input made the gateway log:\n" + "\n".join(loud)


def assert_quiet_lines(lines: Iterable[str], *, loudest: str = "INFO") -> None:
    """`assert_quiet` for a process's stderr lines: nothing above `loudest`, no traceback."""
    levels = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
    above = "|".join(levels[levels.index(loudest) + 1 :])
    loud = [
        line
        for line in lines
        if re.search(rf" ({above}) ", line) or line.startswith(("Traceback", "  File "))
    ]
    assert not loud, "client input made the gateway log:\n" + "".join(loud)


# ---- real processes: `turnout serve` and the fake OpenAI command line ------------------------


@dataclass
class ServedProcess:
    """A process serving on 127.0.0.1, its base URL and every line it wrote to stderr so far."""

    process: subprocess.Popen[bytes]
    url: str
    lines: list[str] = field(default_factory=list, repr=False)

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1].split("/")[0])

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def lines_since(self, mark: int, settle: float = 0.3) -> list[str]:
        """The lines written after the first `mark` ones, once the process had `settle` s."""
        time.sleep(settle)
        return self.lines[mark:]


@contextmanager
def served(
    command: list[str], announced: str, *, fd_limit: int | None = None
) -> Iterator[ServedProcess]:
    """Run `command` until the block ends; `announced` matches the line that names its URL.
    `fd_limit`: the process's limit on open files (RLIMIT_NOFILE), as a small host would set."""

    def limit_files() -> None:
        if fd_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (fd_limit, fd_limit))

    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=dict(os.environ),
        # The fake upstreams live in tests/fakes, outside the installed package.
        cwd=TESTS_DIR,
        preexec_fn=limit_files,
    )
    assert process.stdout is not None
    found = queue.Queue[str]()
    lines: list[str] = []

    def drain() -> None:
        assert process.stdout is not None
        for raw in process.stdout:
            line = raw.decode(errors="replace")
            lines.append(line)
            match = re.search(announced, line)
            if match:
                found.put(match.group(1))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        url = ""
        started = time.monotonic()
        while not url and process.poll() is None and time.monotonic() - started < 20:
            with suppress(queue.Empty):
                url = found.get(timeout=0.1)
        if not url:
            reader.join(2)
            raise AssertionError("the process did not start:\n" + "".join(lines))
        yield ServedProcess(process, url, lines)
    finally:
        process.kill()
        process.wait(10)
        reader.join(10)
        process.stdout.close()


def turnout_serve(
    config: Path, *args: str, fd_limit: int | None = None
) -> AbstractContextManager[ServedProcess]:
    """`turnout serve --config CONFIG` on a free port of 127.0.0.1."""
    command = [*TURNOUT, "serve", "--config", str(config), "--host", "127.0.0.1", "--port", "0"]
    return served([*command, *args], r"listening on (http://127\.0\.0\.1:\d+)", fd_limit=fd_limit)


def fake_openai_process() -> AbstractContextManager[ServedProcess]:
    """The fake OpenAI upstream as its own process (any key, any model)."""
    command = [sys.executable, "-m", "fakes.fake_openai"]
    return served(command, r"listening on (http://127\.0\.0\.1:\d+/v1)")


def write_config(
    path: Path,
    upstream: str,
    *,
    server: dict[str, Any] | None = None,
    groups: Iterable[str] = ("chat",),
) -> Path:
    """A turnout config file: one OpenAI-compatible deployment on `upstream` per group."""
    data = {
        "server": {"log_level": "info", **(server or {})},
        # With a master key the key store is on: beside the config, not in the working directory.
        "store": {"url": f"sqlite:///{path.parent / 'keys.db'}"},
        "model_list": [
            {
                "model_name": group,
                "provider": "openai-compatible",
                "model": "gpt-4o-mini",
                "base_url": upstream,
                "api_key": "sk-upstream-probe-key",
            }
            for group in groups
        ],
    }
    path.write_text(json.dumps(data, indent=2))  # JSON is YAML
    return path
