"""Stored responses across the workers of ``turnout serve --workers 2``, and across instances
sharing Redis: a follow-up turn, a GET or a DELETE finds the response whichever worker or
instance it reaches; Redis going away mid-conversation fails no answer.

Every turn opens a fresh connection (an HTTP client of its own, one connection at most), asks
`/health` on it which worker answers, then sends the turn through the official `openai` SDK on
that same connection: so each turn's worker is known, and turns go on until both have served
several.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx2
import msgspec
import openai
import pytest

from fakes.fake_openai import FakeOpenAI
from gateway_harness import RunningGateway, gateway_config, running_gateway
from serve_process import serving
from services import RedisServer, free_port
from turnout import Deployment, Secret
from turnout.config.state import StateConfig


def _config(path: Path, upstream: str) -> Path:
    path.write_text(
        "server:\n"
        "  shutdown_timeout: 5\n"
        "model_list:\n"
        "  - model_name: chat\n"
        "    provider: openai-compatible\n"
        "    model: gpt-4o-mini\n"
        f"    base_url: {upstream}\n"
        "    api_key: sk-fake\n"
    )
    return path


@contextlib.asynccontextmanager
async def _connection(port: int) -> AsyncIterator[tuple[int, openai.AsyncOpenAI]]:
    """A fresh connection to the gateway: the worker it reached, and an SDK client on it."""
    async with openai.DefaultAsyncHttpxClient(
        limits=httpx2.Limits(max_connections=1), timeout=10
    ) as http:
        health = (await http.get(f"http://127.0.0.1:{port}/health")).json()
        worker = next(w["pid"] for w in health["workers"] if w["answering"])
        client = openai.AsyncOpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-x", http_client=http
        )
        yield worker, client


def _said(messages: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(m["role"], str(m["content"])) for m in messages]


async def test_a_conversation_goes_on_whichever_worker_serves_each_turn(tmp_path: Path) -> None:
    port = free_port()
    async with FakeOpenAI() as fake:
        config = _config(tmp_path / "config.yaml", fake.url)
        args = ("--config", str(config), "--port", str(port), "--workers", "2")
        async with serving(*args, listeners=2) as (process, _, lines):
            try:
                async with _connection(port) as (_, client):
                    first = await client.responses.create(model="chat", input="turn 0")
                expected = [("user", "turn 0"), ("assistant", first.output_text)]
                last = first
                served: dict[int, int] = {}
                turn = 0
                while turn < 30 and (len(served) < 2 or min(served.values()) < 3):
                    turn += 1
                    async with _connection(port) as (worker, client):
                        streamed = turn % 3 == 0
                        made: Any = await client.responses.create(
                            model="chat",
                            input=f"turn {turn}",
                            previous_response_id=last.id,
                            stream=streamed,
                        )
                        if streamed:
                            made = [event async for event in made][-1].response
                    served[worker] = served.get(worker, 0) + 1
                    expected.append(("user", f"turn {turn}"))
                    # The upstream got the whole conversation, every worker's turns in it.
                    assert _said(fake.requests[-1].json["messages"]) == expected
                    assert made.previous_response_id == last.id
                    expected.append(("assistant", made.output_text))
                    last = made
                assert len(served) == 2, f"only worker(s) {sorted(served)} served"
                # Read back and deleted by one worker, gone for both.
                seen: set[int] = set()
                while len(seen) < 2:
                    async with _connection(port) as (worker, client):
                        assert (await client.responses.retrieve(last.id)).id == last.id
                        seen.add(worker)
                async with _connection(port) as (_, client):
                    await client.responses.delete(last.id)
                gone: set[int] = set()
                for _ in range(40):
                    async with _connection(port) as (worker, client):
                        with pytest.raises(openai.NotFoundError):
                            await client.responses.retrieve(last.id)
                        with pytest.raises(openai.NotFoundError):
                            await client.responses.create(
                                model="chat", input="again", previous_response_id=last.id
                            )
                    gone.add(worker)
                    if len(gone) == 2:
                        break
                assert len(gone) == 2
            finally:
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), 15)
    log = "".join(lines)
    assert "Responses API answers are kept in the SQLite file" in log
    assert "responses store unavailable" not in log


def _deployment(url: str) -> Deployment:
    return Deployment(
        model_name="chat",
        provider="openai-compatible",
        model="gpt-4o-mini",
        id="fake",
        base_url=url,
        api_key=Secret("sk-fake"),
    )


async def test_instances_sharing_redis_share_responses_and_outlive_it(
    own_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Two gateways on one Redis: a turn stored by one continues on the other. Redis stopped
    mid-conversation: every answer is still a 200, a follow-up is told its previous response
    is not found, and storing works again once Redis is back."""
    state = StateConfig(backend="redis", url=own_redis.url, timeout_ms=100, retry_interval=0.2)
    async with AsyncExitStack() as stack:
        fake = await stack.enter_async_context(FakeOpenAI())
        config = gateway_config(_deployment(fake.url), state=state)
        gateways: list[RunningGateway] = [
            await stack.enter_async_context(running_gateway(config)) for _ in range(2)
        ]
        one, two = [await stack.enter_async_context(g.client()) for g in gateways]
        first = await one.responses.create(model="chat", input="I am Ada.")
        second = await two.responses.create(
            model="chat", input="Who am I?", previous_response_id=first.id
        )
        assert _said(fake.requests[-1].json["messages"])[0] == ("user", "I am Ada.")
        assert (await one.responses.retrieve(second.id)).id == second.id
        own_redis.stop()
        with caplog.at_level("WARNING", "turnout.gateway"):
            for client in (one, two, one):
                answered = await client.responses.create(model="chat", input="Still there?")
                assert answered.status == "completed"
                streamed: Any = await client.responses.create(
                    model="chat", input="Streamed?", stream=True
                )
                assert [event async for event in streamed][-1].response.status == "completed"
            with pytest.raises(openai.NotFoundError) as caught:
                await two.responses.create(
                    model="chat", input="And now?", previous_response_id=answered.id
                )
            assert caught.value.code == "previous_response_not_found"
            with pytest.raises(openai.NotFoundError):
                await one.responses.retrieve(second.id)
        warnings = [r.getMessage() for r in caplog.records if "responses store" in r.getMessage()]
        assert 1 <= len(warnings) <= 2, warnings  # at most one per gateway
        assert all(own_redis.url.rpartition("/")[0] in w for w in warnings)
        own_redis.start()
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            kept = await one.responses.create(model="chat", input="Back?")
            try:
                await two.responses.retrieve(kept.id)
                break
            except openai.NotFoundError:
                assert asyncio.get_running_loop().time() < deadline, "Redis never used again"
                await asyncio.sleep(0.2)
        # Kept under the state's prefix, the caller's name as its owner.
        entry = msgspec.json.decode(own_redis.ask("GET", f"turnout:responses:{kept.id}"))
        assert entry[0] == "anonymous"
