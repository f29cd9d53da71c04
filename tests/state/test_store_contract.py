"""The contract every state store honours, run against each implementation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from turnout.config.router import BreakerConfig, Deployment, RouterConfig
from turnout.errors import FailureKind
from turnout.health.breaker import Admission
from turnout.health.record import BreakerPhase, CooldownReason
from turnout.health.rules import HealthPolicy, Outcome
from turnout.observe.events import BreakerTransition, CooldownEntered, CooldownLeft
from turnout.router import poison
from turnout.state.base import StateStore
from turnout.state.memory import MemoryStateStore

WALL = 1_800_000_000.0
STORES: dict[str, Callable[[], StateStore]] = {"memory": MemoryStateStore}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest) -> StateStore:
    return STORES[request.param]()


def _policy(**breaker: object) -> HealthPolicy:
    deployment = Deployment(model_name="g", model="m", id="d")
    config = RouterConfig(model_list=(deployment,), breaker=BreakerConfig(**breaker))  # type: ignore[arg-type]
    return HealthPolicy.for_deployment(deployment, config)


async def test_unknown_ids_start_fresh(store: StateStore) -> None:
    [state] = await store.snapshot(["new"])
    assert state.in_flight == 0
    assert state.latency is None
    assert not state.cooling(0)


async def test_begin_and_finish_count_in_flight_and_usage(store: StateStore) -> None:
    policy = _policy()
    assert (await store.begin("d", policy, 0, WALL))[0] is Admission.NORMAL
    assert (await store.begin("d", policy, 0, WALL))[0] is Admission.NORMAL
    [state] = await store.snapshot(["d"])
    assert state.in_flight == 2
    assert state.usage_this_minute(WALL) == (2, 0)
    await store.finish("d", Outcome(None, 0.5, tokens=30), policy, 1, WALL + 1)
    [state] = await store.snapshot(["d"])
    assert state.in_flight == 1
    assert state.usage_this_minute(WALL + 1) == (2, 30)
    assert state.latency == 0.5


async def test_failures_cool_down_and_cooldowns_can_be_lifted(store: StateStore) -> None:
    policy = _policy()
    await store.begin("d", policy, 0, WALL)
    events = await store.finish(
        "d", Outcome(FailureKind.RATE_LIMITED, 0.1, retry_after=9), policy, 0, WALL
    )
    assert events == [CooldownEntered("d", CooldownReason.RATE_LIMITED, 9.0, 9.0)]
    [state] = await store.snapshot(["d"])
    assert state.cooling(8.9)
    assert await store.lift_cooldown("d") == [CooldownLeft("d", CooldownReason.RATE_LIMITED)]
    [state] = await store.snapshot(["d"])
    assert not state.cooling(0)


async def test_manual_cooldown_never_shortens(store: StateStore) -> None:
    policy = _policy()
    assert len(await store.cool_down("d", CooldownReason.MANUAL, 60, policy, 0)) == 1
    assert await store.cool_down("d", CooldownReason.MANUAL, 5, policy, 0) == []


async def test_breaker_admission_is_bounded(store: StateStore) -> None:
    policy = _policy(failure_threshold=1, open_timeout=10, half_open_probes=1)
    await store.begin("d", policy, 0, WALL)
    events = await store.finish("d", Outcome(FailureKind.SERVER_ERROR, 0.1), policy, 0, WALL)
    assert BreakerTransition("d", BreakerPhase.CLOSED, BreakerPhase.OPEN) in events
    assert (await store.begin("d", policy, 5, WALL))[0] is Admission.REFUSED
    admission, events = await store.begin("d", policy, 10, WALL)
    assert admission is Admission.PROBE
    assert events == [BreakerTransition("d", BreakerPhase.OPEN, BreakerPhase.HALF_OPEN)]
    assert (await store.begin("d", policy, 10, WALL))[0] is Admission.REFUSED


async def test_finish_for_a_forgotten_deployment_is_harmless(store: StateStore) -> None:
    policy = _policy()
    await store.begin("gone", policy, 0, WALL)
    await store.retain(["other"])
    assert await store.finish("gone", Outcome(None, 0.1), policy, 0, WALL) == []
    [state] = await store.snapshot(["gone"])
    assert state.in_flight == 0


async def test_server_errors_are_held_until_their_request_is_judged(store: StateStore) -> None:
    policy = _policy()
    failed = Outcome(FailureKind.SERVER_ERROR, 0.1)
    await store.begin("d", policy, 0, WALL)
    await store.finish("d", failed, policy, 0, WALL)
    await store.begin("d", policy, 0, WALL)
    assert await store.finish_suspect("d", failed, policy, 0, WALL) == (0, [])  # it is failing
    for now in (1, 2, 2, 2, 2):
        await store.begin("d", policy, now, WALL + now)
        await store.finish("d", Outcome(None, 0.1), policy, now, WALL + now)
    tokens = []
    for _ in range(2):
        await store.begin("d", policy, 3, WALL + 3)
        token, events = await store.finish_suspect("d", failed, policy, 3, WALL + 3)
        assert token and events == []
        assert await store.still_held("d", token)
        tokens.append(token)
    [state] = await store.snapshot(["d"])
    assert (state.in_flight, state.failures) == (0, 2)
    assert await store.resolve_hold("d", tokens[0], False, policy, 4, WALL + 4) == []
    await store.resolve_hold("d", tokens[1], True, policy, 4, WALL + 4)
    [state] = await store.snapshot(["d"])
    assert state.failures == 3
    assert not await store.still_held("d", tokens[1])
    assert await store.resolve_hold("gone", 1, True, policy, 4, WALL + 4) == []


async def _held(store: StateStore, deployment_id: str, policy: HealthPolicy, now: float) -> int:
    await store.begin(deployment_id, policy, now, WALL + now)
    token, _ = await store.finish_suspect(
        deployment_id, Outcome(FailureKind.SERVER_ERROR, 0.1), policy, now, WALL + now
    )
    return token


async def _served(store: StateStore, deployment_id: str, policy: HealthPolicy, now: float) -> None:
    await store.begin(deployment_id, policy, now, WALL + now)
    await store.finish(deployment_id, Outcome(None, 0.1), policy, now, WALL + now)


async def test_a_dropped_failure_counts_until_a_deployment_of_its_verdict_serves(
    store: StateStore,
) -> None:
    policy = _policy()
    for deployment_id in ("a", "b"):
        for _ in range(5):
            await _served(store, deployment_id, policy, 1)
    holds = [("a", await _held(store, "a", policy, 2)), ("b", await _held(store, "b", policy, 2))]
    assert all(token > 0 for _, token in holds)
    await store.drop_holds(holds)
    states = await store.snapshot(["a", "b"])
    assert [(s.failures, s.held) for s in states] == [(0, None), (0, None)]
    # Nothing served since on a or b: a's next server error is not held; it counts with the
    # dropped one before it.
    token, _ = await store.finish_suspect(
        "a", Outcome(FailureKind.SERVER_ERROR, 0.1), policy, 3, WALL + 3
    )
    assert token == poison.FAILING
    [a] = await store.snapshot(["a"])
    assert (a.failures, a.consecutive_failures) == (2, 2)
    # b serves: its own dropped failure and every one of that verdict are explained.
    await _served(store, "b", policy, 4)
    await store.begin("b", policy, 5, WALL + 5)
    await store.finish("b", Outcome(FailureKind.CONNECTION, 0.1), policy, 5, WALL + 5)
    [b] = await store.snapshot(["b"])
    assert (b.failures, b.consecutive_failures) == (1, 1)


async def test_another_deployments_success_explains_a_dropped_failure(store: StateStore) -> None:
    policy = _policy()
    for deployment_id in ("a", "b"):
        await _served(store, deployment_id, policy, 1)
    holds = [("a", await _held(store, "a", policy, 2)), ("b", await _held(store, "b", policy, 2))]
    await store.drop_holds(holds)
    await _served(store, "b", policy, 3)  # b serves; a serves nothing
    # a's dropped failure is explained: the next server error is held again, and a failure
    # that counts counts alone.
    assert await _held(store, "a", policy, 4) > 0
    await store.begin("a", policy, 4, WALL + 4)
    await store.finish("a", Outcome(FailureKind.CONNECTION, 0.1), policy, 4, WALL + 4)
    [a] = await store.snapshot(["a"])
    assert (a.failures, a.consecutive_failures) == (2, 2)  # the held one, then this one
    # A verdict only remembers deployments whose hold was still clean.
    for _ in range(5):
        await _served(store, "a", policy, 5)
    await _served(store, "c", policy, 5)
    late = [("a", await _held(store, "a", policy, 6)), ("c", await _held(store, "c", policy, 6))]
    assert all(token > 0 for _, token in late)
    await store.begin("c", policy, 6, WALL + 6)
    await store.finish("c", Outcome(FailureKind.CONNECTION, 0.1), policy, 6, WALL + 6)
    await store.drop_holds(late)
    await _served(store, "c", policy, 7)  # c was failing: its success explains nothing for a
    token, _ = await store.finish_suspect(
        "a", Outcome(FailureKind.SERVER_ERROR, 0.1), policy, 8, WALL + 8
    )
    assert token == poison.FAILING
