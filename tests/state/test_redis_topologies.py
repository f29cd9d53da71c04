"""The store on a Redis Cluster and behind Sentinel: what only those topologies can break.

On a Cluster a script touches one hash slot, and every model group is a slot of its own: what
spans groups (a poison verdict on a request that failed on a deployment and on its fallback)
must still be shared, not quietly kept in one process. Behind Sentinel, the master can change:
the store must follow it to the promoted replica without a caller ever seeing an error.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_client
from choosers import Only
from redis.crc import key_slot

from harness import Recorder, chat, dep
from services import RedisCluster, RedisSentinel, missing_service
from turnout import Router, RouterConfig
from turnout.config.router import Deployment
from turnout.config.state import StateConfig
from turnout.errors import FailureKind
from turnout.health.poison import Hold
from turnout.health.rules import HealthPolicy, Outcome
from turnout.observe.events import AttemptFinished
from turnout.providers.simulated import SimulatedProvider
from turnout.state.redis import RedisStore
from turnout.state.redis_records import Clocks
from turnout.testing import ManualClock

pytestmark = pytest.mark.services

WALL = 1_800_000_000.0


def _policy() -> HealthPolicy:
    deployment = Deployment(model_name="chat", model="m", id="a")
    return HealthPolicy.for_deployment(deployment, RouterConfig(model_list=(deployment,)))


async def _held(store: RedisStore, deployment_id: str, policy: HealthPolicy, now: float) -> int:
    await store.begin((deployment_id,), Only(deployment_id), {deployment_id: policy}, now, WALL)
    failed = Outcome(FailureKind.SERVER_ERROR, 0.1)
    token, _ = await store.finish(deployment_id, failed, policy, now, WALL, [])
    return token


async def test_a_verdict_across_model_groups_is_shared_on_a_cluster(
    redis_cluster: RedisCluster,
) -> None:
    """A request fails on `a` (group chat) and on its fallback `s` (group spare): two slots,
    on two nodes. The verdict dropping both holds is made through one instance and is what
    another instance reads; neither falls back to local state."""
    redis_cluster.flush()
    groups = {"a": "chat", "s": "spare"}
    config = StateConfig(backend="redis", url=redis_cluster.url, timeout_ms=1000, cache_ms=0)
    first = RedisStore(config, clock=ManualClock(), groups=groups, clocks=Clocks())
    second = RedisStore(config, clock=ManualClock(), groups=groups, clocks=Clocks())
    assert key_slot(first._key("a", "r").encode()) != key_slot(first._key("s", "r").encode())
    policy = _policy()

    async def serve(store: RedisStore, now: float) -> None:
        for deployment_id in groups:
            policies = {deployment_id: policy}
            await store.begin((deployment_id,), Only(deployment_id), policies, now, WALL)
            await store.finish(deployment_id, Outcome(None, 0.1), policy, now, WALL)

    await serve(first, 1)  # both answer other requests: their server errors are held
    holds = [Hold(d, await _held(first, d, policy, 2), policy) for d in groups]
    assert all(hold.token > 0 for hold in holds)
    assert all([await second.still_held(h.deployment_id, h.token) for h in holds])
    assert await first.judge(holds, 2, 60, 2) == ("a", "s")
    # Dropped in Redis, in both slots: the other instance sees no hold and no failure.
    assert not any([await second.still_held(h.deployment_id, h.token) for h in holds])
    states = await second.snapshot(["a", "s"])  # one read over both slots (the health report)
    assert [(s.failures, s.successes) for s in states] == [(0, 1), (0, 1)]
    # Both serve again (which explains the dropped failures); a request's failures held on
    # both and blamed through the second instance count, for the first to see.
    await serve(second, 3)
    holds = [Hold(d, await _held(second, d, policy, 4), policy) for d in groups]
    assert all(hold.token > 0 for hold in holds)
    await second.resolve_holds(holds, True, 4, WALL)
    states = await first.snapshot(["a", "s"])
    assert [(s.failures, s.successes) for s in states] == [(1, 2), (1, 2)]
    assert first.shared and second.shared
    assert (first.outages, second.outages) == (0, 0)
    await first.aclose()
    await second.aclose()


@pytest.fixture
def failing_over(tmp_path: Path) -> Iterator[RedisSentinel]:
    """A master, its replica and a Sentinel of the test's own: the test kills the master."""
    for binary in ("redis-server", "redis-cli"):
        if shutil.which(binary) is None:
            missing_service(f"{binary} is not installed")
    setup = RedisSentinel(tmp_path, replicas=1)
    setup.start()
    try:
        yield setup
    finally:
        setup.stop()


async def _traffic(router: Router, stop: asyncio.Event, served: list[str]) -> None:
    """Requests one after another until told to stop; any failure ends it with the error."""
    while not stop.is_set():
        await router.complete(chat())
        served.append("ok")
        await asyncio.sleep(0.002)


async def _until(condition: Any, seconds: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_sentinel_failover_is_followed_without_a_client_error(
    failing_over: RedisSentinel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "turnout.state")
    clock = ManualClock(autojump=False)
    config = StateConfig(backend="redis", url=failing_over.url, timeout_ms=100, retry_interval=0.05)
    store = RedisStore(config, clock=clock, groups=dict.fromkeys("abc", "chat"))
    recorder = Recorder()
    router = Router(
        RouterConfig(model_list=(dep("a"), dep("b"), dep("c"))),
        {"sim": SimulatedProvider(clock, seed=1)},
        clock=clock,
        rng=random.Random(1),
        state=store,
        observers=[recorder],
    )
    stop = asyncio.Event()
    served: list[str] = []
    task = asyncio.create_task(_traffic(router, stop, served))
    try:
        await _until(lambda: len(served) >= 20)
        await router.cool_down("a", 600)  # made on the first master, replicated
        # The master is killed and its replica promoted while requests go on.
        promoted = await asyncio.to_thread(failing_over.fail_over)
        # Routing state failed open meanwhile (when a command found the master gone before
        # redis-py's own retry found the new one), and follows the Sentinel to the new master.
        await _until(lambda: store.shared)
        count = len(served)
        await _until(lambda: len(served) >= count + 20)
        await router.cool_down("b", 600)
        await _until(lambda: len(served) >= count + 40)
    finally:
        stop.set()
        await task  # raises if any request failed
    assert store.shared and store.outages == store.recoveries <= 1
    served_by = [e.deployment_id for e in recorder.of(AttemptFinished) if e.error is None]
    assert served_by.count("a") < 20  # only before its ejection, which the failover kept
    # Both ejections are on the promoted master, where every instance now reads them.
    raw = redis_client.Redis(host="127.0.0.1", port=promoted.port)
    for deployment_id in ("a", "b"):
        assert await raw.hget(f"turnout:{{chat}}:r:{deployment_id}", "cr") == b"manual"
    await raw.aclose()
    messages = [r.getMessage() for r in caplog.records]
    assert sum("unavailable" in m for m in messages) == store.outages  # logged once if at all
    assert sum("state is shared" in m for m in messages) == store.outages
    await router.aclose()
