"""Redis down or slow: routing goes on with this process's state, and shares it again after.

Routing state fails open: a Redis failure must never reach a caller. Each test runs its own
private redis-server, stopped and started again under traffic.
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import pytest
import redis.asyncio as redis_client

from harness import Recorder, chat, dep
from services import RedisServer
from turnout import Router, RouterConfig
from turnout.config.router import Deployment, FallbackConfig
from turnout.config.state import StateConfig
from turnout.errors import ConfigError
from turnout.health.record import CooldownReason
from turnout.observe.events import AttemptFinished
from turnout.providers.simulated import SimulatedProvider
from turnout.state.redis import RedisStore
from turnout.testing import ManualClock

pytestmark = pytest.mark.services


def _router(
    store: RedisStore, clock: ManualClock, *deployments: Deployment, **config: Any
) -> tuple[Router, Recorder]:
    recorder = Recorder()
    router = Router(
        RouterConfig(model_list=deployments, **config),
        {"sim": SimulatedProvider(clock, seed=1)},
        clock=clock,
        rng=random.Random(1),
        state=store,
        observers=[recorder],
    )
    return router, recorder


async def _traffic(router: Router, stop: asyncio.Event, served: list[str]) -> None:
    """Requests one after another until told to stop; any failure ends it with the error."""
    while not stop.is_set():
        await router.complete(chat())
        served.append("ok")
        await asyncio.sleep(0.002)


async def _until(condition: Any, seconds: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("shape", ["group", "one_per_model"])
async def test_redis_stopped_under_traffic_costs_no_request(
    own_redis: RedisServer, shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "turnout.state")
    clock = ManualClock(autojump=False)
    config = StateConfig(backend="redis", url=own_redis.url, timeout_ms=100, retry_interval=0.05)
    store = RedisStore(config, clock=clock, groups={"a": "chat", "b": "chat", "s": "spare"})
    if shape == "group":
        router, recorder = _router(store, clock, dep("a"), dep("b"))
    else:
        router, recorder = _router(
            store,
            clock,
            dep("a"),
            dep("s", group="spare"),
            fallbacks=FallbackConfig(general={"chat": ["spare"]}),
        )
    stop = asyncio.Event()
    served: list[str] = []
    task = asyncio.create_task(_traffic(router, stop, served))
    await _until(lambda: len(served) >= 20)
    assert store.shared
    # An ejection made while Redis is up holds through the outage (local state starts from it).
    await router.cool_down("a", 600)
    await asyncio.sleep(0.01)
    ejected_at = len(_served(recorder))
    own_redis.stop()
    await _until(lambda: not store.shared)
    count = len(served)
    await _until(lambda: len(served) >= count + 50)
    assert router.state_status()["shared"] is False
    own_redis.start()
    await _until(lambda: store.shared)
    before = store.round_trips
    count = len(served)
    await _until(lambda: len(served) >= count + 20)
    stop.set()
    await task  # raises if any request failed
    assert "a" not in _served(recorder)[ejected_at + 1 :]
    assert store.round_trips > before  # shared again: requests go through Redis
    assert (store.outages, store.recoveries) == (1, 1)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == 1  # logged once, not per request
    assert sum("state is shared" in m for m in messages) == 1
    # Redis restarted empty: the ejection this process kept through the outage is shared again.
    other = RedisStore(config, clock=ManualClock(autojump=False), groups={"a": "chat"})
    [state] = await other.snapshot(("a",))
    assert state.cooldown_reason is CooldownReason.MANUAL
    await other.aclose()
    await router.aclose()


async def test_a_slow_redis_trips_the_breaker_within_its_timeout(own_redis: RedisServer) -> None:
    clock = ManualClock(autojump=False)
    config = StateConfig(backend="redis", url=own_redis.url, timeout_ms=80, retry_interval=0.05)
    store = RedisStore(config, clock=clock, groups={"a": "chat"})
    router, _ = _router(store, clock, dep("a"))
    await router.complete(chat())
    client = redis_client.from_url(own_redis.url)
    sleeper = asyncio.create_task(client.execute_command("DEBUG", "SLEEP", "0.6"))  # type: ignore[no-untyped-call]
    await asyncio.sleep(0.05)
    started = asyncio.get_running_loop().time()
    await router.complete(chat())  # served on local state, not after Redis wakes up
    assert asyncio.get_running_loop().time() - started < 0.5
    assert not store.shared
    await sleeper
    await _until(lambda: store.shared)
    await router.complete(chat())
    await client.aclose()
    await router.aclose()


async def test_an_unreachable_redis_leaks_no_password(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with socket_port() as port:
        url = f"redis://:hunter2-very-secret@127.0.0.1:{port}/0"
        config = StateConfig(backend="redis", url=url, timeout_ms=50, retry_interval=10)
    assert "hunter2" not in repr(config)
    assert config.password is not None
    store = RedisStore(config, clock=ManualClock(autojump=False), groups={"a": "chat"})
    router = Router(
        RouterConfig(model_list=(dep("a"),)),
        {"sim": SimulatedProvider(ManualClock(autojump=False), seed=1)},
        clock=ManualClock(autojump=False),
        state=store,
    )
    await router.complete(chat())  # served on local state
    status = router.state_status()
    assert status == {
        "backend": "redis",
        "url": f"redis://127.0.0.1:{port}/0",
        "shared": False,
        "outages": 1,
        "round_trips": status["round_trips"],
    }
    assert "hunter2" not in str(router.state_status())
    assert "hunter2" not in caplog.text
    assert any("unavailable" in r.getMessage() for r in caplog.records)
    with pytest.raises(ConfigError) as caught:
        StateConfig(backend="redis", url="http://:hunter2-very-secret@h/0")
    assert "hunter2" not in str(caught.value)
    await router.aclose()


class socket_port:
    """A loopback port nothing listens on."""

    def __enter__(self) -> int:
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        return port

    def __exit__(self, *exc: object) -> None:
        return None


def _served(recorder: Recorder) -> list[str]:
    return [e.deployment_id for e in recorder.of(AttemptFinished) if e.error is None]
