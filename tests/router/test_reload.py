"""Hot reload: the model list changes under traffic without failing it or forgetting health."""

from __future__ import annotations

import asyncio

import pytest

from harness import Harness, chat, dep
from turnout import RouterConfig, RoutingConfig
from turnout.errors import ModelNotFoundError
from turnout.testing import Behaviour


async def test_reload_keeps_state_of_surviving_deployments_and_drops_the_rest(
    h: Harness,
) -> None:
    router = h.router(dep("a"), dep("b"))
    for _ in range(4):
        await router.complete(chat())
    await router.cool_down("a", 100)
    before = {e.deployment_id: e for e in await router.health()}
    await router.reload(RouterConfig(model_list=(dep("a"), dep("c"))))
    after = {e.deployment_id: e for e in await router.health()}
    assert set(after) == {"a", "c"}
    assert after["a"].cooling_down
    assert after["a"].latency == before["a"].latency
    assert (await router.complete(chat())).deployment.id == "c"


async def test_requests_in_flight_finish_across_a_reload(h: Harness) -> None:
    h.sim.set_behaviour("old", Behaviour(latency=5))
    router = h.router(dep("old"))
    running = asyncio.create_task(router.complete(chat()))
    await asyncio.sleep(0)
    await router.reload(RouterConfig(model_list=(dep("new"),)))
    response = await running
    assert response.deployment.id == "old"
    assert (await router.complete(chat())).deployment.id == "new"


async def test_reload_adds_and_removes_model_groups(h: Harness) -> None:
    router = h.router(dep("a"))
    await router.reload(RouterConfig(model_list=(dep("x", group="other"),)))
    assert router.model_names() == ["other"]
    with pytest.raises(ModelNotFoundError):
        await router.complete(chat())


async def test_round_robin_position_survives_a_reload_with_the_same_strategy(
    h: Harness,
) -> None:
    routing = RoutingConfig(strategy="round-robin")
    router = h.router(dep("a"), dep("b"), routing=routing)
    first = (await router.complete(chat())).deployment.id
    await router.reload(RouterConfig(model_list=(dep("a"), dep("b")), routing=routing))
    second = (await router.complete(chat())).deployment.id
    assert {first, second} == {"a", "b"}
