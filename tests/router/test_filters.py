"""Pre-filters, and the promise that no strategy is ever offered an unavailable deployment."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from turnout import Deployment, Request, Router, RouterConfig, RoutingConfig
from turnout.config.router import BreakerConfig
from turnout.errors import ContextWindowExceededError, NoDeploymentsAvailableError
from turnout.health.record import BreakerPhase, CooldownReason, DeploymentState
from turnout.health.snapshot import snapshot_of
from turnout.router.filters import Rejections, eligible
from turnout.router.strategies import REGISTRY
from turnout.state.memory import MemoryStateStore
from turnout.testing import ManualClock, SimulatedProvider

WALL = 1_800_000_000.0
NOW = 100.0
BREAKER = BreakerConfig(half_open_probes=1)


def _request(words: int = 5) -> Request:
    return Request(model="g", body={"messages": [{"role": "user", "content": "word " * words}]})


def _eject(state: DeploymentState, until: float, reason: CooldownReason) -> None:
    state.phase, state.cooldown_until, state.cooldown_reason = BreakerPhase.OPEN, until, reason


def test_each_filter_names_its_reason() -> None:
    deployments = [
        Deployment(model_name="g", model="m", id="cool"),
        Deployment(model_name="g", model="m", id="open"),
        Deployment(model_name="g", model="m", id="busy", max_parallel_requests=1),
        Deployment(model_name="g", model="m", id="rpm", rpm=1),
        Deployment(model_name="g", model="m", id="tpm", tpm=3),
        Deployment(model_name="g", model="m", id="small", context_window=2),
        Deployment(model_name="g", model="m", id="quota"),
        Deployment(model_name="g", model="m", id="ok"),
    ]
    states = {d.id: DeploymentState(d.id) for d in deployments}
    _eject(states["cool"], 110.0, CooldownReason.TIMEOUT)
    _eject(states["open"], 120.0, CooldownReason.CONSECUTIVE_FAILURES)
    states["busy"].in_flight = 1
    states["rpm"].minute, states["rpm"].rpm_used = int(WALL // 60), 1
    states["quota"].remaining_requests, states["quota"].hint_expires = 0, WALL + 5
    rejections = Rejections()
    chosen, _ = eligible(
        deployments,
        [snapshot_of(states[d.id]) for d in deployments],
        _request(),
        BREAKER,
        NOW,
        WALL,
        (),
        rejections,
    )
    assert [d.id for d in chosen] == ["ok"]
    assert rejections.cooling == [("cool", CooldownReason.TIMEOUT, 10.0)]
    assert rejections.breaker_open == [("open", 20.0)]
    assert rejections.limited == [
        ("busy", "max parallel requests"),
        ("rpm", "rpm"),
        ("tpm", "tpm"),
        ("quota", "provider-reported request quota"),
    ]
    assert rejections.context == [("small", 2)]
    assert rejections.wait_hint() == 10.0


def test_an_expired_ejection_passes_and_is_marked_for_probing() -> None:
    deployment = Deployment(model_name="g", model="m", id="d")
    state = DeploymentState("d")
    _eject(state, 50.0, CooldownReason.FAILURES)
    rejections = Rejections()
    chosen, _ = eligible(
        [deployment], [snapshot_of(state)], _request(), BREAKER, NOW, WALL, (), rejections
    )
    assert chosen == [deployment]
    assert rejections.expired == ["d"]
    # Probing with its one probe slot taken: nothing more until the probe ends.
    state.phase, state.cooldown_until, state.probes = BreakerPhase.HALF_OPEN, 0.0, 1
    rejections = Rejections()
    chosen, _ = eligible(
        [deployment], [snapshot_of(state)], _request(), BREAKER, NOW, WALL, (), rejections
    )
    assert chosen == []
    assert rejections.breaker_open == [("d", 0.0)]
    assert "d probing, its probe slots taken" in str(rejections.error("g", _request(), WALL))


_state_for = st.fixed_dictionaries(
    {
        "reason": st.sampled_from(list(CooldownReason)),
        "ejection": st.sampled_from(["in-rotation", "ejected", "ejected-expired", "probing-full"]),
        "in_flight": st.integers(0, 3),
        "rpm_used": st.integers(0, 5),
        "tpm_used": st.integers(0, 500),
    }
)
_deployment_for = st.fixed_dictionaries(
    {
        "max_parallel": st.none() | st.integers(1, 3),
        "rpm": st.none() | st.integers(1, 5),
        "tpm": st.none() | st.integers(10, 500),
        "window": st.none() | st.integers(1, 200),
        "weight": st.none() | st.floats(0, 5),
        "priority": st.integers(0, 2),
        "price": st.none() | st.floats(1e-7, 1e-4),
    }
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(_deployment_for, _state_for), min_size=1, max_size=8),
    st.sampled_from(sorted(REGISTRY)),
    st.integers(1, 150),
)
async def test_no_strategy_ever_gets_an_unavailable_deployment(
    members: list[tuple[dict[str, object], dict[str, object]]], strategy: str, words: int
) -> None:
    clock = ManualClock(start=NOW, epoch=WALL - NOW)
    deployments = tuple(
        Deployment(
            model_name="g",
            model="m",
            provider="sim",
            id=f"d{index}",
            max_parallel_requests=spec["max_parallel"],  # type: ignore[arg-type]
            rpm=spec["rpm"],  # type: ignore[arg-type]
            tpm=spec["tpm"],  # type: ignore[arg-type]
            context_window=spec["window"],  # type: ignore[arg-type]
            weight=spec["weight"],  # type: ignore[arg-type]
            priority=spec["priority"],  # type: ignore[arg-type]
            input_cost_per_token=spec["price"],  # type: ignore[arg-type]
        )
        for index, (spec, _) in enumerate(members)
    )
    store = MemoryStateStore()
    router = Router(
        RouterConfig(model_list=deployments, routing=RoutingConfig(strategy=strategy)),
        {"sim": SimulatedProvider(clock)},
        state=store,
        clock=clock,
        rng=random.Random(0),
    )
    minute = int(WALL // 60)
    records = []
    for deployment, (_, spec) in zip(deployments, members, strict=True):
        state = DeploymentState(deployment.id)
        reason: CooldownReason = spec["reason"]  # type: ignore[assignment]
        if spec["ejection"] == "ejected":
            _eject(state, NOW + 5, reason)
        elif spec["ejection"] == "ejected-expired":
            _eject(state, NOW - 1, reason)
        elif spec["ejection"] == "probing-full":
            state.phase, state.cooldown_reason, state.probes = BreakerPhase.HALF_OPEN, reason, 1
        state.in_flight = spec["in_flight"]  # type: ignore[assignment]
        state.minute = minute
        state.rpm_used = spec["rpm_used"]  # type: ignore[assignment]
        state.tpm_used = spec["tpm_used"]  # type: ignore[assignment]
        store.load(state)
        records.append(snapshot_of(state))
    store_states = await store.snapshot([d.id for d in deployments])
    assert list(store_states) == records
    request = _request(words)
    allowed = {
        d.id
        for d in eligible(
            deployments, store_states, request, router.config.breaker, NOW, WALL, (), Rejections()
        )[0]
    }
    for _ in range(5):
        try:
            picked = await router.pick(request)
        except (NoDeploymentsAvailableError, ContextWindowExceededError):
            assert not allowed
            continue
        assert picked.id in allowed
