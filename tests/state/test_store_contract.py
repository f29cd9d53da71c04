"""The contract every state store honours, run against each implementation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest
from choosers import Only

from turnout.config.router import BreakerConfig, Deployment, RouterConfig
from turnout.config.state import StateConfig
from turnout.errors import FailureKind
from turnout.health import poison
from turnout.health.ejection import Admission
from turnout.health.poison import Hold
from turnout.health.record import BreakerPhase, CooldownReason
from turnout.health.rules import HealthPolicy, Outcome
from turnout.observe.events import BreakerTransition, CooldownEntered, CooldownLeft
from turnout.state.base import StateStore
from turnout.state.memory import MemoryStateStore
from turnout.state.redis import RedisStore
from turnout.state.redis_records import Clocks

WALL = 1_800_000_000.0


def _redis(fixture: str) -> Callable[[pytest.FixtureRequest], StateStore]:
    """A Redis store on the session's private server, Cluster or Sentinel setup (`fixture`),
    its clocks pinned to Redis' (times as given). Commands get two seconds: a loaded machine
    (or a fresh client finding a Cluster's slots) must not pass for Redis being down; the
    outage tests bound it tighter."""

    def make(request: pytest.FixtureRequest) -> StateStore:
        server = request.getfixturevalue(fixture)
        server.flush()
        config = StateConfig(backend="redis", url=server.url, timeout_ms=2000)
        return RedisStore(config, clocks=Clocks())

    return make


STORES: dict[str, Callable[[pytest.FixtureRequest], StateStore]] = {
    "memory": lambda request: MemoryStateStore(),
    "redis": _redis("redis_server"),
    "cluster": _redis("redis_cluster"),
    "sentinel": _redis("redis_sentinel"),
}


@pytest.fixture(
    params=[
        "memory",
        *(
            pytest.param(name, marks=pytest.mark.services)
            for name in ("redis", "cluster", "sentinel")
        ),
    ]
)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[StateStore]:
    made = STORES[request.param](request)
    yield made
    if isinstance(made, RedisStore):
        assert made.shared, "the Redis store fell back to local state"
        await made.aclose()


def _policy(**breaker: object) -> HealthPolicy:
    deployment = Deployment(model_name="g", model="m", id="d")
    config = RouterConfig(model_list=(deployment,), breaker=BreakerConfig(**breaker))  # type: ignore[arg-type]
    return HealthPolicy.for_deployment(deployment, config)


async def _begin(
    store: StateStore, deployment_id: str, policy: HealthPolicy, now: float, wall: float
) -> tuple[Admission, list[object]]:
    """Start an attempt on `deployment_id`, chosen from a group of its own."""

    chosen, admission, events = await store.begin(
        (deployment_id,), Only(deployment_id, [deployment_id]), {deployment_id: policy}, now, wall
    )
    assert chosen == deployment_id
    return admission, list(events)


async def _finish(
    store: StateStore,
    deployment_id: str,
    outcome: Outcome,
    policy: HealthPolicy,
    now: float,
    wall: float,
) -> list[object]:
    token, events = await store.finish(deployment_id, outcome, policy, now, wall)
    assert token == 0
    return list(events)


async def test_unknown_ids_start_fresh(store: StateStore) -> None:
    [state] = await store.snapshot(["new"])
    assert state.in_flight == 0
    assert state.latency is None
    assert not state.cooling(0)


async def test_begin_and_finish_count_in_flight_and_usage(store: StateStore) -> None:
    policy = _policy()
    assert (await _begin(store, "d", policy, 0, WALL))[0] is Admission.NORMAL
    assert (await _begin(store, "d", policy, 0, WALL))[0] is Admission.NORMAL
    [state] = await store.snapshot(["d"])
    assert state.in_flight == 2
    assert state.usage_this_minute(WALL) == (2, 0)
    await _finish(store, "d", Outcome(None, 0.5, tokens=30), policy, 1, WALL + 1)
    [state] = await store.snapshot(["d"])
    assert state.in_flight == 1
    assert state.usage_this_minute(WALL + 1) == (2, 30)
    assert state.latency == 0.5


async def test_attempts_ending_while_others_start_release_their_own_leases(
    store: StateStore,
) -> None:
    """An attempt that ends while another starts must not release the newcomer's lease: its
    own would go on counting in flight (until it expired, in Redis) after everything ended."""
    policy = _policy()
    for _ in range(2):
        await _begin(store, "d", policy, 0, WALL)
    for _ in range(3):
        await asyncio.gather(
            _begin(store, "d", policy, 0, WALL),
            _finish(store, "d", Outcome(None, 0.1), policy, 0, WALL),
        )
    for _ in range(2):
        await _finish(store, "d", Outcome(None, 0.1), policy, 0, WALL)
    [state] = await store.snapshot(["d"])
    assert state.in_flight == 0


async def test_failures_cool_down_and_cooldowns_can_be_lifted(store: StateStore) -> None:
    policy = _policy()
    await _begin(store, "d", policy, 0, WALL)
    events = await _finish(
        store, "d", Outcome(FailureKind.RATE_LIMITED, 0.1, retry_after=9), policy, 0, WALL
    )
    assert events == [
        CooldownEntered("d", CooldownReason.RATE_LIMITED, 9.0, 9.0),
        BreakerTransition("d", BreakerPhase.CLOSED, BreakerPhase.OPEN),
    ]
    [state] = await store.snapshot(["d"])
    assert state.cooling(8.9)
    assert await store.lift_cooldown("d") == [
        CooldownLeft("d", CooldownReason.RATE_LIMITED),
        BreakerTransition("d", BreakerPhase.OPEN, BreakerPhase.CLOSED),
    ]
    [state] = await store.snapshot(["d"])
    assert not state.cooling(0)


async def test_manual_cooldown_never_shortens(store: StateStore) -> None:
    policy = _policy()
    assert len(await store.cool_down("d", CooldownReason.MANUAL, 60, policy, 0)) == 2
    assert await store.cool_down("d", CooldownReason.MANUAL, 5, policy, 0) == []


async def test_probe_admission_is_bounded(store: StateStore) -> None:
    policy = _policy(failure_threshold=1, open_timeout=10, half_open_probes=1)
    await _begin(store, "d", policy, 0, WALL)
    events = await _finish(store, "d", Outcome(FailureKind.SERVER_ERROR, 0.1), policy, 0, WALL)
    assert BreakerTransition("d", BreakerPhase.CLOSED, BreakerPhase.OPEN) in events
    assert (await _begin(store, "d", policy, 5, WALL))[0] is Admission.REFUSED
    admission, events = await _begin(store, "d", policy, 10, WALL)
    assert admission is Admission.PROBE
    assert events == [
        CooldownLeft("d", CooldownReason.CONSECUTIVE_FAILURES),
        BreakerTransition("d", BreakerPhase.OPEN, BreakerPhase.HALF_OPEN),
    ]
    assert (await _begin(store, "d", policy, 10, WALL))[0] is Admission.REFUSED
    # The first successful probe puts it back in rotation.
    events = await _finish(store, "d", Outcome(None, 0.1, probe=True), policy, 11, WALL + 11)
    assert events == [BreakerTransition("d", BreakerPhase.HALF_OPEN, BreakerPhase.CLOSED)]
    assert (await _begin(store, "d", policy, 11, WALL + 11))[0] is Admission.NORMAL


async def test_probes_still_out_keep_their_slots_when_another_is_answered(
    store: StateStore,
) -> None:
    """A probe's answer rewrites the record; the probes still out must keep their slots (and
    their tokens' expiry), or the bound leaks by one slot per answer."""
    policy = _policy(failure_threshold=1, open_timeout=10, half_open_probes=2, success_threshold=5)
    await _begin(store, "d", policy, 0, WALL)
    await _finish(store, "d", Outcome(FailureKind.SERVER_ERROR, 0.1), policy, 0, WALL)
    for expected in (Admission.PROBE, Admission.PROBE, Admission.REFUSED):
        assert (await _begin(store, "d", policy, 10, WALL + 10))[0] is expected
    assert await _finish(store, "d", Outcome(None, 0.1, probe=True), policy, 11, WALL + 11) == []
    for expected in (Admission.PROBE, Admission.REFUSED):  # one slot free, not two
        assert (await _begin(store, "d", policy, 11, WALL + 11))[0] is expected
    [state] = await store.snapshot(["d"])
    assert (state.phase, state.probes) == (BreakerPhase.HALF_OPEN, 2)


async def test_a_streaming_probes_first_chunk_counts_as_its_success(store: StateStore) -> None:
    policy = _policy(failure_threshold=1)
    await _begin(store, "d", policy, 0, WALL)
    await _finish(store, "d", Outcome(FailureKind.SERVER_ERROR, 0.1), policy, 0, WALL)
    assert (await _begin(store, "d", policy, 5, WALL + 5))[0] is Admission.PROBE
    assert await store.probe_answered("d", policy, 5.5) == [
        BreakerTransition("d", BreakerPhase.HALF_OPEN, BreakerPhase.CLOSED)
    ]
    [state] = await store.snapshot(["d"])
    assert (state.phase, state.probes, state.in_flight) == (BreakerPhase.CLOSED, 0, 1)
    # The stream ends later, settled as an ordinary attempt.
    assert await _finish(store, "d", Outcome(None, 3.0), policy, 8, WALL + 8) == []
    assert await store.probe_answered("gone", policy, 8) == []


async def test_an_expired_ejection_moves_to_probing(store: StateStore) -> None:
    policy = _policy(failure_threshold=1)
    await _begin(store, "d", policy, 0, WALL)
    await _finish(store, "d", Outcome(FailureKind.SERVER_ERROR, 0.1), policy, 0, WALL)
    assert await store.expire("d", 4.9) == []
    assert await store.expire("d", 5.0) == [
        CooldownLeft("d", CooldownReason.CONSECUTIVE_FAILURES),
        BreakerTransition("d", BreakerPhase.OPEN, BreakerPhase.HALF_OPEN),
    ]
    [state] = await store.snapshot(["d"])
    assert (state.phase, state.ejections, state.cooldown_until) == (BreakerPhase.HALF_OPEN, 1, 0)
    assert await store.expire("d", 6.0) == []
    assert await store.expire("unknown", 6.0) == []


async def test_finish_for_a_forgotten_deployment_is_harmless(store: StateStore) -> None:
    policy = _policy()
    await _begin(store, "gone", policy, 0, WALL)
    await store.retain(["other"])
    assert await _finish(store, "gone", Outcome(None, 0.1), policy, 0, WALL) == []
    [state] = await store.snapshot(["gone"])
    assert state.in_flight == 0


async def test_server_errors_are_held_until_their_request_is_judged(store: StateStore) -> None:
    policy = _policy()
    failed = Outcome(FailureKind.SERVER_ERROR, 0.1)
    await _begin(store, "d", policy, 0, WALL)
    await _finish(store, "d", failed, policy, 0, WALL)
    await _begin(store, "d", policy, 0, WALL)
    assert await store.finish("d", failed, policy, 0, WALL, []) == (0, [])  # it is failing
    for now in (1, 2, 2, 2, 2):
        await _begin(store, "d", policy, now, WALL + now)
        await _finish(store, "d", Outcome(None, 0.1), policy, now, WALL + now)
    tokens = []
    for _ in range(2):
        await _begin(store, "d", policy, 3, WALL + 3)
        token, events = await store.finish("d", failed, policy, 3, WALL + 3, [])
        assert token and events == []
        assert await store.still_held("d", token)
        tokens.append(token)
    [state] = await store.snapshot(["d"])
    assert (state.in_flight, state.failures) == (0, 2)
    assert await store.resolve_holds([Hold("d", tokens[0], policy)], False, 4, WALL + 4) == []
    await store.resolve_holds([Hold("d", tokens[1], policy)], True, 4, WALL + 4)
    [state] = await store.snapshot(["d"])
    assert state.failures == 3
    assert not await store.still_held("d", tokens[1])
    assert await store.resolve_holds([Hold("gone", 1, policy)], True, 4, WALL + 4) == []


async def _held(store: StateStore, deployment_id: str, policy: HealthPolicy, now: float) -> int:
    await _begin(store, deployment_id, policy, now, WALL + now)
    token, _ = await store.finish(
        deployment_id, Outcome(FailureKind.SERVER_ERROR, 0.1), policy, now, WALL + now, []
    )
    return token


def _holds(holds: list[tuple[str, int]], policy: HealthPolicy) -> list[Hold]:
    return [Hold(deployment_id, token, policy) for deployment_id, token in holds]


async def _served(store: StateStore, deployment_id: str, policy: HealthPolicy, now: float) -> None:
    await _begin(store, deployment_id, policy, now, WALL + now)
    await _finish(store, deployment_id, Outcome(None, 0.1), policy, now, WALL + now)


async def test_a_dropped_failure_counts_until_a_deployment_of_its_verdict_serves(
    store: StateStore,
) -> None:
    policy = _policy()
    for deployment_id in ("a", "b"):
        for _ in range(5):
            await _served(store, deployment_id, policy, 1)
    holds = [("a", await _held(store, "a", policy, 2)), ("b", await _held(store, "b", policy, 2))]
    assert all(token > 0 for _, token in holds)
    assert await store.judge(_holds(holds, policy), 2, 60, 2) == ("a", "b")
    states = await store.snapshot(["a", "b"])
    assert [s.failures for s in states] == [0, 0]
    assert not any([await store.still_held(d, token) for d, token in holds])  # dropped
    # Nothing served since on a or b: a's next server error is not held; it counts with the
    # dropped one before it.
    token, _ = await store.finish(
        "a", Outcome(FailureKind.SERVER_ERROR, 0.1), policy, 3, WALL + 3, []
    )
    assert token == poison.FAILING
    [a] = await store.snapshot(["a"])
    assert (a.failures, a.consecutive_failures) == (2, 2)
    # b serves: its own dropped failure and every one of that verdict are explained.
    await _served(store, "b", policy, 4)
    await _begin(store, "b", policy, 5, WALL + 5)
    await _finish(store, "b", Outcome(FailureKind.CONNECTION, 0.1), policy, 5, WALL + 5)
    [b] = await store.snapshot(["b"])
    assert (b.failures, b.consecutive_failures) == (1, 1)


async def test_another_deployments_success_explains_a_dropped_failure(store: StateStore) -> None:
    policy = _policy()
    for deployment_id in ("a", "b"):
        await _served(store, deployment_id, policy, 1)
    holds = [("a", await _held(store, "a", policy, 2)), ("b", await _held(store, "b", policy, 2))]
    assert await store.judge(_holds(holds, policy), 2, 60, 2) == ("a", "b")
    await _served(store, "b", policy, 3)  # b serves; a serves nothing
    # a's dropped failure is explained: the next server error is held again, and a failure
    # that counts counts alone.
    assert await _held(store, "a", policy, 4) > 0
    await _begin(store, "a", policy, 4, WALL + 4)
    await _finish(store, "a", Outcome(FailureKind.CONNECTION, 0.1), policy, 4, WALL + 4)
    [a] = await store.snapshot(["a"])
    assert (a.failures, a.consecutive_failures) == (2, 2)  # the held one, then this one
    # A verdict only remembers deployments whose hold was still clean.
    for _ in range(5):
        await _served(store, "a", policy, 5)
    await _served(store, "c", policy, 5)
    late = [("a", await _held(store, "a", policy, 6)), ("c", await _held(store, "c", policy, 6))]
    assert all(token > 0 for _, token in late)
    await _begin(store, "c", policy, 6, WALL + 6)
    await _finish(store, "c", Outcome(FailureKind.CONNECTION, 0.1), policy, 6, WALL + 6)
    assert await store.judge(_holds(late, policy), 1, 60, 6) == ("a",)
    await _served(store, "c", policy, 7)  # c was failing: its success explains nothing for a
    token, _ = await store.finish(
        "a", Outcome(FailureKind.SERVER_ERROR, 0.1), policy, 8, WALL + 8, []
    )
    assert token == poison.FAILING
