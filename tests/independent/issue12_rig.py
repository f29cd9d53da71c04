"""The shape issue 12 is judged in: a LiteLLM ``config.yaml`` with a master key, a database and
one priced model, served on 127.0.0.1; keys, teams and spend reached only through LiteLLM's
management API (plain HTTP, as LiteLLM's own scripts call it), requests made with the official
`openai` SDK. The upstream is the fake of tests/fakes/, whose answers are deterministic, so the
usage it reported for every request can be computed again from what it received.

Prices are chosen so that every charge is a whole number of micro-dollars (1 and 2 micro-dollars
per input and output token): "priced exactly" is then an equality of integers, whatever way the
gateway rounds.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp
import openai
import yaml

from fakes.fake_openai import FakeOpenAI, ReceivedRequest
from fakes.fake_openai.answers import build_answer, continued
from gateway_harness import RunningGateway, running_gateway
from turnout.config.load import load_config

MASTER = "sk-master-issue-twelve"
MODEL = "chat"
UPSTREAM_MODEL = "gpt-4o-mini"
#: Dollars per token, and the same in micro-dollars (exact integers).
INPUT_PRICE, OUTPUT_PRICE = 0.000001, 0.000002
INPUT_MICROS, OUTPUT_MICROS = 1, 2
#: The fake's answer: eight tokens (one per word).
REPLY = "one two three four five six seven eight"
REPLY_TOKENS = 8
#: Every request caps its answer, so that the gateway's worst-case estimate is small and known.
MAX_TOKENS = 16
MESSAGES: list[Any] = [{"role": "user", "content": "Say eight words, please."}]
#: How long spend, written off the request path, may take to show.
SPEND_WAIT = 15.0

Mode = Literal["whole", "stream_usage", "stream_plain"]
MODES: tuple[Mode, ...] = ("whole", "stream_usage", "stream_plain")

T = TypeVar("T")


def micros(dollars: float | None) -> int:
    """Dollars as the API shows them, back to exact micro-dollars."""
    return round((dollars or 0.0) * 1_000_000)


def dollars(amount: int) -> float:
    return amount / 1_000_000


def usage_served(request: ReceivedRequest, reply: str | None) -> tuple[int, int]:
    """(prompt, completion) tokens the fake reported, or would have reported, for `request`:
    its answers are decided from the request alone."""
    body = request.json
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    answer = build_answer(body, body["model"], continued(body["messages"], reply), cap, chat=True)
    usage = answer.usage()
    return usage["prompt_tokens"], usage["completion_tokens"]


def price(prompt: int, completion: int) -> int:
    """Micro-dollars of that usage at the model's prices."""
    return prompt * INPUT_MICROS + completion * OUTPUT_MICROS


def worst_case(prompt: int, max_tokens: int = MAX_TOKENS) -> int:
    """The most one request of `prompt` tokens capped at `max_tokens` can cost, with room for a
    gateway that counts the prompt somewhat larger than the upstream does."""
    return price(2 * prompt + 16, max_tokens)


@dataclass
class Outcome:
    """One request as the caller saw it: served (text, id, headers) or refused (status, body)."""

    status: int
    headers: dict[str, str]
    text: str = ""
    response_id: str | None = None
    body: Any = None
    usage: Any = None

    @property
    def served(self) -> bool:
        return self.status == 200

    @property
    def error(self) -> dict[str, Any]:
        found = self.body.get("error") if isinstance(self.body, dict) else None
        return found if isinstance(found, dict) else {}

    def describe(self) -> str:
        if self.served:
            return f"200 {self.text!r}"
        return f"{self.status} {json.dumps(self.body)[:400]}"


def _headers(raw: Any) -> dict[str, str]:
    return {name.lower(): value for name, value in raw.items()}


def _refusal(error: openai.APIStatusError) -> Outcome:
    try:
        body = json.loads(error.response.text)
    except (ValueError, openai.OpenAIError):
        body = {"unparsed": str(error)}
    return Outcome(error.status_code, _headers(error.response.headers), body=body)


async def ask(client: openai.AsyncOpenAI, mode: Mode = "whole", **options: Any) -> Outcome:
    """One chat request, whole or streamed (with ``stream_options.include_usage`` as SDKs send
    it, or without); a refusal is returned, not raised."""
    options.setdefault("max_tokens", MAX_TOKENS)
    create = client.chat.completions.with_raw_response.create
    try:
        if mode == "whole":
            raw = await create(model=MODEL, messages=MESSAGES, **options)
            reply = raw.parse()
            text = reply.choices[0].message.content or ""
            return Outcome(200, _headers(raw.headers), text, reply.id, usage=reply.usage)
        if mode == "stream_usage":
            options["stream_options"] = {"include_usage": True}
        raw = await create(model=MODEL, messages=MESSAGES, stream=True, **options)
        stream = raw.parse()
        parts: list[str] = []
        ident, usage = None, None
        async for chunk in stream:
            ident = ident or chunk.id
            usage = chunk.usage or usage
            for choice in chunk.choices:
                parts.append(choice.delta.content or "")
        return Outcome(200, _headers(raw.headers), "".join(parts), ident, usage=usage)
    except openai.APIStatusError as error:
        return _refusal(error)


async def eventually(
    read: Callable[[], Awaitable[T]],
    done: Callable[[T], bool],
    seconds: float = SPEND_WAIT,
    interval: float = 0.2,
) -> T:
    """Read every `interval` seconds until `done` holds or `seconds` pass; the last reading
    either way (the caller asserts on it, so that a failure shows what was there)."""
    deadline = time.monotonic() + seconds
    while True:
        value = await read()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(interval)


async def away_from_minute_edge(margin: float = 12.0) -> None:
    """Wait (at most `margin` seconds) until the wall clock is not within `margin` seconds of
    the next whole minute, so that a burst of requests falls inside one calendar minute."""
    to_next_minute = 60 - time.time() % 60
    if to_next_minute < margin:
        await asyncio.sleep(to_next_minute + 0.5)


@dataclass
class Rig:
    """The gateway, its fake upstream, and the management API."""

    #: The instances, all on one store (and one Redis, when given); the first one answers the
    #: management API.
    gateways: list[RunningGateway]
    fake: FakeOpenAI
    session: aiohttp.ClientSession
    reply: str | None
    clients: list[openai.AsyncOpenAI] = field(default_factory=list)

    @property
    def gateway(self) -> RunningGateway:
        return self.gateways[0]

    def client(self, key: str, instance: int = 0, **options: Any) -> openai.AsyncOpenAI:
        """The official SDK on one instance, not retrying (a 429 must reach the test as it was
        sent)."""
        options.setdefault("max_retries", 0)
        options.setdefault("timeout", 30.0)
        base_url = f"{self.gateways[instance].url}/v1"
        made = openai.AsyncOpenAI(base_url=base_url, api_key=key, **options)
        self.clients.append(made)
        return made

    async def call(self, method: str, path: str, **options: Any) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {MASTER}"}
        async with self.session.request(
            method, self.gateway.url + path, headers=headers, **options
        ) as response:
            return response.status, await response.json(content_type=None)

    async def post(self, path: str, body: dict[str, Any]) -> Any:
        status, answer = await self.call("POST", path, json=body)
        assert status == 200, f"POST {path} {body}: expected 200, got {status} {answer}"
        return answer

    async def generate_key(self, **fields: Any) -> str:
        answer = await self.post("/key/generate", {"models": [MODEL], **fields})
        key: str = answer["key"]
        return key

    async def new_team(self, **fields: Any) -> str:
        answer = await self.post("/team/new", fields)
        team: str = answer.get("team_id", fields.get("team_id"))
        return team

    async def key_info(self, key: str) -> dict[str, Any]:
        status, answer = await self.call("GET", "/key/info", params={"key": key})
        assert status == 200, f"/key/info: expected 200, got {status} {answer}"
        info: dict[str, Any] = answer["info"]
        return info

    async def key_spend(self, key: str) -> int:
        return micros((await self.key_info(key)).get("spend"))

    async def spend_logs(self, **params: str) -> list[dict[str, Any]]:
        params.setdefault("summarize", "false")
        status, answer = await self.call("GET", "/spend/logs", params=params)
        assert status == 200, f"/spend/logs {params}: expected 200, got {status} {answer}"
        assert isinstance(answer, list), f"/spend/logs answered {answer!r}, not a list of rows"
        return answer

    def served_usage(self) -> list[tuple[int, int]]:
        """(prompt, completion) of every request the upstream answered, in order."""
        return [usage_served(request, self.reply) for request in self.fake.requests]

    def served_cost(self) -> int:
        return sum(price(*usage) for usage in self.served_usage())

    async def close(self) -> None:
        for made in self.clients:
            await made.close()


def litellm_config(
    directory: Path, upstream: str, database_url: str, redis_url: str | None = None
) -> Path:
    """A LiteLLM config: one priced model, a master key, a database and (given `redis_url`)
    LiteLLM's ``router_settings.redis_url``, plus turnout's own ``store`` section so that key
    changes are seen at once (no key cache)."""
    data: dict[str, Any] = {
        "model_list": [
            {
                "model_name": MODEL,
                "litellm_params": {
                    "model": f"openai/{UPSTREAM_MODEL}",
                    "api_base": upstream,
                    "api_key": "sk-fake",
                },
                "model_info": {
                    "input_cost_per_token": INPUT_PRICE,
                    "output_cost_per_token": OUTPUT_PRICE,
                },
            }
        ],
        "general_settings": {"master_key": MASTER, "database_url": database_url},
        "store": {"enabled": True, "key_cache_ttl": 0},
    }
    if redis_url is not None:
        data["router_settings"] = {"redis_url": redis_url}
    path = directory / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@asynccontextmanager
async def governed_gateway(
    directory: Path,
    *,
    database_url: str | None = None,
    reply: str | None = REPLY,
    chunk_delay: float = 0.0,
    instances: int = 1,
    redis_url: str | None = None,
) -> AsyncIterator[Rig]:
    """`instances` gateways from one config over one fake upstream, with their store at
    `database_url` (default: a SQLite file in `directory`) and, given `redis_url`, their shared
    state in that Redis."""
    url = database_url or f"sqlite:///{directory / 'store' / 'turnout.db'}"
    async with AsyncExitStack() as stack:
        fake = await stack.enter_async_context(
            FakeOpenAI(models=(UPSTREAM_MODEL,), reply=reply, chunk_delay=chunk_delay)
        )
        path = litellm_config(directory, fake.url, url, redis_url)
        gateways = [
            await stack.enter_async_context(running_gateway(load_config(path)))
            for _ in range(instances)
        ]
        session = await stack.enter_async_context(aiohttp.ClientSession())
        rig = Rig(gateways, fake, session, reply)
        try:
            yield rig
        finally:
            await rig.close()
