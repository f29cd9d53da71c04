"""Poison requests: requests that make every upstream answer 500 must not take a group out.

Routers on a manual clock over simulated upstreams that answer 500 to any request carrying a
marker (and to everything while "down"). A poison request fails as the cause once two
deployments answering other requests failed it, and moves no deployment's health; a deployment
failing everything still cools down and opens its circuit at the same failure as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from harness import Recorder, chat, dep
from turnout import Deployment, Request, Router, RouterConfig, RouterStats
from turnout.config.router import FallbackConfig, HealthConfig, HedgeConfig, PoisonRequestConfig
from turnout.errors import FailureKind, PoisonRequestError, ServerError, TurnoutError
from turnout.health.record import BreakerPhase, CooldownReason
from turnout.observe.events import (
    AttemptFinished,
    BreakerTransition,
    CooldownEntered,
    HedgeFired,
    PoisonRequest,
)
from turnout.state.memory import MemoryStateStore
from turnout.testing import ManualClock, SimulatedProvider
from turnout.wire import ProviderResponse, StreamChunk

MARKER = "<<crash-the-model>>"


def poison(model: str = "chat") -> Request:
    return chat(model, f"Summarise this: {MARKER}")


class Upstreams:
    """Simulated upstreams that answer 500, after their usual latency, to every request
    carrying `MARKER`, and to everything while their deployment is in `down`."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.inner = SimulatedProvider(clock, seed=11)
        self.down: set[str] = set()
        self.latency = 0.05

    async def _fail_if_broken(self, deployment: Deployment, request: Request) -> None:
        await self.clock.sleep(self.latency)
        text = str(request.body.get("messages", ""))
        if deployment.id in self.down or MARKER in text:
            raise ServerError("The server had an error processing your request", status=500)

    async def complete(self, deployment: Deployment, request: Request) -> ProviderResponse:
        await self._fail_if_broken(deployment, request)
        return await self.inner.complete(deployment, request)

    async def stream(self, deployment: Deployment, request: Request) -> AsyncIterator[StreamChunk]:
        await self._fail_if_broken(deployment, request)
        async for chunk in self.inner.stream(deployment, request):
            yield chunk

    async def embed(self, deployment: Deployment, request: Request) -> ProviderResponse:
        await self._fail_if_broken(deployment, request)
        return await self.inner.embed(deployment, request)


class World:
    """A router over `Upstreams` on a manual clock, with every event recorded."""

    def __init__(
        self, *deployments: Deployment, detect: bool = True, seed: int = 3, **config: Any
    ) -> None:
        self.clock = ManualClock()
        self.upstreams = Upstreams(self.clock)
        self.recorder = Recorder()
        self.stats = RouterStats()
        self.store = MemoryStateStore()
        health = config.pop("health", HealthConfig())
        health = HealthConfig(
            **{
                **{f: getattr(health, f) for f in health.__struct_fields__},
                "poison_requests": PoisonRequestConfig(enabled=detect),
            }
        )
        self.router = Router(
            RouterConfig(model_list=deployments, health=health, **config),
            {"sim": self.upstreams},
            clock=self.clock,
            rng=random.Random(seed),
            state=self.store,
            observers=[self.recorder, self.stats],
        )

    async def serve(self, model: str = "chat", count: int = 1) -> None:
        for _ in range(count):
            response = await self.router.complete(chat(model))
            assert response.body["choices"]

    async def poisoned(self, model: str = "chat") -> TurnoutError:
        with pytest.raises(TurnoutError) as caught:
            await self.router.complete(poison(model))
        return caught.value

    def taken_out(self) -> list[object]:
        """Every ejection so far (each also moves the phase to open)."""
        return [e for e in self.recorder.events if isinstance(e, CooldownEntered)]

    async def assert_all_healthy(self) -> None:
        for health in await self.router.health():
            assert not health.cooling_down, health
            assert health.breaker is BreakerPhase.CLOSED, health

    async def counted(self, *deployment_ids: str) -> list[tuple[int, int]]:
        """Failures counted against each deployment this minute, and in a row."""
        states = await self.store.snapshot(deployment_ids)
        return [(s.failures, s.consecutive_failures) for s in states]

    def failed_attempts(self, since: int = 0) -> list[tuple[str, Any]]:
        """Each failed attempt from event `since` on: its deployment and kind of failure."""
        return [
            (e.deployment_id, e.error)
            for e in self.recorder.events[since:]
            if isinstance(e, AttemptFinished) and e.error is not None
        ]

    def failures_until(self, deployment_id: str, kind: type[Any]) -> int | None:
        """Failed attempts on the deployment before its first event of `kind`, if any."""
        failed = 0
        for event in self.recorder.events:
            if isinstance(event, AttemptFinished) and event.deployment_id == deployment_id:
                failed += event.error is not None
            elif (
                isinstance(event, kind)
                and event.deployment_id == deployment_id
                and (not isinstance(event, BreakerTransition) or event.current is BreakerPhase.OPEN)
            ):
                return failed
        return None


def assert_poison(error: TurnoutError, deployments: int = 2) -> None:
    assert isinstance(error, PoisonRequestError)
    assert error.status == 422
    body = error.to_openai()["error"]
    assert body["type"] == "invalid_request_error"
    assert body["code"] == "request_fails_upstream"
    assert "the request itself appears to be the cause" in body["message"]
    # The attempts summary stays: every upstream failure, and nothing beyond the verdict.
    assert len(error.attempts) == deployments
    assert "500" in body["message"]
    assert len({a.deployment_id for a in error.attempts}) == deployments
    assert MARKER not in body["message"]


async def test_poison_requests_do_not_take_out_a_group_of_several_deployments() -> None:
    world = World(dep("a"), dep("b"))
    await world.serve(count=10)
    for _ in range(4):
        assert_poison(await world.poisoned())
        await world.serve(count=3)
    assert world.taken_out() == []
    await world.assert_all_healthy()
    for health in await world.router.health():
        assert health.reliability == 1.0  # not one failure counted
    assert len(world.recorder.of(PoisonRequest)) == 4
    assert world.stats.poison_requests == 4


async def test_poison_requests_in_a_row_with_nothing_served_between_count_from_the_second() -> None:
    """Nothing served since the first verdict on either deployment: an outage explains the
    next failures as well as the request does, so from the second request on they count."""
    world = World(dep("a"), dep("b"))
    await world.serve(count=10)
    assert_poison(await world.poisoned())
    for _ in range(2):
        error = await world.poisoned()
        assert type(error) is ServerError
        assert len(error.attempts) == 3  # the first try and both retries, as without detection
    # Every failed attempt counted, the first request's dropped ones included.
    failed = world.failed_attempts()
    assert sum(failures for failures, _ in await world.counted("a", "b")) == len(failed) == 8
    # A success explains the verdict's failures: the next poison request is judged again.
    world.clock.advance(31.0)  # past any cooldown, and the breakers half-open
    await world.serve(count=6)
    await world.assert_all_healthy()
    assert_poison(await world.poisoned())


async def test_a_success_of_either_deployment_of_a_verdict_explains_its_failures() -> None:
    """Valid traffic between poison requests went to the other deployment only: that success
    explains the dropped failure of the one that served nothing, as well as its own."""
    world = World(dep("a"), dep("b"))
    await world.serve(count=10)
    for _ in range(5):
        assert_poison(await world.poisoned())
        # Only b serves between poison requests (a is busy elsewhere, or unlucky at routing).
        await world.router.cool_down("a", 1.0)
        await world.serve(count=2)
        world.clock.advance(1.0)
    assert world.taken_out() == [
        e for e in world.recorder.of(CooldownEntered) if e.reason is CooldownReason.MANUAL
    ]
    assert await world.counted("a", "b") == [(0, 0), (0, 0)]


@pytest.mark.parametrize("seed", range(8))
async def test_poison_between_valid_requests_routed_at_random_takes_nothing_out(seed: int) -> None:
    """A group of two routed at random, and a fallback: the valid requests between poison
    requests may all go to one deployment of the group; the other must not pile up the
    dropped failures of every poison request it failed until one more takes it out."""
    world = World(
        dep("a", "gpt"),
        dep("b", "gpt"),
        dep("f", "mini"),
        fallbacks=FallbackConfig(general={"gpt": ["mini"]}),
        seed=seed,
    )
    for model in ("gpt", "mini", "gpt", "mini"):
        await world.serve(model)
    for _ in range(4):
        assert isinstance(await world.poisoned("gpt"), PoisonRequestError)
        await world.serve("gpt")
        await world.serve("mini")
    await world.serve("gpt", 10)
    assert world.taken_out() == []
    await world.assert_all_healthy()


async def test_from_the_second_request_of_an_outage_everything_is_as_without_detection() -> None:
    """Everything fails everything: only the first request is misjudged. The second tries as
    many times, fails with the same error and leaves the same counters as without detection."""

    async def outage(detect: bool) -> World:
        world = World(
            dep("a", "gpt"),
            dep("f", "claude"),
            fallbacks=FallbackConfig(general={"gpt": ["claude"]}),
            detect=detect,
        )
        await world.serve("gpt", 3)
        await world.serve("claude", 3)
        world.upstreams.down.update({"a", "f"})
        return world

    before, after = await outage(False), await outage(True)
    assert_poison(await after.poisoned("gpt"))  # the first: indistinguishable from poison
    mark = len(after.recorder.events)
    with pytest.raises(TurnoutError) as second:
        await after.router.complete(chat("gpt"))
    with pytest.raises(TurnoutError) as first:
        await before.router.complete(chat("gpt"))
    # The same attempts (the first try, both retries, then the fallback's), the same error.
    assert (
        after.failed_attempts(mark)
        == before.failed_attempts()
        == [("a", FailureKind.SERVER_ERROR)] * 3 + [("f", FailureKind.SERVER_ERROR)] * 3
    )
    assert type(second.value) is type(first.value) is ServerError
    assert second.value.status == first.value.status
    assert after.recorder.of(PoisonRequest) and len(after.recorder.of(PoisonRequest)) == 1
    # Every failed attempt counted, and both deployments out, as without detection after the
    # same two requests.
    with pytest.raises(TurnoutError):
        await before.router.complete(chat("gpt"))
    assert await after.counted("a", "f") == await before.counted("a", "f") == [(4, 4), (4, 4)]
    for world in (before, after):
        assert {e.deployment_id for e in world.recorder.of(CooldownEntered)} == {"a", "f"}


async def test_poison_requests_spare_one_deployment_and_its_fallback() -> None:
    """The default shape: one deployment per model group, and fallbacks between groups."""
    world = World(
        dep("a", "gpt"),
        dep("f", "claude"),
        fallbacks=FallbackConfig(general={"gpt": ["claude"], "claude": ["gpt"]}),
    )
    await world.serve("gpt", 5)
    await world.serve("claude", 5)
    for model in ("gpt", "gpt", "claude", "gpt"):
        error = await world.poisoned(model)
        assert_poison(error)
        assert {a.model_group for a in error.attempts} == {"gpt", "claude"}
        await world.serve("gpt", 2)
        await world.serve("claude", 2)
    assert world.taken_out() == []
    await world.assert_all_healthy()
    # Valid requests are still served by their own group, not its fallback.
    response = await world.router.complete(chat("gpt"))
    assert response.deployment.id == "a"
    poisoned = world.recorder.of(PoisonRequest)
    assert [p.model_group for p in poisoned] == ["gpt", "gpt", "claude", "gpt"]
    assert poisoned[0].deployments == ("a", "f")


async def test_poison_requests_among_concurrent_traffic_take_nothing_out() -> None:
    world = World(dep("a"), dep("b"), dep("c"))
    await world.serve(count=6)

    async def valid() -> None:
        for _ in range(10):
            await world.serve()

    async def poisons() -> list[TurnoutError]:
        return [await world.poisoned() for _ in range(4)]

    *_, errors = await asyncio.gather(valid(), valid(), valid(), poisons())
    for error in errors:
        assert_poison(error)
    assert world.taken_out() == []
    await world.assert_all_healthy()


async def test_a_poison_request_is_judged_on_deployments_answering_others_only() -> None:
    """Without recent successes a deployment gives no evidence: the failures count as before."""
    world = World(dep("a"), dep("b"))
    error = await world.poisoned()
    assert not isinstance(error, PoisonRequestError)
    assert isinstance(error, ServerError)
    assert world.recorder.of(PoisonRequest) == []
    assert sum(1 for e in world.recorder.of(AttemptFinished) if e.error is not None) == 3


async def test_detection_can_be_turned_off() -> None:
    world = World(dep("a"), dep("b"), detect=False)
    await world.serve(count=10)
    for _ in range(4):
        assert not isinstance(await world.poisoned(), PoisonRequestError)
    assert world.taken_out() != []  # as before: the group is out for everyone


async def _outage(detect: bool, shape: str) -> World:
    if shape == "group":
        world = World(dep("a"), dep("b"), detect=detect)
        models = ["chat"]
    else:
        world = World(
            dep("a", "gpt"),
            dep("f", "claude"),
            fallbacks=FallbackConfig(general={"gpt": ["claude"]}),
            detect=detect,
        )
        models = ["gpt", "claude"]
    for model in models:
        await world.serve(model, 6)
    world.upstreams.down.add("a")
    if shape == "everything":
        world.upstreams.down.add("f")
    for _ in range(12):
        with contextlib.suppress(TurnoutError):
            await world.router.complete(chat(models[0]))
    return world


@pytest.mark.parametrize("shape", ["group", "fallback", "everything"])
async def test_a_real_outage_is_taken_out_after_as_many_failures_as_before(shape: str) -> None:
    before = await _outage(False, shape)
    after = await _outage(True, shape)
    for kind in (CooldownEntered, BreakerTransition):
        expected = before.failures_until("a", kind)
        assert after.failures_until("a", kind) == expected, kind
    assert before.failures_until("a", CooldownEntered) is not None
    if shape != "everything":
        # Taken out no later (with a fallback, sooner: the request goes there instead of
        # retrying the deployment that failed it after backoff).
        first, second = (
            next(e for e in world.taken_out() if isinstance(e, CooldownEntered))
            for world in (before, after)
        )
        assert first.deployment_id == second.deployment_id == "a"
        if shape == "group":
            assert second == first
        assert second.until <= first.until


async def test_a_failing_deployment_is_taken_out_while_poison_arrives() -> None:
    """One deployment fails everything, others serve; poison requests come and go."""

    async def scenario(detect: bool) -> tuple[World, list[TurnoutError]]:
        world = World(dep("a"), dep("b"), dep("c"), detect=detect)
        await world.serve(count=9)
        world.upstreams.down.add("a")
        errors = []
        for _ in range(6):
            await world.serve(count=2)
            errors.append(await world.poisoned())
        return world, errors

    before, _ = await scenario(False)
    after, errors = await scenario(True)
    assert after.failures_until("a", CooldownEntered) == before.failures_until("a", CooldownEntered)
    assert after.failures_until("a", CooldownEntered) is not None
    for error in errors:
        assert_poison(error, len(error.attempts))
    spared = [e for e in after.taken_out() if getattr(e, "deployment_id", None) != "a"]
    assert spared == []
    for health in await after.router.health():
        if health.deployment_id != "a":
            assert not health.cooling_down
            assert health.breaker is BreakerPhase.CLOSED


async def test_a_poison_stream_fails_before_its_first_chunk_like_a_whole_answer() -> None:
    world = World(dep("a"), dep("b"))
    await world.serve(count=6)
    for _ in range(3):
        with pytest.raises(TurnoutError) as caught:
            await world.router.stream(poison())
        assert_poison(caught.value)
        stream = await world.router.stream(chat())
        async with stream:
            assert [chunk async for chunk in stream]
    assert world.taken_out() == []


async def test_a_hedged_poison_request_is_judged_on_both_racers() -> None:
    world = World(dep("a"), dep("b"), hedging={"chat": HedgeConfig(delay=0.01, budget=1.0)})
    await world.serve(count=6)
    for _ in range(3):
        assert_poison(await world.poisoned())
        await world.serve(count=2)
    assert world.recorder.of(HedgeFired)
    assert world.taken_out() == []
    await world.assert_all_healthy()


async def test_a_fallback_serving_nothing_else_is_spared_too() -> None:
    """The fallback group gets no traffic of its own: no success, but no failure counted
    either, so it is no evidence against the request; its primary answers others."""
    world = World(
        dep("a", "gpt"), dep("f", "claude"), fallbacks=FallbackConfig(general={"gpt": ["claude"]})
    )
    await world.serve("gpt", 6)
    for _ in range(4):
        assert_poison(await world.poisoned("gpt"))
        await world.serve("gpt", 2)
    assert world.taken_out() == []
    await world.assert_all_healthy()
    # The fallback still serves when its primary cannot.
    world.upstreams.down.add("a")
    response = await world.router.complete(chat("gpt"))
    assert response.deployment.id == "f"
