"""The responses store's contract, the same for every backend: memory, the SQLite file and Redis
(a real `redis-server`); then what only one of them does (the file shared by two processes' worth
of stores, the bounds of the two that have them) and failures, each turned into "not kept" or
"not found" by the guard with one warning."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from services import RedisServer, free_port
from turnout.config.server import ResponsesStoreConfig
from turnout.config.state import StateConfig
from turnout.gateway.responses_store import ResponseStore, StoreFailure, encode
from turnout.gateway.responses_store_file import FileResponseStore
from turnout.gateway.responses_store_guard import GuardedStore
from turnout.gateway.responses_store_memory import MemoryResponseStore
from turnout.gateway.responses_store_redis import RedisResponseStore
from turnout.wire import Principal

ADA = Principal("key:1", key_id="1")
BOB = Principal("key:2", key_id="2")
MASTER = Principal("master")

#: Makes a store of a config; `age(seconds)` lets that much time pass for it.
Make = Callable[[ResponsesStoreConfig], ResponseStore]
Age = Callable[[float], Awaitable[None]]


class Backend:
    """One backend under test: `make` a store, `age` them all."""

    def __init__(self, name: str, tmp_path: Path, redis: RedisServer | None) -> None:
        self.name = name
        self.now = [1_000_000.0]
        self.file = tmp_path / "responses.sqlite3"
        self.state = StateConfig(
            backend="redis",
            url=redis.url if redis is not None else "redis://127.0.0.1:1/0",
            prefix=f"t{uuid.uuid4().hex[:12]}",
        )
        self.made: list[ResponseStore] = []

    def make(self, config: ResponsesStoreConfig) -> ResponseStore:
        store: ResponseStore
        if self.name == "memory":
            store = MemoryResponseStore(config, clock=lambda: self.now[0])
        elif self.name == "file":
            store = FileResponseStore(config, self.file, clock=lambda: self.now[0])
        else:
            store = RedisResponseStore(config, self.state)
        self.made.append(store)
        return store

    async def age(self, seconds: float) -> None:
        """Let `seconds` pass: on the stores' clock, or for real for Redis (which keeps time)."""
        if self.name == "redis":
            await asyncio.sleep(seconds)
        else:
            self.now[0] += seconds


@pytest.fixture(params=["memory", "file", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    redis = request.getfixturevalue("redis_server") if request.param == "redis" else None
    made = Backend(request.param, tmp_path, redis)
    try:
        yield made
    finally:
        for store in made.made:
            await store.aclose()


def _response(name: str, pad: int = 0) -> dict[str, Any]:
    return {"id": f"resp_{name}", "object": "response", "output": [], "pad": "x" * pad}


def _turn(name: str) -> tuple[list[Any], list[Any], list[Any]]:
    conversation = [{"role": "user", "content": name}]
    listed = [{"id": f"msg_{name}", "type": "message", "role": "user", "content": []}]
    items = [{"type": "message", "role": "user", "content": name}]
    return conversation, listed, items


async def _put(store: ResponseStore, who: Principal | None, name: str, pad: int = 0) -> None:
    await store.put(who, _response(name, pad), *_turn(name))


def _size(name: str, pad: int) -> int:
    """The bytes an entry of `_put` counts for."""
    return len(encode("key:1", _response(name, pad), *_turn(name)))


async def test_a_response_reads_back_as_it_was_kept(backend: Backend) -> None:
    store = backend.make(ResponsesStoreConfig())
    await _put(store, ADA, "a")
    found = await store.get(ADA, "resp_a")
    assert found is not None
    assert found.owner == "key:1"
    assert found.response == _response("a")
    assert found.conversation == [{"role": "user", "content": "a"}]
    assert found.input_items[0]["id"] == "msg_a"
    assert found.items == [{"type": "message", "role": "user", "content": "a"}]
    assert await store.get(ADA, "resp_unknown") is None


async def test_only_its_owner_sees_a_response(backend: Backend) -> None:
    store = backend.make(ResponsesStoreConfig())
    await _put(store, ADA, "a")
    await _put(store, None, "anon")
    for other in (BOB, MASTER, None):
        assert await store.get(other, "resp_a") is None
        assert await store.delete(other, "resp_a") is False
    assert await store.get(ADA, "resp_anon") is None
    assert await store.get(None, "resp_anon") is not None
    assert await store.get(ADA, "resp_a") is not None


async def test_deleted_is_gone(backend: Backend) -> None:
    store = backend.make(ResponsesStoreConfig())
    await _put(store, MASTER, "a")
    assert await store.delete(MASTER, "resp_a") is True
    assert await store.get(MASTER, "resp_a") is None
    assert await store.delete(MASTER, "resp_a") is False


async def test_a_response_expires_after_the_ttl(backend: Backend) -> None:
    store = backend.make(ResponsesStoreConfig(ttl=0.4))
    await _put(store, ADA, "a")
    await backend.age(0.1)
    assert await store.get(ADA, "resp_a") is not None
    await backend.age(0.4)
    assert await store.get(ADA, "resp_a") is None
    assert await store.delete(ADA, "resp_a") is False


async def test_too_large_or_none_wanted_is_not_kept(backend: Backend) -> None:
    store = backend.make(ResponsesStoreConfig(max_response_bytes=500))
    await _put(store, ADA, "small", pad=10)
    await _put(store, ADA, "big", pad=600)
    assert await store.get(ADA, "resp_small") is not None
    assert await store.get(ADA, "resp_big") is None
    none = backend.make(ResponsesStoreConfig(max_responses=0))
    await _put(none, ADA, "z")
    assert await none.get(ADA, "resp_z") is None


async def test_storing_an_id_again_replaces_it(backend: Backend) -> None:
    store = backend.make(ResponsesStoreConfig())
    await _put(store, ADA, "a")
    await store.put(ADA, {"id": "resp_a", "v": 2}, [], [], [])
    found = await store.get(ADA, "resp_a")
    assert found is not None
    assert found.response == {"id": "resp_a", "v": 2}


@pytest.mark.parametrize("name", ["memory", "file"])
async def test_the_least_recently_used_go_first(name: str, tmp_path: Path) -> None:
    made = Backend(name, tmp_path, None)
    size = _size("a", 150)
    store = made.make(ResponsesStoreConfig(max_responses=3, max_bytes=4 * size))
    try:
        for n in "abc":
            await _put(store, ADA, n, pad=150)
        assert await store.get(ADA, "resp_a") is not None  # used: now the newest
        await _put(store, ADA, "d", pad=150)  # one too many: b goes
        kept = [await store.get(ADA, f"resp_{n}") is not None for n in "abcd"]
        assert kept == [True, False, True, True]
        # Past the byte bound, as many of the oldest go as make room: a (the count's bound
        # alone would do), and c.
        pad = 150 + (5 * size) // 2 - size
        assert 2 * size < _size("e", pad) < 3 * size
        await _put(store, ADA, "e", pad=pad)
        kept = [await store.get(ADA, f"resp_{n}") is not None for n in "acde"]
        assert kept == [False, False, True, True]
    finally:
        await store.aclose()


async def test_workers_share_the_file_and_its_bounds(tmp_path: Path) -> None:
    """Two stores on one file, as two workers: each reads what the other kept, a read by one
    counts as a use for the other's eviction, and the totals stay those of the rows."""
    made = Backend("file", tmp_path, None)
    config = ResponsesStoreConfig(max_responses=2)
    one, two = made.make(config), made.make(config)
    try:
        await _put(one, ADA, "a")
        await _put(two, ADA, "b")
        assert await two.get(ADA, "resp_a") is not None  # a is now newer than b
        await _put(one, ADA, "c")
        assert await one.get(ADA, "resp_b") is None
        assert await one.get(ADA, "resp_a") is not None
        assert await two.delete(ADA, "resp_c") is True
        assert await one.get(ADA, "resp_c") is None
        made.now[0] += config.ttl  # expired rows go as the next response is kept
        await _put(two, ADA, "d")
        await asyncio.gather(*(_put(store, BOB, f"{i}") for i, store in enumerate([one, two])))
    finally:
        await one.aclose()
        await two.aclose()
    with sqlite3.connect(made.file) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        rows = db.execute("SELECT count(*), total(size) FROM responses").fetchone()
        assert db.execute("SELECT count, bytes FROM totals").fetchone() == rows
        assert rows[0] == 2


async def test_an_unwritable_file_fails_and_the_guard_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("")
    store = FileResponseStore(ResponsesStoreConfig(), blocked / "responses.sqlite3")
    with pytest.raises(StoreFailure) as caught:
        await store.get(ADA, "resp_a")
    assert "SQLite" in str(caught.value)
    guarded = GuardedStore(store)
    try:
        with caplog.at_level(logging.WARNING, "turnout.gateway"):
            for _ in range(3):
                await _put(guarded, ADA, "a")
            assert await guarded.get(ADA, "resp_a") is None
            assert await guarded.delete(ADA, "resp_a") is False
    finally:
        await guarded.aclose()
    assert guarded.failures == 5
    warnings = [r.getMessage() for r in caplog.records if r.name == "turnout.gateway"]
    assert len(warnings) == 1, warnings
    assert "not kept" in warnings[0]


async def test_redis_down_fails_fast_and_the_guard_says_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    state = StateConfig(backend="redis", url=f"redis://127.0.0.1:{free_port()}/0", password=None)
    store = RedisResponseStore(ResponsesStoreConfig(), state)
    guarded = GuardedStore(store, interval=3600)
    try:
        with caplog.at_level(logging.WARNING, "turnout.gateway"):
            loop = asyncio.get_running_loop()
            started = loop.time()
            for _ in range(20):
                await _put(guarded, ADA, "a")
                assert await guarded.get(ADA, "resp_a") is None
            assert loop.time() - started < 2
    finally:
        await guarded.aclose()
    warnings = [r.getMessage() for r in caplog.records if r.name == "turnout.gateway"]
    assert len(warnings) == 1, warnings
    assert "Redis at redis://127.0.0.1:" in warnings[0]
    assert guarded.failures == 40


async def test_redis_keys_expire_and_never_hold_a_secret(redis_server: RedisServer) -> None:
    state = StateConfig(backend="redis", url=redis_server.url, prefix="secretcheck")
    store = RedisResponseStore(ResponsesStoreConfig(ttl=60), state)
    try:
        await _put(store, ADA, "a")
    finally:
        await store.aclose()
    ttl = int(redis_server.ask("PTTL", "secretcheck:responses:resp_a"))
    assert 0 < ttl <= 60_000
    assert '"key:1"' in redis_server.ask("GET", "secretcheck:responses:resp_a")
