"""Deadline-aware routing: prefer what fits, skip what cannot finish, never overrun."""

from __future__ import annotations

import pytest

from harness import Harness, chat, dep
from turnout import RoutingConfig
from turnout.errors import DeadlineExceededError, ServerError
from turnout.testing import Behaviour


async def _learn(h: Harness, router: object, rounds: int = 6) -> None:
    for _ in range(rounds):
        await router.complete(chat())  # type: ignore[attr-defined]


async def test_deployments_predicted_to_miss_the_deadline_are_passed_over(h: Harness) -> None:
    h.sim.set_behaviour("slow", Behaviour(latency=4.0))
    h.sim.set_behaviour("fast", Behaviour(latency=0.5))
    router = h.router(
        dep("slow"), dep("fast", priority=1), routing=RoutingConfig(strategy="priority")
    )
    await router.complete(chat())  # slow: priority 0, learns its latency
    await router.cool_down("slow", 0.01)
    h.clock.advance(0.02)
    await router.complete(chat())
    hurried = chat()
    hurried.timeout = 2.0
    response = await router.complete(hurried)
    assert response.deployment.id == "fast"
    relaxed = chat()
    assert (await router.complete(relaxed)).deployment.id == "slow"


async def test_a_retry_that_cannot_finish_in_time_is_not_started(h: Harness) -> None:
    h.sim.set_behaviour("a", Behaviour(latency=3.0))
    router = h.router(dep("a"))
    await router.complete(chat())  # learns: about 3 s
    h.scripted.fail("a", ServerError("boom", status=500))
    request = chat()
    request.timeout = 2.5  # the retry would need about 3 s
    with pytest.raises(ServerError):
        await router.complete(request)
    assert h.clock.now() == pytest.approx(3.0)  # failed at once, no pointless retry
    assert len(h.scripted.calls) == 2


async def test_the_deadline_error_comes_at_the_deadline_never_later(h: Harness) -> None:
    h.sim.set_behaviour("a", Behaviour(latency=10.0))
    router = h.router(dep("a"))
    request = chat()
    request.timeout = 1.5
    with pytest.raises(DeadlineExceededError, match=r"deadline of 1\.5s"):
        await router.complete(request)
    assert h.clock.now() == pytest.approx(1.5)
