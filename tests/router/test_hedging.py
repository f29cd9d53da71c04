"""Hedged requests: a duplicate for the slow tail, and only for it."""

from __future__ import annotations

import pytest

from harness import Harness, chat, dep
from turnout import RetryConfig, Router, RoutingConfig
from turnout.config.router import HedgeConfig
from turnout.errors import FailureKind, ServerError
from turnout.observe.events import AttemptFinished, HedgeFired, HedgeSettled
from turnout.testing import Behaviour

FAST = Behaviour(latency=0.1, ttft=0.05, output_tokens=4)
SLOW = Behaviour(latency=5.0, ttft=5.0, output_tokens=4)


def _a_then_b(h: Harness, hedge: HedgeConfig) -> Router:
    """Deployment "a" first (priority), "b" as the hedge; the group hedges as `hedge` says."""
    return h.router(
        dep("a"),
        dep("b", priority=1),
        routing=RoutingConfig(strategy="priority"),
        hedging={"chat": hedge},
    )


async def test_a_slow_first_attempt_is_raced_and_the_faster_one_wins(h: Harness) -> None:
    h.sim.set_behaviour("a", SLOW)
    h.sim.set_behaviour("b", FAST)
    router = _a_then_b(h, HedgeConfig(delay=1.0, budget=1.0))
    response = await router.complete(chat())
    assert response.deployment.id == "b"
    assert h.clock.now() == pytest.approx(1.1)
    [fired] = h.recorder.of(HedgeFired)
    assert (fired.primary, fired.hedge, fired.delay) == ("a", "b", pytest.approx(1.0))
    [settled] = h.recorder.of(HedgeSettled)
    assert (settled.winner, settled.hedge_won, settled.cancelled) == ("b", True, "a")
    finished = {e.deployment_id: e for e in h.recorder.of(AttemptFinished)}
    assert finished["a"].error is FailureKind.CANCELLED
    assert finished["a"].usage is not None  # the loser's prompt is accounted
    assert finished["a"].usage.prompt_tokens > 0
    assert [e.in_flight for e in await router.health()] == [0, 0]
    assert h.stats.hedges == 1
    assert h.stats.hedges_won == 1


async def test_no_hedge_when_the_first_attempt_is_quick(h: Harness) -> None:
    h.sim.set_behaviour("a", FAST)
    router = _a_then_b(h, HedgeConfig(delay=1.0, budget=1.0))
    assert (await router.complete(chat())).deployment.id == "a"
    assert h.recorder.of(HedgeFired) == []


async def test_streams_hedge_on_the_first_token(h: Harness) -> None:
    h.sim.set_behaviour("a", SLOW)
    h.sim.set_behaviour("b", FAST)
    router = _a_then_b(h, HedgeConfig(delay=0.5, budget=1.0))
    stream = await router.stream(chat())
    assert stream.deployment.id == "b"
    chunks = [c async for c in stream]
    assert chunks[-1].finish_reason == "stop"
    assert [e.in_flight for e in await router.health()] == [0, 0]


async def test_a_quantile_delay_needs_samples_then_fires_only_in_the_tail(h: Harness) -> None:
    h.sim.set_behaviour("a", Behaviour(latency=0.2))
    h.sim.set_behaviour("b", Behaviour(latency=0.2))
    router = _a_then_b(h, HedgeConfig(quantile=0.9, min_samples=10, budget=1.0))
    for _ in range(10):
        await router.complete(chat())
    assert h.recorder.of(HedgeFired) == []
    h.sim.set_behaviour("a", Behaviour(latency=3.0))  # a tail request
    started = h.clock.now()
    response = await router.complete(chat())
    assert response.deployment.id == "b"
    [fired] = h.recorder.of(HedgeFired)
    assert fired.delay == pytest.approx(0.2)
    assert h.clock.now() - started == pytest.approx(0.4)


async def test_the_hedge_budget_caps_duplicates(h: Harness) -> None:
    h.sim.set_behaviour("a", SLOW)
    h.sim.set_behaviour("b", FAST)
    router = _a_then_b(h, HedgeConfig(delay=0.5, budget=0.25, window=600))
    for _ in range(8):
        await router.complete(chat())
    assert len(h.recorder.of(HedgeFired)) == 2


async def test_when_both_fail_the_request_goes_on_to_retries(h: Harness) -> None:
    h.sim.set_behaviour("a", SLOW)
    h.sim.set_behaviour("b", FAST)
    h.sim.set_behaviour("c", FAST)
    router = h.router(
        dep("a"),
        dep("b", priority=1),
        dep("c", priority=2),
        routing=RoutingConfig(strategy="priority"),
        hedging={"chat": HedgeConfig(delay=0.5, budget=1.0)},
        retries=RetryConfig(num_retries=2),
    )
    h.scripted.fail("b", ServerError("b broke", status=500))
    response = await router.complete(chat())
    # "a" is slow, the hedge on "b" fails; "a" still answers (the race waits for it).
    assert response.deployment.id == "a"
    [settled] = h.recorder.of(HedgeSettled)
    assert settled.hedge_won is False
