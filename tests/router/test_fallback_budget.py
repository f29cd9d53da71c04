"""Fallback hops and the retry budget: a hop away from a group that had nothing available sent
the failing provider nothing and spends no budget; a hop after attempts that failed does."""

from __future__ import annotations

from harness import Harness, chat, dep
from turnout import FallbackConfig, RetryConfig
from turnout.config.router import RetryBudgetConfig
from turnout.errors import ServerError
from turnout.observe.events import BudgetExhausted, FallbackTaken
from turnout.testing import Behaviour

#: No retry budget at all: any hop that spends it is refused.
NO_BUDGET = RetryConfig(budget=RetryBudgetConfig(ratio=0.0, min_per_second=0.0))
BACKUP = FallbackConfig(general={"chat": ["backup"]})


async def test_a_cooling_group_falls_back_without_spending_the_budget(h: Harness) -> None:
    router = h.router(dep("a"), dep("b", group="backup"), fallbacks=BACKUP, retries=NO_BUDGET)
    await router.cool_down("a", 600)
    for _ in range(50):
        response = await router.complete(chat())
        assert [a.deployment_id for a in response.attempts] == ["b"]
    assert h.scripted.calls == ["b"] * 50
    assert len(h.recorder.of(FallbackTaken)) == 50
    assert h.recorder.of(BudgetExhausted) == []


async def test_a_group_with_every_deployment_out_falls_back_for_free(h: Harness) -> None:
    router = h.router(
        dep("a1"), dep("a2"), dep("b", group="backup"), fallbacks=BACKUP, retries=NO_BUDGET
    )
    await router.cool_down("a1", 600)
    await router.cool_down("a2", 600)
    for _ in range(20):
        assert (await router.complete(chat())).deployment.id == "b"
    assert h.scripted.calls == ["b"] * 20


async def test_a_hop_after_a_failed_attempt_still_spends_the_budget(h: Harness) -> None:
    h.router(
        dep("a"),
        dep("b", group="backup"),
        fallbacks=BACKUP,
        retries=RetryConfig(num_retries=0, budget=NO_BUDGET.budget),
    )
    h.scripted.fail("a", ServerError("down", status=500))
    error = await h.failure(chat())
    assert isinstance(error, ServerError)
    assert h.scripted.calls == ["a"]
    assert [e.model_group for e in h.recorder.of(BudgetExhausted)] == ["chat"]


async def test_only_the_hop_from_the_group_that_failed_spends(h: Harness) -> None:
    """`chat` is out (free hop to `backup`); `backup` is sent the request and fails, so its
    own hop to `last` needs budget, and there is none."""
    router = h.router(
        dep("a"),
        dep("b", group="backup"),
        dep("c", group="last"),
        fallbacks=FallbackConfig(general={"chat": ["backup"], "backup": ["last"]}),
        retries=RetryConfig(num_retries=0, budget=NO_BUDGET.budget),
    )
    await router.cool_down("a", 600)
    h.scripted.fail("b", ServerError("down", status=500))
    error = await h.failure(chat())
    assert isinstance(error, ServerError)
    assert h.scripted.calls == ["b"]
    assert [e.model_group for e in h.recorder.of(BudgetExhausted)] == ["backup"]


async def test_an_outage_of_a_lone_deployment_is_served_by_the_fallback_throughout(
    h: Harness,
) -> None:
    """Defaults everywhere (retries, budget, health): far more requests than the budget would
    allow hops, all answered by the fallback, and the failing deployment sees only the few
    attempts that tell the router it is down (and its recovery probes)."""
    router = h.router(dep("a"), dep("b", group="backup"), fallbacks=BACKUP)
    h.sim.set_behaviour("a", Behaviour(error_rate=1.0))
    served = []
    for _ in range(200):
        served.append((await router.complete(chat())).deployment.id)
        h.clock.advance(0.02)
    assert served == ["b"] * 200
    assert h.scripted.calls.count("b") == 200
    assert h.scripted.calls.count("a") <= 10
