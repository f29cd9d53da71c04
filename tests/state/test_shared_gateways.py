"""Two real `turnout serve` processes sharing their routing state through one private Redis.

Each test starts two gateway processes on free loopback ports with ``state: {backend: redis}``
(its own key prefix), serves the fake OpenAI upstreams from the test's own event loop on
127.0.0.1, and calls the gateways with the official `openai` SDK at its default retries. What
one instance learns the other must act on without finding it out by itself: an ejection, the
fleet's probe slots, a deployment's requests of the minute; and when Redis goes away, neither
may fail a request, and both must share again once it is back.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import openai
import pytest
from aiohttp import web

from fakes.fake_openai import FakeOpenAI, Fault
from litellm_shape import one_per_model
from services import RedisServer

pytestmark = pytest.mark.services

MESSAGES: Any = [{"role": "user", "content": "Hello"}]
_prefixes = itertools.count()


class CountingFake(FakeOpenAI):
    """A fake OpenAI upstream that also counts the requests it is serving at once (delays
    included), and the most it ever served at once."""

    def __init__(self) -> None:
        super().__init__()
        self.active = 0
        self.peak = 0

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            return await super()._serve(request)
        finally:
            self.active -= 1


@dataclass
class Instance:
    """One `turnout serve` process; its log is read all along so that it never blocks."""

    process: asyncio.subprocess.Process
    port: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def client(self) -> openai.AsyncOpenAI:
        """The official SDK at its default retries (max_retries=2)."""
        return openai.AsyncOpenAI(base_url=f"{self.url}/v1", api_key="sk-client", timeout=15)

    async def health(self) -> dict[str, Any]:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"{self.url}/health") as response,
        ):
            assert response.status == 200
            report: dict[str, Any] = msgspec.json.decode(await response.read())
        return report

    async def deployment(self, deployment_id: str) -> dict[str, Any]:
        entries: list[dict[str, Any]] = (await self.health())["deployments"]
        [entry] = [d for d in entries if d["id"] == deployment_id]
        return entry

    async def shared(self) -> bool:
        state = (await self.health())["state"]
        assert state["backend"] == "redis"
        return bool(state["shared"])


async def _drain(instance: Instance) -> None:
    stream = instance.process.stderr
    assert stream is not None
    while line := await stream.readline():
        instance.lines.append(line.decode(errors="replace"))


@asynccontextmanager
async def gateways(
    tmp_path: Path, config: dict[str, Any], count: int = 2
) -> AsyncIterator[list[Instance]]:
    """`count` gateway processes serving `config` (JSON is YAML), each on a port of its own;
    killed at the end whatever happens."""
    path = tmp_path / f"gateway-{next(_prefixes)}.yaml"
    path.write_text(json.dumps(config))
    command = [sys.executable, "-m", "turnout.cli", "serve", "--config", str(path)]
    command += ["--host", "127.0.0.1", "--port", "0"]
    instances: list[Instance] = []
    drains: list[asyncio.Task[None]] = []
    try:
        for _ in range(count):
            process = await asyncio.create_subprocess_exec(
                *command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            instances.append(Instance(process))
        for instance in instances:
            drains.append(asyncio.create_task(_drain(instance)))
        async with asyncio.timeout(20):
            for instance in instances:
                while instance.port == 0:
                    assert instance.process.returncode is None, "exited:\n" + instance.log
                    for line in instance.lines:
                        if "listening on http://" in line:
                            instance.port = int(line.rsplit(":", 1)[1].split()[0])
                    await asyncio.sleep(0.02)
        yield instances
    finally:
        for instance in instances:
            if instance.process.returncode is None:
                instance.process.kill()
            await instance.process.wait()
        for drain in drains:
            drain.cancel()
        await asyncio.gather(*drains, return_exceptions=True)
    for instance in instances:
        assert "Traceback" not in instance.log, instance.log


def _deployment(deployment_id: str, group: str, fake: FakeOpenAI, **extra: Any) -> dict[str, Any]:
    return {
        "model_name": group,
        "id": deployment_id,
        "provider": "openai-compatible",
        "model": "gpt-4o-mini",
        "base_url": fake.url,
        "api_key": "sk-fake",
        **extra,
    }


def turnout_config(
    redis_url: str,
    deployments: list[dict[str, Any]],
    fallbacks: dict[str, list[str]] | None = None,
    **router: Any,
) -> dict[str, Any]:
    """turnout's format, defaults everywhere but the Redis and a key prefix of the test's own."""
    config: dict[str, Any] = {
        "server": {"port": 0, "shutdown_timeout": 1},
        "state": {"backend": "redis", "url": redis_url, "prefix": f"t{next(_prefixes)}"},
        "model_list": deployments,
        **router,
    }
    if fallbacks:
        config["fallbacks"] = {"general": fallbacks}
    return config


async def _ask(instance: Instance, model: str = "chat") -> str:
    async with instance.client() as client:
        completion = await client.chat.completions.create(model=model, messages=MESSAGES)
    assert completion.choices[0].message.content
    return completion.id


async def _until(condition: Callable[[], Awaitable[bool]], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not await condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.02)


async def _ejected(instance: Instance, deployment_id: str) -> bool:
    return bool((await instance.deployment(deployment_id))["ejection"] == "ejected")


SHAPES = ["one_per_model", "group"]


async def _upstreams(stack: AsyncExitStack) -> tuple[CountingFake, CountingFake]:
    primary = await stack.enter_async_context(CountingFake())
    other = await stack.enter_async_context(CountingFake())
    return primary, other


def _shaped(
    shape: str, redis_url: str, primary: FakeOpenAI, other: FakeOpenAI, **primary_extra: Any
) -> dict[str, Any]:
    """Deployment `a` on `primary`, and `b` on `other`: `b` is `a`'s fallback model (one
    deployment per model) or its neighbour in one group."""
    a = _deployment("a", "chat", primary, **primary_extra)
    if shape == "one_per_model":
        return turnout_config(
            redis_url, [a, _deployment("b", "spare", other)], fallbacks={"chat": ["spare"]}
        )
    return turnout_config(redis_url, [a, _deployment("b", "chat", other)])


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_deployment_ejected_through_one_instance_is_ejected_in_the_other(
    redis_server: RedisServer, tmp_path: Path, shape: str
) -> None:
    await _an_ejection_is_shared(tmp_path, redis_server.url, shape)


@pytest.mark.parametrize("topology", ["redis_cluster", "redis_sentinel"])
async def test_an_ejection_is_shared_through_a_cluster_or_a_sentinel(
    request: pytest.FixtureRequest, tmp_path: Path, topology: str
) -> None:
    """The users' shape (one deployment per model, a fallback) on a Redis Cluster, where the
    two models are two slots on two nodes, and behind a Sentinel."""
    service = request.getfixturevalue(topology)
    await _an_ejection_is_shared(tmp_path, service.url, "one_per_model")


async def _an_ejection_is_shared(tmp_path: Path, redis_url: str, shape: str) -> None:
    async with AsyncExitStack() as stack:
        primary, other = await _upstreams(stack)
        primary.set_default(Fault.server_error())
        config = _shaped(shape, redis_url, primary, other)
        # Checked below: no instance ever falls back to local state. A command slower than the
        # default 150 ms on a loaded machine would; this test is about sharing, not latency.
        config["state"]["timeout_ms"] = 1000
        first, second = instances = await stack.enter_async_context(gateways(tmp_path, config))
        for _ in range(20):  # every request succeeds, on `b` once `a` fails
            await _ask(first)
            if await _ejected(first, "a"):
                break
        assert await _ejected(first, "a"), "a failing deployment was never ejected"
        seen = len(primary.requests)
        # The other instance never sent `a` a request, and sees the ejection at once.
        await _until(lambda: _ejected(second, "a"), 1.0, "the second instance sees it")
        entry = await second.deployment("a")
        assert entry["cooling_down"] and entry["cooldown_seconds_left"] > 0
        served = len(other.requests)
        for _ in range(5):
            await _ask(second)
        assert len(primary.requests) == seen  # not one request of the second's reached `a`
        assert len(other.requests) == served + 5
        for instance in instances:  # shared all along: nothing fell back to local state
            assert await instance.shared()
            assert "state: Redis" not in instance.log, instance.log


async def test_half_open_probes_are_bounded_across_both_instances(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    probes = 2
    async with AsyncExitStack() as stack:
        primary, other = await _upstreams(stack)
        primary.set_default(Fault.server_error())
        config = _shaped("group", redis_server.url, primary, other, cooldown_time=1)
        config["breaker"] = {"half_open_probes": probes, "success_threshold": 50}
        instances = await stack.enter_async_context(gateways(tmp_path, config))
        for _ in range(20):
            await _ask(instances[0])
            if await _probing_or_open(instances[0]):
                break
        # Ejected for a second only: on a loaded machine it may be probing already.
        assert await _probing_or_open(instances[0])
        # Probes now succeed, slowly: each holds its slot for a while, and 50 successes are
        # needed to go back in rotation, so the deployment stays probing while both instances
        # send it all they can.
        primary.set_default(Fault("delay", seconds=0.4))
        await _until(lambda: _probing_or_open(instances[1]), 1.0, "the second sees it")
        primary.peak = 0
        probed = len(primary.requests)
        stop = time.monotonic() + 3.0

        async def hammer(instance: Instance) -> None:
            async with instance.client() as client:
                while time.monotonic() < stop:
                    completion = await client.chat.completions.create(
                        model="chat", messages=MESSAGES
                    )
                    assert completion.choices

        await asyncio.gather(*(hammer(i) for i in instances for _ in range(8)))
        assert len(primary.requests) > probed, "the deployment was never probed"
        assert 1 <= primary.peak <= probes  # never more probes at once than the fleet's bound
        assert (await instances[1].deployment("a"))["ejection"] == "probing"


async def _probing_or_open(instance: Instance) -> bool:
    return (await instance.deployment("a"))["ejection"] in ("ejected", "probing")


def _wait_out_minute_boundary() -> None:
    """Usage is counted per minute (Redis' clock, this machine's too): start early in one."""
    into = time.time() % 60
    if into > 55:
        time.sleep(60.2 - into)


@pytest.mark.parametrize("shape", SHAPES)
async def test_a_deployments_rpm_holds_across_both_instances(
    redis_server: RedisServer, tmp_path: Path, shape: str
) -> None:
    rpm = 5
    async with AsyncExitStack() as stack:
        primary, other = await _upstreams(stack)
        config = _shaped(shape, redis_server.url, primary, other, rpm=rpm)
        instances = await stack.enter_async_context(gateways(tmp_path, config))
        _wait_out_minute_boundary()
        for instance in itertools.islice(itertools.cycle(instances), 4 * rpm):
            await _ask(instance)
        assert len(primary.requests) == rpm  # not 2 * rpm: the limit is the fleet's
        assert len(other.requests) == 3 * rpm  # the rest went to `b`, and none failed


async def test_redis_killed_under_load_costs_no_request_and_sharing_resumes(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        primary, other = await _upstreams(stack)
        config = _shaped("one_per_model", own_redis.url, primary, other)
        first, second = instances = await stack.enter_async_context(gateways(tmp_path, config))
        stopping = asyncio.Event()
        served = [0]

        async def traffic(instance: Instance) -> None:
            async with instance.client() as client:
                while not stopping.is_set():
                    completion = await client.chat.completions.create(
                        model="chat", messages=MESSAGES
                    )
                    assert completion.choices  # any failure ends the test with its error
                    served[0] += 1

        load = [asyncio.create_task(traffic(i)) for i in instances for _ in range(4)]
        try:

            async def flowing(count: int) -> None:
                target = served[0] + count
                await _until(_ready(lambda: served[0] >= target), 10, f"{count} more served")

            await flowing(40)
            assert await first.shared() and await second.shared()
            own_redis.stop()
            for instance in instances:
                await _until(_not(instance.shared), 5, "Redis is found gone")
            await flowing(100)  # served on each instance's own state
            own_redis.start()
            for instance in instances:
                await _until(instance.shared, 10, "Redis is found back")
            await flowing(40)
        finally:
            stopping.set()
            await asyncio.gather(*load)  # raises if any request failed
        for instance in instances:
            assert instance.log.count("unavailable") == 1, instance.log  # logged once
        # Shared again: a new ejection through the first is seen by the second.
        primary.set_default(Fault.server_error())
        for _ in range(20):
            await _ask(first)
            if await _ejected(first, "a"):
                break
        seen = len(primary.requests)
        await _until(lambda: _ejected(second, "a"), 1.0, "the second instance sees it")
        await _ask(second)
        assert len(primary.requests) == seen


def _ready(condition: Callable[[], bool]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return condition()

    return check


def _not(condition: Callable[[], Awaitable[bool]]) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return not await condition()

    return check


async def test_a_litellm_config_with_redis_host_shares_between_instances(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    async with AsyncExitStack() as stack:
        primary, other = await _upstreams(stack)
        primary.set_default(Fault.server_error())
        config = one_per_model(
            primary.url, other.url, ids=True, redis_host="127.0.0.1", redis_port=own_redis.port
        )
        first, second = await stack.enter_async_context(gateways(tmp_path, config))
        assert (await first.health())["state"]["url"] == own_redis.url
        for _ in range(20):
            await _ask(first)
            if await _ejected(first, "chat"):
                break
        assert await _ejected(first, "chat")
        seen = len(primary.requests)
        await _until(lambda: _ejected(second, "chat"), 1.0, "the second instance sees it")
        for _ in range(3):
            await _ask(second)
        assert len(primary.requests) == seen
        assert await second.shared()


@pytest.mark.parametrize("shape", SHAPES)
async def test_max_parallel_requests_holds_across_both_instances(
    redis_server: RedisServer, tmp_path: Path, shape: str
) -> None:
    parallel = 2
    async with AsyncExitStack() as stack:
        primary, other = await _upstreams(stack)
        primary.set_default(Fault("delay", seconds=0.2))
        config = _shaped(shape, redis_server.url, primary, other, max_parallel_requests=parallel)
        instances = await stack.enter_async_context(gateways(tmp_path, config))
        stop = time.monotonic() + 1.5

        async def hammer(instance: Instance) -> None:
            async with instance.client() as client:
                while time.monotonic() < stop:
                    completion = await client.chat.completions.create(
                        model="chat", messages=MESSAGES
                    )
                    assert completion.choices

        await asyncio.gather(*(hammer(i) for i in instances for _ in range(6)))
        assert primary.peak == parallel  # used to the full, never beyond, across the fleet
        assert len(other.requests) > 0
        # Every attempt's lease was released: nothing counts in flight once all has ended (a
        # lease left behind would count for lease_ttl, 30 s); each view is at most cache_ms old.
        for instance in instances:

            async def idle(instance: Instance = instance) -> bool:
                return bool((await instance.deployment("a"))["in_flight"] == 0)

            await _until(idle, 2.0, "no attempt is in flight")
