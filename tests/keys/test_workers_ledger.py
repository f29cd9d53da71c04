"""Two workers of one `turnout serve`, no Redis: their budgets and limits are one, kept in the
store's database (the SQL ledger), so a key's budget and RPM hold across them exactly.

The config is LiteLLM's shape most users have: one priced model, a master key, a database URL
and ``num_workers``-style workers on the command line. Requests go through the official SDK,
with its retries off so that each 429 is seen as sent.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp
import openai
import yaml

from fakes.fake_openai import FakeOpenAI
from serve_process import serving, stop
from services import free_port

MASTER = "sk-master-workers-ledger"
#: Micro-dollars per input and output token: every charge is a whole number.
INPUT_PRICE, OUTPUT_PRICE = 0.000001, 0.000002
PROMPT: Any = [{"role": "user", "content": "two workers one ledger"}]


def _config(tmp_path: Path, upstream: str) -> Path:
    data: dict[str, Any] = {
        "model_list": [
            {
                "model_name": "chat",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_base": upstream,
                    "api_key": "sk-fake",
                },
                "model_info": {
                    "input_cost_per_token": INPUT_PRICE,
                    "output_cost_per_token": OUTPUT_PRICE,
                },
            }
        ],
        "general_settings": {
            "master_key": MASTER,
            "database_url": f"sqlite:///{tmp_path / 'turnout.db'}",
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def _generate(base: str, **fields: Any) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{base}/key/generate",
            json=fields,
            headers={"Authorization": f"Bearer {MASTER}"},
        ) as answer,
    ):
        assert answer.status == 200, await answer.text()
        key: str = (await answer.json())["key"]
        return key


async def _statuses(client: openai.AsyncOpenAI, count: int, stream: bool) -> list[int]:
    async def one() -> int:
        try:
            if stream:
                chunks: Any = await client.chat.completions.create(
                    model="chat", messages=PROMPT, max_tokens=40, stream=True
                )
                async for _ in chunks:
                    pass
            else:
                await client.chat.completions.create(model="chat", messages=PROMPT, max_tokens=40)
        except openai.APIStatusError as error:
            return error.status_code
        return 200

    return await asyncio.gather(*(one() for _ in range(count)))


async def _key_spend(base: str, key: str) -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            f"{base}/key/info", params={"key": key}, headers={"Authorization": f"Bearer {MASTER}"}
        ) as answer,
    ):
        info: dict[str, Any] = (await answer.json())["info"]
        return float(info["spend"])


async def test_a_budget_and_an_rpm_limit_hold_across_two_workers_without_redis(
    tmp_path: Path,
) -> None:
    async with FakeOpenAI(reply="the answer is always the same eight words here") as fake:
        config = str(_config(tmp_path, fake.url))
        args = ("--config", config, "--port", str(free_port()), "--workers", "2")
        async with serving(*args, listeners=2, cwd=str(tmp_path)) as (process, port, _):
            base = f"http://127.0.0.1:{port}"
            # A request's estimate is its prompt (about a dozen tokens) at the input price
            # plus max_tokens (40) at the output price, some 90 micro-dollars; it costs some
            # 30. A budget of 100 holds one estimate at a time, and after one request's charge
            # no other: of 40 concurrent streams over both workers, exactly one is served. Two
            # ledgers (one per worker) would serve two.
            key = await _generate(base, max_budget=0.0001)
            client = openai.AsyncOpenAI(
                api_key=key, base_url=f"{base}/v1", max_retries=0, timeout=60
            )
            statuses = await asyncio.wait_for(_statuses(client, 40, stream=True), 120)
            await client.close()
            assert set(statuses) <= {200, 429}, statuses
            assert statuses.count(200) == 1, statuses
            assert len(fake.requests) == 1
            spend = await _key_spend(base, key)
            assert 0 < spend <= 0.0001, spend

            # An RPM limit counts the requests of both workers in one minute: five of twelve
            # (away from a minute's end, so that the burst falls in one minute).
            limited = await _generate(base, rpm_limit=5)
            client = openai.AsyncOpenAI(
                api_key=limited, base_url=f"{base}/v1", max_retries=0, timeout=60
            )
            if time.time() % 60 > 45:
                await asyncio.sleep(61 - time.time() % 60)
            before = len(fake.requests)
            statuses = await asyncio.wait_for(_statuses(client, 12, stream=False), 120)
            await client.close()
            assert set(statuses) <= {200, 429}, statuses
            assert statuses.count(200) == 5, statuses
            assert len(fake.requests) - before == 5
            await stop(process)
