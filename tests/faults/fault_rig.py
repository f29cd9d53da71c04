"""The rig every fault scenario runs on, in the two shapes users run turnout in.

``group``: turnout's own config, one model group ``chat`` of two deployments tried in priority
order (``chat`` first, then ``spare``), everything else at turnout's defaults.

``litellm``: what most users run: a LiteLLM ``config.yaml`` written to disk and read through
turnout's own loader, one deployment per model (``chat``, ``spare``, ``long``), ``chat``
falling back to ``spare`` (``fallbacks``) and, when its prompt is too long, to ``long``
(``context_window_fallbacks``), ``num_retries: 2`` and ``timeout: 30`` (LiteLLM's per-call
limit), everything else at turnout's defaults.

In both, the deployment ids are ``chat``, ``spare`` and ``long``, so a scenario asserts the same
things in either shape, and the client is the official ``openai`` SDK at its default retries
(two) with a 30 s timeout, which it sends to the gateway as the caller's deadline. Time is real.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import AsyncIterator, Awaitable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp
import msgspec
import openai

from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_openai import FakeOpenAI
from fakes.fake_server.server import ReceivedRequest
from gateway_harness import RunningGateway, gateway_config, running_gateway
from litellm_shape import one_per_model
from turnout import Deployment, RoutingConfig, Secret
from turnout.config.load import load_config
from turnout.config.router import FallbackConfig

Shape = Literal["group", "litellm"]
SHAPES: tuple[Shape, ...] = ("group", "litellm")
QUESTION: Any = [{"role": "user", "content": "Tell me about turnouts"}]
ANSWER = "Fake answer to: Tell me about turnouts"
#: The caller's timeout, which the SDK sends along (``x-stainless-read-timeout``).
SDK_TIMEOUT = 30.0
#: Seconds within which a silent, stalled or slow deployment must be left and the answer come
#: from elsewhere: half the 30 s deadline. The learned limits never go below their floors (10 s
#: for a whole answer and between chunks, 5 s for a first token), which real providers' slow
#: moments need; the fallback's answer comes on top.
LEAVE_WITHIN = 15.0
#: Quick normal requests that give a deployment the observations production traffic would.
WARM_UP = 30
_WARM_UP_BATCH = 5
GPT = "gpt-4o-mini"
CLAUDE = "claude-sonnet-4-5"

T = TypeVar("T")
#: Built once: every SDK client otherwise loads the system's CA bundle afresh (plain HTTP here).
_TLS = ssl.create_default_context()


@dataclass
class Answered:
    """A whole answer as the client got it."""

    text: str
    deployment: str
    attempts: int
    elapsed: float
    choices: int


@dataclass
class Streamed:
    """A stream as the client read it, to its end."""

    text: str
    ids: set[str]
    usage: Any
    finish: str | None
    deployment: str
    elapsed: float


@dataclass
class Failed:
    """An error as the client got it, after the SDK's own retries (if it made any)."""

    error: openai.APIError
    elapsed: float

    @property
    def status(self) -> int | None:
        return self.error.status_code if isinstance(self.error, openai.APIStatusError) else None

    @property
    def should_retry(self) -> str | None:
        if isinstance(self.error, openai.APIStatusError):
            return self.error.response.headers.get("x-should-retry")
        return None

    @property
    def code(self) -> str | None:
        code = getattr(self.error, "code", None)
        return code if isinstance(code, str) else None


@dataclass
class Rig:
    shape: Shape
    gateway: RunningGateway
    #: The first choice (``chat``), its stand-in (``spare``: the group's second deployment or
    #: the fallback model) and the model for prompts too long (``long``).
    primary: FakeOpenAI
    spare: FakeOpenAI
    long: FakeOpenAI
    client: openai.AsyncOpenAI
    #: With ``claude_spare``, the Anthropic deployment in ``spare``'s place (``spare``'s fake
    #: is then in no deployment).
    claude_fake: FakeAnthropic | None = None
    fakes: dict[str, FakeOpenAI | FakeAnthropic] = field(default_factory=dict)

    @property
    def claude(self) -> FakeAnthropic:
        assert self.claude_fake is not None, "the rig has no Claude deployment"
        return self.claude_fake

    async def ask(self, **options: Any) -> Answered:
        """One whole answer to the question; asserts it is the right one."""
        started = time.monotonic()
        raw = await self.client.chat.completions.with_raw_response.create(
            model="chat", messages=QUESTION, **options
        )
        elapsed = time.monotonic() - started
        answer = raw.parse()
        text = answer.choices[0].message.content or ""
        deployment = raw.headers["x-turnout-deployment"]
        attempts = int(raw.headers["x-turnout-attempts"])
        return Answered(text, deployment, attempts, elapsed, len(answer.choices))

    async def stream(self, **options: Any) -> Streamed:
        started = time.monotonic()
        raw = await self.client.chat.completions.with_raw_response.create(
            model="chat", messages=QUESTION, stream=True, **options
        )
        text, ids, usage, finish = "", set(), None, None
        async for chunk in raw.parse():
            ids.add(chunk.id)
            if chunk.choices:
                text += chunk.choices[0].delta.content or ""
                finish = chunk.choices[0].finish_reason or finish
            if chunk.usage is not None:
                usage = chunk.usage
        elapsed = time.monotonic() - started
        return Streamed(text, ids, usage, finish, raw.headers["x-turnout-deployment"], elapsed)

    async def fails(self, *, stream: bool = False, **options: Any) -> Failed:
        """The error the client gets for the question (asserts it gets one)."""
        started = time.monotonic()
        try:
            if stream:
                await self.stream(**options)
            else:
                await self.ask(**options)
        except openai.APIError as error:
            return Failed(error, time.monotonic() - started)
        raise AssertionError("the request was answered; an error was expected")

    async def warm_up(self, *, stream: bool = False, count: int = WARM_UP) -> None:
        """Quick normal requests, as production traffic would send before a fault (a few at a
        time), so that the deployments' learned limits exist; then the fakes' records are
        cleared."""

        async def one() -> None:
            if stream:
                assert (await self.stream()).text == ANSWER
            else:
                assert (await self.ask()).text == ANSWER

        for start in range(0, count, _WARM_UP_BATCH):
            await asyncio.gather(*(one() for _ in range(min(_WARM_UP_BATCH, count - start))))
        for fake in self.fakes.values():
            fake.requests.clear()

    async def health(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.gateway.url}/health") as response,
        ):
            assert response.status == 200
            return msgspec.json.decode(await response.read(), type=dict[str, Any])

    async def deployment(self, deployment_id: str) -> dict[str, Any]:
        report = await self.health()
        [entry] = [d for d in report["deployments"] if d["id"] == deployment_id]
        assert isinstance(entry, dict)
        return entry

    async def healthy(self, *, stream: bool = False) -> None:
        """The gateway still answers, nothing is left in flight, /health says ok."""
        if stream:
            assert (await self.stream()).text == ANSWER
        else:
            assert (await self.ask()).text == ANSWER
        await asyncio.sleep(0.05)
        report = await self.health()
        assert report["status"] == "ok", report
        assert all(d["in_flight"] == 0 for d in report["deployments"]), report


def chats(fake: FakeOpenAI | FakeAnthropic) -> list[ReceivedRequest]:
    """The model calls a fake received (chat completions or messages)."""
    paths = ("/v1/chat/completions", "/v1/messages")
    return [r for r in fake.requests if r.path in paths]


def arrivals(fake: FakeOpenAI | FakeAnthropic, since: float) -> list[float]:
    """Seconds after `since` (a ``time.monotonic()``) at which each model call arrived."""
    return [round(r.received_at - since, 3) for r in chats(fake)]


async def within(seconds: float, awaitable: Awaitable[T], what: str) -> T:
    """`awaitable`'s result, or a failed assertion naming `what` after `seconds`: a scenario
    that is not rescued in time fails at once instead of waiting out the caller's deadline."""
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except TimeoutError:
        raise AssertionError(f"{what}: no outcome within {seconds:g}s") from None


def sdk_client(gateway_url: str) -> openai.AsyncOpenAI:
    """The SDK as users leave it: two retries of its own; a realistic timeout."""
    return openai.AsyncOpenAI(
        base_url=f"{gateway_url}/v1",
        api_key="sk-anything",
        timeout=SDK_TIMEOUT,
        http_client=openai.DefaultAsyncHttpxClient(verify=_TLS),
    )


def _litellm_file(
    path: Path, urls: dict[str, str], claude_spare: bool, alone: bool, settings: dict[str, Any]
) -> Path:
    data = one_per_model(urls["chat"], urls["spare"], ids=True, num_retries=2, timeout=30)
    data["model_list"].append(
        {
            "model_name": "long",
            "litellm_params": {"model": f"openai/{GPT}", "api_base": urls["long"]},
            "model_info": {"id": "long"},
        }
    )
    data["model_list"][2]["litellm_params"]["api_key"] = "sk-fake"
    if claude_spare:
        data["model_list"][1]["litellm_params"] = {
            "model": f"anthropic/{CLAUDE}",
            "api_base": urls["spare"],
            "api_key": "sk-ant-fake",
        }
    data["router_settings"]["context_window_fallbacks"] = [{"chat": ["long"]}]
    if alone:
        del data["router_settings"]["fallbacks"]
    data["router_settings"].update(settings)
    path.write_text(json.dumps(data, indent=2))  # JSON is YAML
    return path


def _group_config(
    urls: dict[str, str], claude_spare: bool, alone: bool, settings: dict[str, Any]
) -> Any:
    def gpt(deployment_id: str, group: str, priority: int) -> Deployment:
        return Deployment(
            model_name=group,
            provider="openai-compatible",
            model=GPT,
            id=deployment_id,
            base_url=urls[deployment_id],
            api_key=Secret("sk-fake"),
            priority=priority,
        )

    spare = gpt("spare", "spare" if alone else "chat", 1)
    if claude_spare:
        spare = Deployment(
            model_name="spare" if alone else "chat",
            provider="anthropic",
            model=CLAUDE,
            id="spare",
            base_url=urls["spare"],
            api_key=Secret("sk-ant-fake"),
            priority=1,
        )
    return gateway_config(
        gpt("chat", "chat", 0),
        spare,
        gpt("long", "long", 0),
        routing=RoutingConfig(strategy="priority"),
        fallbacks=FallbackConfig(context_window={"chat": ["long"]}),
        **settings,
    )


@asynccontextmanager
async def rig(
    shape: Shape,
    tmp_path: Path,
    *,
    claude_spare: bool = False,
    alone: bool = False,
    chunk_delay: float = 0.005,
    group_settings: dict[str, Any] | None = None,
    litellm_settings: dict[str, Any] | None = None,
) -> AsyncIterator[Rig]:
    """The gateway in `shape` over three fakes; `claude_spare` makes ``spare`` an Anthropic
    deployment, and `alone` leaves ``chat`` with nothing to turn to (a group of one deployment,
    a model without ``fallbacks``; ``spare`` is then a model of its own). Extra settings (only
    for scenarios about tuning) go to turnout's router config (``group``) or LiteLLM's
    ``router_settings`` (``litellm``)."""
    async with AsyncExitStack() as stack:
        primary = await stack.enter_async_context(FakeOpenAI(chunk_delay=chunk_delay))
        spare = await stack.enter_async_context(FakeOpenAI(chunk_delay=chunk_delay))
        long = await stack.enter_async_context(FakeOpenAI(chunk_delay=chunk_delay))
        claude = None
        urls = {"chat": primary.url, "spare": spare.url, "long": long.url}
        if claude_spare:
            claude = await stack.enter_async_context(FakeAnthropic(chunk_delay=chunk_delay))
            urls["spare"] = claude.url
        if shape == "litellm":
            file = _litellm_file(
                tmp_path / "config.yaml", urls, claude_spare, alone, litellm_settings or {}
            )
            config = load_config(file)
            assert config.format == "litellm"
        else:
            config = _group_config(urls, claude_spare, alone, group_settings or {})
        gateway = await stack.enter_async_context(running_gateway(config))
        client = sdk_client(gateway.url)
        stack.push_async_callback(client.close)
        fakes: dict[str, FakeOpenAI | FakeAnthropic] = {
            "chat": primary,
            "spare": claude or spare,
            "long": long,
        }
        yield Rig(shape, gateway, primary, spare, long, client, claude, fakes)
