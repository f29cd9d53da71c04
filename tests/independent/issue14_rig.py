"""The shape issue 14 is judged in: a real `turnout serve` process, started from a LiteLLM
``config.yaml`` written as LiteLLM documents it (one deployment per model, ``fallbacks``, a
master key), in front of the provider fakes of tests/fakes; or ``turnout serve --demo``. Clients
are the official `openai` and `anthropic` SDKs with their default retries, pointed at it over
127.0.0.1.

Model groups of the served config:

- ``gpt``: an OpenAI deployment (the OpenAI fake), ``claude``: an Anthropic one (the Anthropic
  fake): every API is tried through a provider that speaks it and one that is translated to.
- ``flaky-*``, ``cut-*`` (falling back to ``gpt`` or ``claude``) and ``lone-*`` (no fallback):
  one per resilience scenario (`BROKEN_GROUPS`), each on a fake of its own that its test
  breaks.
- ``house-model``: an alias of ``claude`` (LiteLLM's ``router_settings.model_group_alias``).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import yaml

from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_openai import FakeOpenAI
from serve_process import serving

MASTER = "sk-issue14-master-7d2e"
WRONG_KEY = "sk-not-the-master-key"
ANTHROPIC_KEY = "sk-ant-fake"
OPENAI_KEY = "sk-fake"
#: Every secret the gateway knows: none may show in an answer, an event or a log.
SECRETS = (MASTER, ANTHROPIC_KEY, OPENAI_KEY)


#: The model groups a resilience test breaks, each on a fake of its own so that one test's
#: failures (and the cooldowns they cause) never reach another: (group, family, fallback).
ROUTES = ("responses", "messages")
FAMILIES = ("gpt", "claude")
BROKEN_GROUPS: tuple[tuple[str, str, str | None], ...] = (
    *((f"flaky-{f}-{r}", f, f) for f in FAMILIES for r in ROUTES),
    *((f"cut-{f}-{r}", f, f) for f in FAMILIES for r in ROUTES),
    *(
        (f"lone-{f}-{r}-{kind}", f, None)
        for f in FAMILIES
        for r in ROUTES
        for kind in ("cut", "error_event")
    ),
)

Fake = FakeOpenAI | FakeAnthropic


@dataclass
class Fakes:
    """The fake behind each model group."""

    by_group: dict[str, Fake]

    @property
    def gpt(self) -> FakeOpenAI:
        fake = self.by_group["gpt"]
        assert isinstance(fake, FakeOpenAI)
        return fake

    @property
    def claude(self) -> FakeAnthropic:
        fake = self.by_group["claude"]
        assert isinstance(fake, FakeAnthropic)
        return fake

    def reset(self) -> None:
        for fake in self.by_group.values():
            fake.reset()
            fake.set_default(None)


@dataclass
class Served:
    """A running gateway: its URL, its log, the fakes behind it."""

    url: str
    log: list[str]
    fakes: Fakes

    def openai(self, key: str = MASTER, **options: Any) -> openai.AsyncOpenAI:
        """The OpenAI SDK, with its default retries unless told otherwise."""
        options.setdefault("timeout", 20.0)
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key=key, **options)

    def anthropic(self, key: str | None = MASTER, **options: Any) -> anthropic.AsyncAnthropic:
        """The Anthropic SDK (``x-api-key``), as Claude Code points it: ``ANTHROPIC_BASE_URL``
        is the gateway's root."""
        options.setdefault("timeout", 20.0)
        return anthropic.AsyncAnthropic(base_url=self.url, api_key=key, **options)


def model_entry(name: str, family: str, url: str, **params: Any) -> dict[str, Any]:
    model = "anthropic/claude-sonnet-4-5" if family == "anthropic" else "openai/gpt-4o-mini"
    key = ANTHROPIC_KEY if family == "anthropic" else OPENAI_KEY
    return {
        "model_name": name,
        "litellm_params": {"model": model, "api_base": url, "api_key": key, **params},
    }


def config_of(fakes: Fakes) -> dict[str, Any]:
    """LiteLLM's documented shape: one deployment per model, ``fallbacks``, a master key."""
    families = {"gpt": "openai", "claude": "anthropic"}
    family_of = {"gpt": "gpt", "claude": "claude"} | {g: f for g, f, _ in BROKEN_GROUPS}
    fallbacks = [{group: [fallback]} for group, _, fallback in BROKEN_GROUPS if fallback]
    return {
        "model_list": [
            model_entry(group, families[family_of[group]], fake.url)
            for group, fake in fakes.by_group.items()
        ],
        "router_settings": {
            "fallbacks": fallbacks,
            "model_group_alias": {"house-model": "claude"},
        },
        "general_settings": {"master_key": MASTER},
    }


def write_config(directory: Path, data: dict[str, Any], name: str = "config.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@asynccontextmanager
async def served_fakes(directory: Path) -> AsyncIterator[Served]:
    """`turnout serve --config` of `config_of`, a fake behind each group."""
    async with AsyncExitStack() as stack:
        groups = [("gpt", "gpt"), ("claude", "claude")] + [(g, f) for g, f, _ in BROKEN_GROUPS]
        by_group: dict[str, Fake] = {}
        for group, family in groups:
            fake: Fake = FakeOpenAI() if family == "gpt" else FakeAnthropic()
            by_group[group] = await stack.enter_async_context(fake)
        fakes = Fakes(by_group)
        path = write_config(directory, config_of(fakes))
        _, port, log = await stack.enter_async_context(
            serving("--config", str(path), "--port", "0")
        )
        yield Served(f"http://127.0.0.1:{port}", log, fakes)


@asynccontextmanager
async def served_demo() -> AsyncIterator[tuple[str, list[str]]]:
    """``turnout serve --demo``, unchanged: its URL and log."""
    async with serving("--demo", "--port", "0") as (_, port, log):
        yield f"http://127.0.0.1:{port}", log


@dataclass
class Ran:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


async def turnout(*args: str, env: dict[str, str] | None = None, within: float = 30.0) -> Ran:
    """One `turnout` command run to its end (not `serve`, or a `serve` expected to fail)."""
    environment = {key: value for key, value in os.environ.items() if key not in (env or {})}
    environment.update({key: value for key, value in (env or {}).items() if value})
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "turnout.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.kill()
        out, err = await process.communicate()
        return Ran(-9, out.decode(), err.decode() + "\n[killed: still running]")
    assert process.returncode is not None
    return Ran(process.returncode, out.decode(), err.decode())


def error_json(error: openai.APIStatusError | anthropic.APIStatusError) -> Any:
    try:
        return json.loads(error.response.text)
    except ValueError:
        return {"unparsed": error.response.text}


@dataclass
class Event:
    """One server-sent event as it came over the wire."""

    name: str | None
    data: Any


async def raw_events(
    url: str, body: dict[str, Any], headers: dict[str, str]
) -> tuple[int, list[Event], str]:
    """POST `body` as a stream and read its server-sent events to the end, with no SDK in
    between (it hides ``ping`` and turns an ``error`` event into an exception): the status, the
    events (``data`` parsed as JSON, ``[DONE]`` kept as text) and how the stream ended
    ("clean", or the error that broke the connection)."""
    events: list[Event] = []
    name: str | None = None
    data: list[str] = []
    ending = "clean"
    timeout = aiohttp.ClientTimeout(total=20)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.post(url, json=body, headers=headers) as response,
    ):
        if response.status != 200:
            return response.status, [Event(None, await response.text())], "refused"
        try:
            async for raw in response.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].strip())
                elif not line and (data or name):
                    text = "\n".join(data)
                    try:
                        parsed: Any = json.loads(text)
                    except ValueError:
                        parsed = text
                    events.append(Event(name, parsed))
                    name, data = None, []
        except (TimeoutError, aiohttp.ClientError) as error:
            ending = f"broken: {error!r}"
    return 200, events, ending
