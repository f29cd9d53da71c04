"""Two gateway instances, one key, many concurrent streams: never more than the key allows.

Two real `turnout serve` processes share a private redis-server (their ledger) and one
PostgreSQL database (keys and spend logs). 64 streams go through each at once, against one key
whose budget (or RPM, or TPM limit) covers about a tenth of them. Every stream is either served
whole or refused with a 429 before it starts; what was charged never exceeds the budget (the
limits: what their minute windows allow), and the spend logs hold exactly the streams served,
priced from the usage each caller saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from enforce_harness import micros, spend_rows

from governance_stores import _postgres_kit
from key_harness import MASTER, MESSAGES, Admin, exact_micros
from serve_process import serving, stop
from services import RedisServer

STREAMS = 64
OUTPUT_TOKENS = 20


def _config(path: Path, store_url: str, redis_url: str) -> Path:
    path.write_text(
        f"""
server:
  master_key: {MASTER}
store:
  url: {store_url}
  key_cache_ttl: 1
state:
  backend: redis
  url: {redis_url}
  prefix: t{uuid.uuid4().hex[:12]}
model_list:
  - model_name: chat
    provider: simulated
    model: sim-chat
    input_cost_per_token: 0.000001
    output_cost_per_token: 0.000002
    params:
      simulate: {{output_tokens: {OUTPUT_TOKENS}, chunk_interval: 0.01}}
"""
    )
    return path


@contextlib.asynccontextmanager
async def _instance(config: Path) -> AsyncIterator[str]:
    """`turnout serve --config CONFIG` on a free port, its URL once it listens; stopped with
    SIGTERM (then killed) whatever happens."""
    async with serving("--config", str(config), "--port", "0") as (process, port, _):
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await stop(process, within=15)


async def _stream(client: openai.AsyncOpenAI) -> Any:
    """The usage of one stream served whole, or None when it was refused with a 429."""
    try:
        stream = await client.chat.completions.create(
            model="chat",
            messages=MESSAGES,
            stream=True,
            max_tokens=OUTPUT_TOKENS,
            stream_options={"include_usage": True},
        )
    except openai.RateLimitError:
        return None
    usage = None
    async for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
    assert usage is not None and usage.completion_tokens == OUTPUT_TOKENS
    return usage


def _minutes(started: float, ended: float) -> int:
    """Minute windows (of the wall clock) a run touched: what a per-minute limit allows."""
    return int(ended // 60) - int(started // 60) + 1


@pytest.mark.parametrize("limit", ["budget", "rpm", "tpm"])
async def test_two_instances_never_overspend_one_key(
    tmp_path: Path, redis_server: RedisServer, limit: str
) -> None:
    async with _postgres_kit() as kit:
        config = _config(tmp_path / "turnout.yaml", kit.url, redis_server.url)
        async with (
            _instance(config) as first,
            _instance(config) as second,
            aiohttp.ClientSession() as session,
        ):
            admin = Admin(first, session)
            # One stream's estimate: its prompt and OUTPUT_TOKENS at the prices above; the
            # budget holds about a tenth of the 128 streams.
            probe = await admin.post("/key/generate", {})
            async with openai.AsyncOpenAI(
                base_url=f"{first}/v1", api_key=probe["key"], max_retries=0
            ) as client:
                one = await _stream(client)
            per_stream = exact_micros(one.prompt_tokens, OUTPUT_TOKENS)
            tokens_per_stream = one.prompt_tokens + OUTPUT_TOKENS
            choices: dict[str, dict[str, Any]] = {
                "budget": {"max_budget": 13 * per_stream / 1_000_000},
                "rpm": {"rpm_limit": 13},
                "tpm": {"tpm_limit": 13 * tokens_per_stream},
            }
            settings = choices[limit]
            made = await admin.post("/key/generate", settings)
            clients = [
                openai.AsyncOpenAI(
                    base_url=f"{url}/v1", api_key=made["key"], max_retries=0, timeout=60
                )
                for url in (first, second)
            ]
            started = time.time()
            usages = await asyncio.gather(
                *(_stream(client) for client in clients for _ in range(STREAMS))
            )
            ended = time.time()
            for client in clients:
                await client.close()
            served = [usage for usage in usages if usage is not None]
            assert served and len(served) < len(usages)
            charged = sum(exact_micros(u.prompt_tokens, u.completion_tokens) for u in served)
            windows = _minutes(started, ended)
            if limit == "budget":
                assert charged <= 13 * per_stream
            elif limit == "rpm":
                assert len(served) <= 13 * windows
            else:
                assert sum(u.total_tokens for u in served) <= 13 * tokens_per_stream * windows
            rows = await spend_rows(admin, made["token"], len(served))
            assert len(rows) == len(served)
            assert sum(micros(row["spend"]) for row in rows) == charged
            assert sorted(row["completion_tokens"] for row in rows) == [OUTPUT_TOKENS] * len(served)
            info = await admin.get("/key/info", key=made["key"])
            assert micros(info["info"]["spend"]) == charged
