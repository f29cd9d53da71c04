"""The shape issue 13 is judged in: a real ``turnout serve`` process loaded from a LiteLLM
``config.yaml`` (one deployment per model, ``fallbacks``, priced in ``model_info``, no
``model_info.id`` unless a test gives one), in front of fake OpenAI upstreams, called with the
official `openai` SDK or, where the wire itself is the point, plain HTTP.

The process's standard output and standard error are both kept (the request log goes to one,
the access log to the other), so that a test can read them and search them for what must never
be written. OpenTelemetry settings of the environment running the tests are not inherited: a
test says which ``OTEL_*`` variables the gateway gets.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import openai
import yaml

from fakes.fake_openai import FakeOpenAI, Fault

#: Secrets that must never be written anywhere: the master key, the upstream's key, and a wrong
#: key a caller presents.
MASTER_KEY = "sk-master-SECRET-41c2e8a7d9"
UPSTREAM_KEY = "sk-upstream-SECRET-7f3a9b0c55"
WRONG_KEY = "sk-wrong-SECRET-990b4d1e2f"
#: A prompt and an answer that must never be written unless content capture is on.
PROMPT_MARKER = "PROMPT-MARKER-quokka-5521"
REPLY_MARKER = "REPLY-MARKER-narwhal-8830"
PROMPT = f"please summarise {PROMPT_MARKER} in three words"
REPLY = f"{REPLY_MARKER} three words here"
MESSAGES: list[Any] = [{"role": "user", "content": PROMPT}]
#: The upstream models the fakes serve; the fallback group uses the second, so that a span or a
#: log line shows which one an attempt asked for.
PRIMARY_MODEL = "gpt-4o-mini"
SPARE_MODEL = "gpt-4.1-mini"
#: Dollars per token.
INPUT_PRICE, OUTPUT_PRICE = 0.000001, 0.000002
#: What a derived deployment id looks like: never acceptable as the only name.
HASH_ONLY = re.compile(r"[0-9a-f]{16}")
#: A request id as the interface allows it: 1..128 printable ASCII characters, no spaces.
VALID_REQUEST_ID = re.compile(r"[\x21-\x7e]{1,128}")
#: The fake OpenAI's own request ids.
FAKE_UPSTREAM_ID = re.compile(r"req_[0-9a-f]{32}")

_LISTENING = re.compile(r"listening on http://[\d.]+:(\d+)")

T = TypeVar("T")


def upstream_fake(**options: Any) -> FakeOpenAI:
    """A fake OpenAI that wants the upstream key and answers `REPLY`."""
    options.setdefault("reply", REPLY)
    return FakeOpenAI(UPSTREAM_KEY, models=(PRIMARY_MODEL, SPARE_MODEL), **options)


def deployment(
    group: str, fake: FakeOpenAI, model: str = PRIMARY_MODEL, **model_info: Any
) -> dict[str, Any]:
    """A LiteLLM ``model_list`` entry of `group` on `fake`, priced; `model_info` adds to it
    (an ``id``, say)."""
    return {
        "model_name": group,
        "litellm_params": {
            "model": f"openai/{model}",
            "api_base": fake.url,
            "api_key": UPSTREAM_KEY,
        },
        "model_info": {
            "input_cost_per_token": INPUT_PRICE,
            "output_cost_per_token": OUTPUT_PRICE,
            **model_info,
        },
    }


def derived_name(group: str, model: str = PRIMARY_MODEL) -> str:
    """The readable name the interface derives for a deployment with no name or id."""
    return f"{group}/openai/{model}"


def write_config(
    directory: Path,
    models: Sequence[dict[str, Any]],
    *,
    router_settings: dict[str, Any] | None = None,
    master_key: str | None = None,
    server: dict[str, Any] | None = None,
) -> Path:
    """A LiteLLM config.yaml, with turnout's own ``server`` section beside it when given."""
    data: dict[str, Any] = {"model_list": list(models)}
    if router_settings:
        data["router_settings"] = router_settings
    if master_key is not None:
        data["general_settings"] = {"master_key": master_key}
    if server:
        data["server"] = server
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class Served:
    """A running ``turnout serve``: its port and what it has written so far."""

    process: asyncio.subprocess.Process
    port: int
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        """Everything written to standard output and standard error."""
        return "".join(self.stdout) + "".join(self.stderr)

    def sdk(self, key: str = "sk-caller", **options: Any) -> openai.AsyncOpenAI:
        """The official SDK, not retrying (what the gateway answered reaches the test)."""
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 30.0)
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key, **options)


def _environment(extra: dict[str, str] | None) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    return {**inherited, "PYTHONUNBUFFERED": "1", **(extra or {})}


@asynccontextmanager
async def serve(
    config: Path, *, env: dict[str, str] | None = None, within: float = 30.0
) -> AsyncIterator[Served]:
    """``turnout serve --config CONFIG --port 0`` in the config's directory, both output streams
    kept; stopped with SIGTERM (so that what it buffered is written), killed if it lingers."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "turnout.cli",
        "serve",
        "--config",
        str(config),
        "--port",
        "0",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_environment(env),
        cwd=config.parent,
    )
    assert process.stdout is not None and process.stderr is not None
    served = Served(process, 0)
    readers: list[asyncio.Task[None]] = []
    try:
        async with asyncio.timeout(within):
            while not served.port:
                line = (await process.stderr.readline()).decode(errors="replace")
                if not line:
                    raise AssertionError("turnout exited early:\n" + "".join(served.stderr))
                served.stderr.append(line)
                found = _LISTENING.search(line)
                if found:
                    served.port = int(found.group(1))

        async def drain(stream: asyncio.StreamReader, into: list[str]) -> None:
            while line := await stream.readline():
                into.append(line.decode(errors="replace"))

        readers = [
            asyncio.create_task(drain(process.stdout, served.stdout)),
            asyncio.create_task(drain(process.stderr, served.stderr)),
        ]
        yield served
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                process.kill()
        await process.wait()
        if readers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*readers), 10)


async def eventually(read: Callable[[], T], done: Callable[[T], bool], seconds: float = 10.0) -> T:
    """Read every tenth of a second until `done` holds or `seconds` pass; the last reading
    either way (the caller asserts on it, so that a failure shows what was there)."""

    async def reading() -> T:
        return read()

    return await eventually_async(reading, done, seconds)


async def eventually_async(
    read: Callable[[], Awaitable[T]], done: Callable[[T], bool], seconds: float = 10.0
) -> T:
    """`eventually` for a reading that has to be awaited."""
    deadline = time.monotonic() + seconds
    while True:
        value = await read()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.1)


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of `text` that is a JSON object."""
    found: list[dict[str, Any]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            value = json.loads(line)
        except ValueError:
            continue
        if isinstance(value, dict):
            found.append(value)
    return found


@dataclass
class RawAnswer:
    """An HTTP answer as it came off the socket."""

    status: int
    headers: dict[str, list[str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[-1] if values else None

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


async def raw_request(
    port: int,
    method: str,
    path: str,
    headers: Sequence[tuple[bytes, bytes]] = (),
    body: bytes = b"",
    within: float = 15.0,
) -> RawAnswer:
    """One HTTP/1.1 request written byte for byte (header values a client library would refuse
    included), the connection closed after it; the status, headers and body read back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        lines = [f"{method} {path} HTTP/1.1".encode(), f"Host: 127.0.0.1:{port}".encode()]
        lines += [b"Connection: close", f"Content-Length: {len(body)}".encode()]
        lines += [name + b": " + value for name, value in headers]
        writer.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        await writer.drain()
        async with asyncio.timeout(within):
            raw = await reader.read()
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parsed: dict[str, list[str]] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        parsed.setdefault(name.strip().lower(), []).append(value.strip())
    return RawAnswer(int(status_line.split()[1]), parsed, _unchunked(rest, parsed))


def _unchunked(body: bytes, headers: dict[str, list[str]]) -> bytes:
    if "chunked" not in ",".join(headers.get("transfer-encoding", [])).lower():
        return body
    out = b""
    while body:
        size_line, _, body = body.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, body = out + body[:size], body[size + 2 :]
    return out


async def http(
    method: str,
    url: str,
    *,
    headers: dict[str, str] | None = None,
    json_body: Any = None,
    data: bytes | str | None = None,
    within: float = 30.0,
) -> tuple[int, dict[str, str], str]:
    """A plain HTTP exchange: status, headers (names lowercased) and the whole body as text."""
    timeout = aiohttp.ClientTimeout(total=within)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.request(method, url, headers=headers, json=json_body, data=data) as response,
    ):
        text = await response.text(errors="replace")
        lowered = {name.lower(): value for name, value in response.headers.items()}
        return response.status, lowered, text


def sse_lines(text: str) -> list[str]:
    """The non-empty lines of an event stream."""
    return [line for line in text.splitlines() if line.strip()]


def summary_comment(lines: Sequence[str]) -> tuple[int, dict[str, Any]] | None:
    """The stream's ``: turnout {...}`` comment: its index among `lines` and its JSON."""
    for index, line in enumerate(lines):
        if line.startswith(": turnout "):
            value = json.loads(line[len(": turnout ") :])
            assert isinstance(value, dict), f"the summary comment is not a JSON object: {line}"
            return index, value
    return None


def walk(value: Any, path: str = "") -> list[tuple[str, Any]]:
    """Every (path, leaf) of a JSON value."""
    if isinstance(value, dict):
        return [pair for key, item in value.items() for pair in walk(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [pair for index, item in enumerate(value) for pair in walk(item, f"{path}[{index}]")]
    return [(path, value)]


def objects_naming(value: Any, name: str) -> list[dict[str, Any]]:
    """The innermost JSON objects of `value` that describe `name`: those with a string field
    equal to it, or the object filed under it as a key."""
    found: list[dict[str, Any]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            inner = objects_naming(item, name)
            if not inner and key == name and isinstance(item, dict):
                inner = [item]
            found += inner
        if not found and name in value.values():
            found.append(value)
    elif isinstance(value, list):
        for item in value:
            found += objects_naming(item, name)
    return found


def numbers(value: Any) -> dict[str, float]:
    """Every numeric leaf of a JSON value by its path (booleans excluded)."""
    return {
        path: float(leaf)
        for path, leaf in walk(value)
        if isinstance(leaf, int | float) and not isinstance(leaf, bool)
    }


@dataclass
class Topology:
    """The gateway and its fakes. Groups: ``chat`` (falls back to ``spare``), ``spare`` (its
    own upstream model, `SPARE_MODEL`), ``solo`` (retries only), ``broken`` (every answer a
    500), ``limited`` (every answer a 429 with Retry-After) and ``fragile`` (no fallback)."""

    served: Served
    primary: FakeOpenAI
    spare: FakeOpenAI
    solo: FakeOpenAI
    broken: FakeOpenAI
    limited: FakeOpenAI
    fragile: FakeOpenAI


@asynccontextmanager
async def topology(
    directory: Path,
    *,
    master_key: str | None = None,
    server: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    spare_info: dict[str, Any] | None = None,
) -> AsyncIterator[Topology]:
    """The standard gateway of these tests over six fakes; `spare_info` adds to the spare
    deployment's ``model_info`` (an ``id``, say)."""
    async with contextlib.AsyncExitStack() as stack:
        fakes = [await stack.enter_async_context(upstream_fake()) for _ in range(6)]
        primary, spare, solo, broken, limited, fragile = fakes
        broken.set_default(Fault.server_error())
        limited.set_default(Fault.rate_limited(retry_after=1))
        models = [
            deployment("chat", primary),
            deployment("spare", spare, SPARE_MODEL, **(spare_info or {})),
            deployment("solo", solo),
            deployment("broken", broken),
            deployment("limited", limited),
            deployment("fragile", fragile),
        ]
        settings = {"num_retries": 1, "fallbacks": [{"chat": ["spare"]}], "timeout": 30}
        config = write_config(
            directory, models, router_settings=settings, master_key=master_key, server=server
        )
        served = await stack.enter_async_context(serve(config, env=env))
        yield Topology(served, primary, spare, solo, broken, limited, fragile)
