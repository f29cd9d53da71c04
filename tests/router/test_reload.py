"""Hot reload: the model list changes under traffic without failing it or forgetting health."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from harness import Harness, chat, dep
from turnout import Deployment, Router, RouterConfig, RoutingConfig
from turnout.errors import ConfigError, ModelNotFoundError, ServerError
from turnout.observe.events import AttemptFinished, AttemptStarted
from turnout.state.memory import MemoryStateStore
from turnout.testing import Behaviour, SimulatedProvider


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


async def test_a_reload_that_does_not_build_changes_nothing(h: Harness) -> None:
    router = h.router(dep("a"))
    with pytest.raises(ConfigError, match="no provider registered for 'other'"):
        await router.reload(RouterConfig(model_list=(dep("b"), _REPLACEMENT)))
    assert [d.id for d in router.deployments()] == ["a"]
    assert (await router.complete(chat())).deployment.id == "a"


# ---- a reload racing requests that are between attempts ------------------------------------

#: What the reloads below switch to: another deployment on another provider.
_REPLACEMENT = Deployment(model_name="chat", model="new", provider="other", id="new")


def _router_on(
    h: Harness, store: MemoryStateStore, *deployments: Deployment, **config: Any
) -> Router:
    """A router whose state store the test can read after the removed deployments are gone."""
    h.clock.autojump = False  # time moves only when the test says, so a reload lands mid-wait
    return Router(
        RouterConfig(model_list=deployments, **config),
        {"sim": h.scripted},
        state=store,
        clock=h.clock,
        rng=random.Random(3),
        observers=[h.recorder],
    )


async def _until_idle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def _remove_the_old_provider(h: Harness, router: Router) -> None:
    await router.reload(
        RouterConfig(model_list=(_REPLACEMENT,)), {"other": SimulatedProvider(h.clock)}
    )


async def _assert_everything_settled(h: Harness, store: MemoryStateStore, *ids: str) -> None:
    assert len(h.recorder.of(AttemptStarted)) == len(h.recorder.of(AttemptFinished))
    for state in await store.snapshot(list(ids)):
        assert state.in_flight == 0, state.deployment_id


async def test_a_request_in_backoff_finishes_on_the_provider_it_started_with(h: Harness) -> None:
    store = MemoryStateStore()
    router = _router_on(h, store, dep("old"))
    h.scripted.fail("old", ServerError("overloaded", status=503))
    running = asyncio.create_task(router.complete(chat()))
    await _until_idle()
    assert h.scripted.calls == ["old"] and not running.done()  # asleep before its retry

    await _remove_the_old_provider(h, router)
    h.clock.advance(60)
    response = await running

    assert response.deployment.id == "old"
    assert [a.deployment_id for a in response.attempts] == ["old", "old"]
    await _assert_everything_settled(h, store, "old", "new")
    assert (await router.complete(chat())).deployment.id == "new"


async def test_a_stream_in_backoff_opens_on_the_provider_it_started_with(h: Harness) -> None:
    store = MemoryStateStore()
    router = _router_on(h, store, dep("old"))
    h.scripted.fail("old", ServerError("overloaded", status=503))
    opening = asyncio.create_task(router.stream(chat()))
    await _until_idle()
    assert h.scripted.calls == ["old"] and not opening.done()

    await _remove_the_old_provider(h, router)
    h.clock.advance(60)
    async with await opening as stream:
        chunks = [chunk async for chunk in stream]

    assert stream.deployment.id == "old"
    assert "stop" in [chunk.finish_reason for chunk in chunks]
    await _assert_everything_settled(h, store, "old", "new")


async def test_a_stream_broken_after_a_reload_continues_on_its_own_providers(
    h: Harness,
) -> None:
    h.sim.set_behaviour("first", Behaviour(stream_failure="cut", fail_after_chunks=2))
    store = MemoryStateStore()
    router = _router_on(
        h,
        store,
        dep("first"),
        dep("second", priority=1),
        routing=RoutingConfig(strategy="priority"),
    )
    stream = await router.stream(chat())
    assert stream.deployment.id == "first"

    await _remove_the_old_provider(h, router)
    async with stream:
        chunks = [chunk async for chunk in stream]

    assert "stop" in [chunk.finish_reason for chunk in chunks]
    assert [a.deployment_id for a in stream.attempts] == ["first", "second"]
    await _assert_everything_settled(h, store, "first", "second", "new")
