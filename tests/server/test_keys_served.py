"""Virtual keys in real `turnout serve` processes: workers sharing one SQLite file, a store that
is down, and logs that never hold a key."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest

from fakes.fake_openai import FakeOpenAI
from governance_stores import StoreKit, _admin, postgres_url
from key_harness import MASTER, MESSAGES, Admin, keyed_gateway
from serve_process import serving


def _config(path: Path, upstream: str, store: dict[str, Any], **server: Any) -> Path:
    path.write_text(
        json.dumps(
            {
                "server": {"master_key": MASTER, "shutdown_timeout": 5, **server},
                "store": store,
                "model_list": [
                    {
                        "model_name": "chat",
                        "provider": "openai-compatible",
                        "model": "gpt-4o-mini",
                        "base_url": upstream,
                        "api_key": "sk-fake",
                    }
                ],
            }
        )
    )
    return path


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextlib.asynccontextmanager
async def _served(*args: str) -> AsyncIterator[tuple[int, list[str]]]:
    async with serving(*args) as (process, port, lines):
        try:
            yield port, lines
        finally:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 10)


async def _on_fresh_connection(port: int, key: str) -> tuple[int, int]:
    """(the answering worker's pid, the status of a chat call with `key`), on one connection."""
    connector = aiohttp.TCPConnector(limit=1, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:
        master = {"Authorization": f"Bearer {MASTER}"}
        async with session.get(f"http://127.0.0.1:{port}/health", headers=master) as health:
            workers = (await health.json())["workers"]
        pid = next(worker["pid"] for worker in workers if worker["answering"])
        async with session.post(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            json={"model": "chat", "messages": MESSAGES},
            headers={"Authorization": f"Bearer {key}"},
        ) as answer:
            return pid, answer.status


async def _every_worker(port: int, key: str) -> dict[int, set[int]]:
    """Statuses of `key`'s calls per worker, once both workers have answered (bounded)."""
    seen: dict[int, set[int]] = {}
    for _ in range(200):
        pid, status = await _on_fresh_connection(port, key)
        seen.setdefault(pid, set()).add(status)
        if len(seen) == 2:
            break
    assert len(seen) == 2, f"only worker(s) {sorted(seen)} answered"
    return seen


async def test_two_workers_share_one_sqlite_file_and_log_no_key(tmp_path: Path) -> None:
    database = tmp_path / "data" / "keys.db"
    port = _free_port()
    async with FakeOpenAI() as fake:
        config = _config(
            tmp_path / "turnout.json",
            fake.url,
            {"url": f"sqlite:///{database}", "key_cache_ttl": 0},
            log_level="debug",
        )
        args = ("--config", str(config), "--port", str(port), "--workers", "2")
        async with _served(*args) as (_, lines), aiohttp.ClientSession() as session:
            assert database.exists(), "the SQLite file is made on first start"
            admin = Admin(f"http://127.0.0.1:{port}", session)
            made = await admin.post("/key/generate", {"models": ["chat"]})
            key = made["key"]
            working = await _every_worker(port, key)
            assert all(statuses == {200} for statuses in working.values()), working
            async with openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key=key, timeout=10
            ) as client:
                await client.chat.completions.create(model="chat", messages=MESSAGES)
                with contextlib.suppress(openai.APIStatusError):
                    await client.chat.completions.create(model="nope", messages=MESSAGES)
            await admin.get("/key/info", key=key)
            await admin.post("/key/block", {"key": key})
            blocked = await _every_worker(port, key)
            assert all(statuses == {401} for statuses in blocked.values()), blocked
            await admin.post("/key/delete", {"keys": [key]})
            await asyncio.sleep(0.3)  # the last log lines are read
        log = "".join(lines)
    assert "store sqlite:///" in log and "open" in log
    assert key not in log
    assert key[3:] not in log


async def test_a_store_down_at_start_fails_virtual_keys_closed_not_the_master_key(
    tmp_path: Path,
) -> None:
    closed = _free_port()
    async with FakeOpenAI() as fake:
        config = _config(
            tmp_path / "turnout.json",
            fake.url,
            {"url": f"postgresql://postgres@127.0.0.1:{closed}/turnout"},
        )
        async with _served("--config", str(config), "--port", "0") as (port, lines):
            base = f"http://127.0.0.1:{port}/v1"
            async with openai.AsyncOpenAI(base_url=base, api_key=MASTER, timeout=10) as client:
                answer = await client.chat.completions.create(model="chat", messages=MESSAGES)
                assert answer.choices[0].message.content
            async with openai.AsyncOpenAI(
                base_url=base, api_key="sk-some-virtual-key", max_retries=0, timeout=10
            ) as client:
                with pytest.raises(openai.APIStatusError) as refused:
                    await client.chat.completions.create(model="chat", messages=MESSAGES)
            assert refused.value.status_code == 503
            assert isinstance(refused.value.body, dict)
            assert refused.value.body["code"] == "store_unavailable"
            async with aiohttp.ClientSession() as session:
                status, answer = await Admin(base[:-3], session).call(
                    "POST", "/key/generate", json={}
                )
                assert status == 503 and answer["error"]["type"] == "service_unavailable"
    assert any("unreachable" in line for line in lines)


async def test_a_store_lost_later_fails_virtual_keys_closed(postgres_kit: StoreKit) -> None:
    async with keyed_gateway(postgres_kit.url) as (gateway, admin):
        key = (await admin.post("/key/generate", {}))["key"]
        async with gateway.client(api_key=key) as client:
            await client.chat.completions.create(model="chat", messages=MESSAGES)
        name = postgres_kit.url.rsplit("/", 1)[1]
        await _admin(postgres_url(), f'DROP DATABASE "{name}" WITH (FORCE)')
        async with gateway.client(api_key=key) as client:
            with pytest.raises(openai.APIStatusError) as refused:
                await client.chat.completions.create(model="chat", messages=MESSAGES)
        assert refused.value.status_code == 503
        async with gateway.client(api_key=MASTER) as client:
            assert await client.chat.completions.create(model="chat", messages=MESSAGES)


async def test_a_store_that_comes_up_after_the_gateway_is_opened_then(
    postgres_kit: StoreKit,
) -> None:
    """The gateway starts before its database exists, answers 503 for keys, and opens the store
    once the database is there (it tries again every few seconds)."""
    name = postgres_kit.url.rsplit("/", 1)[1]
    await _admin(postgres_url(), f'DROP DATABASE "{name}" WITH (FORCE)')
    async with keyed_gateway(postgres_kit.url) as (_, admin):
        status, answer = await admin.call("POST", "/key/generate", json={})
        assert status == 503 and answer["error"]["code"] == "store_unavailable"
        await _admin(postgres_url(), f'CREATE DATABASE "{name}"')
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while status != 200 and loop.time() < deadline:
            await asyncio.sleep(0.5)
            status, answer = await admin.call("POST", "/key/generate", json={})
        assert status == 200, answer
        async with openai.AsyncOpenAI(
            base_url=f"{admin.url}/v1", api_key=answer["key"], max_retries=0, timeout=10
        ) as client:
            assert await client.chat.completions.create(model="chat", messages=MESSAGES)
