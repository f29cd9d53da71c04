"""What only a shared store must do: keys, clocks, leases, and several instances on one Redis.

Each "instance" is its own `RedisStore` (and, where routing matters, its own `Router` with its
own simulated provider and clock) on the session's private redis-server.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as redis_client
from choosers import Only
from redis.crc import key_slot

from harness import Recorder, Scripted, chat, dep
from turnout import Router, RouterConfig
from turnout.config.router import BreakerConfig, Deployment, FallbackConfig, RoutingConfig
from turnout.config.state import StateConfig
from turnout.errors import FailureKind, ServerError
from turnout.health.ejection import Admission
from turnout.health.record import BreakerPhase, CooldownReason
from turnout.health.rules import HealthPolicy, Outcome
from turnout.observe.events import AttemptFinished, CooldownEntered
from turnout.state.redis import RedisStore
from turnout.state.redis_records import Clocks
from turnout.testing import ManualClock, SimulatedProvider

pytestmark = pytest.mark.services

WALL = 1_800_000_000.0


@pytest.fixture
def server(redis_server: Any) -> Any:
    redis_server.flush()
    return redis_server


@pytest.fixture
async def raw(server: Any) -> AsyncIterator[Any]:
    client = redis_client.from_url(server.url)
    yield client
    await client.aclose()


def _config(server: Any, **fields: Any) -> StateConfig:
    """A loaded machine must not pass for Redis being down (the outage tests bound it)."""
    return StateConfig(backend="redis", url=server.url, **{"timeout_ms": 2000, **fields})


def _policy(deployment: Deployment | None = None, **breaker: Any) -> HealthPolicy:
    deployment = deployment or Deployment(model_name="g", model="m", id="d")
    config = RouterConfig(model_list=(deployment,), breaker=BreakerConfig(**breaker))
    return HealthPolicy.for_deployment(deployment, config)


async def _begin(
    store: RedisStore, ids: tuple[str, ...], chosen: str, policy: HealthPolicy, now: float
) -> Admission:
    clock = ManualClock(now)
    _, admission, _ = await store.begin(
        ids, Only(chosen), dict.fromkeys(ids, policy), now, clock.wall()
    )
    return admission


async def test_every_key_has_a_ttl_and_its_groups_hash_tag(server: Any, raw: Any) -> None:
    store = RedisStore(
        _config(server, prefix="t1"), clock=ManualClock(), groups={"a": "chat", "b": "chat"}
    )
    policy = _policy()
    ids = ("a", "b")
    assert await _begin(store, ids, "a", policy, 0) is Admission.NORMAL
    await store.finish("a", Outcome(None, 0.2, tokens=5), policy, 1, WALL + 1)
    await _begin(store, ids, "b", policy, 1)
    await store.cool_down("b", CooldownReason.MANUAL, 60, policy, 1)
    keys = sorted([k.decode() async for k in raw.scan_iter("t1:*")])
    # a's lease set is empty (its attempt finished), so Redis dropped it.
    assert keys == ["t1:{chat}:l:b", "t1:{chat}:r:a", "t1:{chat}:r:b"]
    for key in keys:
        assert 0 < await raw.ttl(key) <= 86_400, key
    assert len({key_slot(k.encode()) for k in keys}) == 1  # one slot: scripts run on Cluster
    await store.aclose()


async def test_times_are_kept_on_redis_clock(server: Any, raw: Any) -> None:
    # This process's monotonic clock reads 5 s; what is stored is Redis' TIME plus 60 s.
    clock = ManualClock(5.0, epoch=1_000.0)
    store = RedisStore(_config(server), clock=clock)
    events = await store.cool_down("d", CooldownReason.MANUAL, 60, _policy(), clock.now())
    seconds, micros = await raw.time()
    stored = float(await raw.hget("turnout:{d}:r:d", "cu"))
    assert abs(stored - (seconds + micros / 1e6 + 60)) < 2
    [state] = await store.snapshot(["d"])
    assert abs(state.cooldown_until - 65.0) < 0.5  # back on the router's clock
    entered = events[0]
    assert isinstance(entered, CooldownEntered)
    assert abs(entered.until - 65.0) < 0.5
    await store.aclose()


async def test_a_dead_instances_leases_expire(server: Any) -> None:
    dead = RedisStore(_config(server, lease_ttl=1), clock=ManualClock())
    alive = RedisStore(_config(server, lease_ttl=1, cache_ms=0), clock=ManualClock())
    policy = _policy()
    for _ in range(2):
        await _begin(dead, ("d",), "d", policy, 0)
    await dead.aclose()  # gone without finishing: nothing renews its leases
    [state] = await alive.snapshot(["d"])
    assert state.in_flight == 2
    await asyncio.sleep(1.1)
    [state] = await alive.snapshot(["d"])
    assert state.in_flight == 0
    await alive.aclose()


async def test_an_ejection_through_one_instance_is_seen_by_another(server: Any) -> None:
    a = RedisStore(_config(server), clock=ManualClock())
    b = RedisStore(_config(server, cache_ms=0), clock=ManualClock())
    policy = _policy()
    await _begin(a, ("d",), "d", policy, 0)
    await a.finish("d", Outcome(FailureKind.RATE_LIMITED, 0.1, retry_after=30), policy, 0, WALL)
    [state] = await b.snapshot(["d"])
    assert state.cooling(b._clock.now() + 29)
    assert state.cooldown_reason is CooldownReason.RATE_LIMITED
    # B's own decision is refused by the shared record, even from a view taken before it.
    assert await _begin(b, ("d",), "d", policy, 1) is Admission.REFUSED
    await a.lift_cooldown("d")
    assert await _begin(b, ("d",), "d", policy, 1) is Admission.NORMAL
    await a.aclose()
    await b.aclose()


async def test_probes_across_instances_are_bounded(server: Any) -> None:
    stores = [RedisStore(_config(server), clock=ManualClock()) for _ in range(3)]
    policy = _policy(failure_threshold=1, open_timeout=5, half_open_probes=2)
    await _begin(stores[0], ("d",), "d", policy, 0)
    await stores[0].finish("d", Outcome(FailureKind.SERVER_ERROR, 0.1), policy, 0, WALL)
    admissions = [await _begin(s, ("d",), "d", policy, 6) for s in stores * 2]
    assert admissions.count(Admission.PROBE) == 2
    assert admissions.count(Admission.NORMAL) == 0
    # One probe succeeds (through another instance than the one it began on): back for all.
    await stores[2].finish("d", Outcome(None, 0.1, probe=True), policy, 7, WALL + 7)
    fresh = RedisStore(_config(server), clock=ManualClock())
    [state] = await fresh.snapshot(["d"])
    assert state.phase is BreakerPhase.CLOSED
    await fresh.aclose()
    for store in stores:
        await store.aclose()


def _routers(
    server: Any, *deployments: Deployment, **config: Any
) -> list[tuple[Router, Recorder, RedisStore]]:
    """Two gateway instances: each its own router, provider, clock and store."""
    made = []
    for seed in (1, 2):
        # No autojump: the store's round trips take real time, which must not move the
        # clock. Clocks pinned to Redis': the minute under test does not roll meanwhile.
        clock = ManualClock(autojump=False)
        recorder = Recorder()
        store = RedisStore(
            _config(server),
            clock=clock,
            clocks=Clocks(),
            groups={d.id: d.model_name for d in deployments},
        )
        router = Router(
            RouterConfig(model_list=deployments, **config),
            {"sim": Scripted(SimulatedProvider(clock, seed=seed))},
            clock=clock,
            rng=random.Random(seed),
            state=store,
            observers=[recorder],
        )
        made.append((router, recorder, store))
    return made


def _served_by(recorder: Recorder) -> list[str]:
    return [e.deployment_id for e in recorder.of(AttemptFinished) if e.error is None]


async def test_a_failure_through_one_instance_steers_the_other(server: Any) -> None:
    (ra, _, sa), (rb, rec_b, _) = _routers(
        server, dep("a"), dep("b"), breaker=BreakerConfig(failure_threshold=1)
    )
    scripted = ra._bundle.providers["sim"]
    assert isinstance(scripted, Scripted)
    # Through A, deployment a fails once and is ejected; A's request is served by b.
    while True:
        scripted.fail("a", ServerError("boom"))
        await ra.complete(chat())
        [state] = await sa.snapshot(("a",))
        if state.phase is BreakerPhase.OPEN:
            break
    # B never sent a request to a, and sends none now.
    for _ in range(6):
        await rb.complete(chat())
    assert set(_served_by(rec_b)) == {"b"}
    await ra.aclose()
    await rb.aclose()


@pytest.mark.parametrize("shape", ["group", "one_per_model"])
async def test_a_deployments_rpm_holds_across_instances(server: Any, shape: str) -> None:
    if shape == "group":
        deployments = (dep("a", rpm=4), dep("b"))
        config: dict[str, Any] = {}
    else:
        deployments = (dep("a", rpm=4), dep("s", group="spare"))
        config = {"fallbacks": FallbackConfig(general={"chat": ["spare"]})}
    (ra, rec_a, _), (rb, rec_b, _) = _routers(server, *deployments, **config)
    for _ in range(8):
        await ra.complete(chat())
        await rb.complete(chat())
    served = _served_by(rec_a) + _served_by(rec_b)
    assert len(served) == 16  # no client error
    assert served.count("a") == 4  # the limit of the minute, not twice it
    await ra.aclose()
    await rb.aclose()


async def test_a_clean_request_costs_two_round_trips(server: Any) -> None:
    for shape in ((dep("a"), dep("b")), (dep("a"),)):
        [(router, _, store), _other] = _routers(server, *shape)
        await router.complete(chat())  # the first reads the group once
        before = store.round_trips
        await router.complete(chat())
        assert store.round_trips - before == 2
        await router.aclose()
        await _other[0].aclose()


@pytest.mark.parametrize("concurrent", [False, True])
async def test_round_robin_takes_turns_across_instances(server: Any, concurrent: bool) -> None:
    server.flush()
    (ra, rec_a, _), (rb, rec_b, _) = _routers(
        server, dep("a"), dep("b"), dep("c"), routing=RoutingConfig(strategy="round-robin")
    )
    if concurrent:  # both instances at once, many requests in flight in each
        await asyncio.gather(*(r.complete(chat()) for _ in range(20) for r in (ra, rb)))
        served = _served_by(rec_a) + _served_by(rec_b)
        assert len(served) == 40
        counts = [served.count(d) for d in "abc"]
        assert max(counts) - min(counts) <= 1, counts
    else:
        for _ in range(6):
            await ra.complete(chat())
            await rb.complete(chat())
        # Alternating instances, each with a position of its own, would serve a, a, b, b...
        order = [d for pair in zip(_served_by(rec_a), _served_by(rec_b), strict=True) for d in pair]
        assert len(order) == 12
        assert set(order[:3]) == {"a", "b", "c"}
        assert order == order[:3] * 4  # the fleet's turn goes round
    await ra.aclose()
    await rb.aclose()


async def test_a_clean_end_does_not_hold_its_request_up_and_is_never_lost(
    server: Any, raw: Any
) -> None:
    server.flush()
    store = RedisStore(_config(server, prefix="ends"), clock=ManualClock(), groups={"d": "g"})
    policy = _policy()
    clean = Outcome(None, 0.05, tokens=11)
    assert await _begin(store, ("d",), "d", policy, 0) is Admission.NORMAL
    # Redis holds every write for a second: the request's end is sent, not waited for.
    await raw.execute_command("CLIENT", "PAUSE", "1000", "WRITE")
    wall = ManualClock(0).wall()  # the minute the begins count in
    token, events = await asyncio.wait_for(store.finish("d", clean, policy, 0.1, wall), 0.5)
    assert (token, events) == (0, [])
    # This process reads its own writes: the read waits for the end in flight.
    [view] = await store.snapshot(["d"])
    assert (view.successes, view.tpm_used, view.in_flight) == (1, 11, 0)
    # Ends still in flight when the store closes are sent before it closes.
    for _ in range(5):
        assert await _begin(store, ("d",), "d", policy, 1) is Admission.NORMAL
        await store.finish("d", clean, policy, 1.1, wall)
    await store.aclose()
    record = await raw.hgetall("ends:{g}:r:d")
    assert record[b"sv"] == b"6"  # served in all (the per-minute counts may have rolled)
    assert await raw.zcard("ends:{g}:l:d") == 0
