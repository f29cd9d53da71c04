"""Which store keeps responses: ``auto`` follows how the gateway runs, an explicit backend is
taken as asked, and a setting that cannot work is a clear error, at load or before serving."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import msgspec
import pytest

from serve_process import TURNOUT
from turnout.config.load import parse_config
from turnout.config.server import GatewayConfig, ResponsesStoreConfig
from turnout.config.state import StateConfig
from turnout.errors import ConfigError
from turnout.gateway.responses_store_choice import check, choose, response_store
from turnout.gateway.responses_store_file import FileResponseStore
from turnout.gateway.responses_store_memory import MemoryResponseStore
from turnout.gateway.responses_store_redis import RedisResponseStore

REDIS = StateConfig(backend="redis")
MEMORY = StateConfig()


def _config(store: dict[str, Any], state: dict[str, Any] | None = None) -> GatewayConfig:
    data: dict[str, Any] = {
        "model_list": [{"model_name": "a", "provider": "openai", "model": "m", "api_key": "k"}],
        "server": {"responses_store": store},
    }
    if state is not None:
        data["state"] = state
    return parse_config(data)


@pytest.mark.parametrize(
    ("store", "state", "workers", "chosen"),
    [
        ({}, MEMORY, False, "memory"),
        ({}, MEMORY, True, "file"),
        ({}, REDIS, False, "redis"),
        ({}, REDIS, True, "redis"),
        ({"path": "kept.db"}, REDIS, False, "file"),
        ({"backend": "memory"}, REDIS, True, "memory"),
        ({"backend": "file"}, REDIS, True, "file"),
        ({"backend": "file", "path": "kept.db"}, MEMORY, False, "file"),
        ({"backend": "redis"}, REDIS, False, "redis"),
    ],
)
def test_the_backend_chosen(
    store: dict[str, Any], state: StateConfig, workers: bool, chosen: str
) -> None:
    assert choose(msgspec.convert(store, ResponsesStoreConfig), state, workers) == chosen


def test_settings_that_cannot_work_are_errors() -> None:
    with pytest.raises(ConfigError) as caught:
        choose(ResponsesStoreConfig(backend="redis"), MEMORY, True)
    assert caught.value.message.startswith("server.responses_store.backend: redis keeps")
    with pytest.raises(ConfigError) as caught:
        check(_config({"backend": "file"}))
    assert "server.responses_store.path" in caught.value.message
    for bad, where in (
        ({"backend": "disk"}, "server.responses_store.backend: Invalid enum value 'disk'"),
        ({"backend": "memory", "path": "x.db"}, "server.responses_store.path: a path is"),
        ({"path": " "}, "server.responses_store.path: must not be empty"),
    ):
        with pytest.raises(ConfigError) as caught:
            _config(bad)
        assert caught.value.message.startswith(where), caught.value.message


async def test_each_backend_is_built_as_chosen(tmp_path: Path) -> None:
    memory = response_store(_config({}), None)
    shared = response_store(_config({}), str(tmp_path))
    redis = response_store(_config({}, {"backend": "redis"}), None)
    try:
        assert isinstance(memory.store, MemoryResponseStore)
        assert isinstance(shared.store, FileResponseStore)
        assert shared.store.path == tmp_path / "responses.sqlite3"
        assert isinstance(redis.store, RedisResponseStore)
    finally:
        for store in (memory, shared, redis):
            await store.aclose()


def test_serve_refuses_a_store_it_cannot_build(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(
        "server:\n  responses_store: {backend: redis}\n"
        "model_list:\n  - {model_name: a, provider: openai, model: m, api_key: k}\n"
    )
    done = subprocess.run(
        [*TURNOUT, "serve", "--config", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode != 0
    assert "turnout: server.responses_store.backend: redis keeps responses" in done.stderr
    assert "Traceback" not in done.stderr
