"""Reloading a running gateway: the parse runs off the event loop, and reloads queue.

A real gateway on 127.0.0.1 serves the official `openai` SDK from a fake OpenAI upstream, with
its config file on disk; the config loader is wrapped to block on a `threading.Event`, so a
reload stays in its parse for as long as the test wants (bounded, so a regression fails
instead of hanging).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest

import turnout.gateway.gateway as gateway_module
from fakes.fake_openai import FakeOpenAI
from gateway_harness import running_gateway
from turnout.config.load import load_config
from turnout.config.server import GatewayConfig

MESSAGES: Any = [{"role": "user", "content": "Hello"}]
MASTER_KEY = "sk-master"
#: Longest a wrapped parse blocks: a loop frozen by it would hold requests that long.
BLOCK_LIMIT = 5.0


def _write_config(path: Path, fake_url: str, groups: tuple[str, ...]) -> Path:
    entries = "".join(
        f"  - {{model_name: {group}, provider: openai-compatible, model: gpt-4o-mini, "
        f"base_url: '{fake_url}', api_key: sk-fake}}\n"
        for group in groups
    )
    path.write_text(f"server:\n  master_key: {MASTER_KEY}\nmodel_list:\n{entries}")
    return path


class BlockingLoader:
    """`load_config` that holds its result until `release`, counting the parses at once."""

    def __init__(self, load: Callable[..., GatewayConfig]) -> None:
        self._load = load
        self._lock = threading.Lock()
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0
        self.running = 0
        self.most_at_once = 0

    def __call__(self, source: str, **options: Any) -> GatewayConfig:
        with self._lock:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        self.entered.set()
        try:
            config = self._load(source, **options)
            self.release.wait(BLOCK_LIMIT)
            return config
        finally:
            with self._lock:
                self.running -= 1


@pytest.fixture
def blocking_loader(monkeypatch: pytest.MonkeyPatch) -> BlockingLoader:
    loader = BlockingLoader(load_config)
    monkeypatch.setattr(gateway_module, "load_config", loader)
    return loader


async def test_requests_are_answered_while_a_reload_parses(
    tmp_path: Path, blocking_loader: BlockingLoader
) -> None:
    async with FakeOpenAI() as fake:
        path = _write_config(tmp_path / "turnout.yaml", fake.url, ("chat",))
        async with running_gateway(load_config(path)) as running:
            _write_config(path, fake.url, ("chat", "fresh"))
            reload = asyncio.create_task(running.gateway.reload())
            try:
                assert await asyncio.to_thread(blocking_loader.entered.wait, BLOCK_LIMIT)
                async with running.client(api_key=MASTER_KEY) as client:
                    completion = await client.chat.completions.create(
                        model="chat", messages=MESSAGES
                    )
                    assert completion.choices[0].message.content
                    models = [model.id for model in (await client.models.list()).data]
                # Answered while the parse was still blocked: the loop was free.
                assert not reload.done()
                assert models == ["chat"]
            finally:
                blocking_loader.release.set()
            summary = await reload
            assert summary["deployments"] == 2
            async with running.client(api_key=MASTER_KEY) as client:
                completion = await client.chat.completions.create(model="fresh", messages=MESSAGES)
                assert completion.choices[0].message.content


async def test_overlapping_reloads_run_one_after_another(
    tmp_path: Path, blocking_loader: BlockingLoader
) -> None:
    """Two SIGHUPs and a POST /admin/reload at once: one parse at a time, the newest file wins."""
    async with FakeOpenAI() as fake:
        path = _write_config(tmp_path / "turnout.yaml", fake.url, ("chat",))
        async with (
            running_gateway(load_config(path)) as running,
            aiohttp.ClientSession() as http,
        ):
            _write_config(path, fake.url, ("chat", "second"))
            # What the SIGHUP handler does, twice.
            signals = [asyncio.create_task(running.gateway.reload()) for _ in range(2)]

            async def post_reload() -> Any:
                async with http.post(
                    f"{running.url}/admin/reload",
                    headers={"authorization": f"Bearer {MASTER_KEY}"},
                ) as response:
                    assert response.status == 200
                    return await response.json()

            posted = asyncio.create_task(post_reload())
            try:
                assert await asyncio.to_thread(blocking_loader.entered.wait, BLOCK_LIMIT)
                await asyncio.sleep(0.3)  # time for the others to start a parse, were they let
                assert blocking_loader.calls == 1
                _write_config(path, fake.url, ("chat", "second", "third"))
            finally:
                blocking_loader.release.set()
            summaries = [*await asyncio.gather(*signals), await posted]
        assert blocking_loader.calls == 3
        assert blocking_loader.most_at_once == 1
        assert sorted(s["deployments"] for s in summaries) == [2, 3, 3]
        groups = {d.model_name for d in running.gateway.config.router.model_list}
        assert groups == {"chat", "second", "third"}
