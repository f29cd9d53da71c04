"""A primary that goes down and comes back, where users stand: a LiteLLM config with one
deployment per model plus fallbacks at turnout's defaults, and a group of several deployments.

Routers on a manual clock over in-process upstreams that answer 503 while their deployment is
down. Each scenario is a sequence of requests, four a second, with a 6 s outage from its first
second to its seventh: every request is answered, the fallback (or the group's other
deployments) serves the outage, the failing deployment sees a bounded number of attempts, and
it is back in rotation within a cooldown's time (5 s) of its recovery, on its first successful
probe. (The old breaker, 30 s open, kept it out until past the 30th second.)
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

from harness import Recorder, chat, dep
from litellm_shape import one_per_model
from turnout import Deployment, Request, Router, RouterConfig
from turnout.config.load import parse_config
from turnout.config.router import FallbackConfig
from turnout.errors import ServerError
from turnout.health.record import BreakerPhase, CooldownReason
from turnout.observe.events import AttemptFinished, AttemptStarted, CooldownEntered
from turnout.router.router import DeploymentHealth
from turnout.testing import ManualClock, SimulatedProvider
from turnout.wire import ProviderResponse, StreamChunk


class Outage:
    """Simulated upstreams that answer 503 while their deployment is down (`windows`: the
    times, on the router's clock, each deployment is down), after `latency` seconds."""

    def __init__(self, clock: ManualClock, latency: float = 0.05) -> None:
        self.clock = clock
        self.inner = SimulatedProvider(clock, seed=5)
        self.windows: dict[str, tuple[float, float]] = {}
        self.latency = latency
        #: (deployment id, the time each attempt arrived, whether it was answered).
        self.calls: list[tuple[str, float, bool]] = []

    async def _check(self, deployment: Deployment) -> None:
        arrived = self.clock.now()
        await self.clock.sleep(self.latency)
        start, end = self.windows.get(deployment.id, (0.0, 0.0))
        down = start <= arrived < end
        self.calls.append((deployment.id, arrived, not down))
        if down:
            raise ServerError("Service Unavailable", status=503)

    async def complete(self, deployment: Deployment, request: Request) -> ProviderResponse:
        await self._check(deployment)
        return await self.inner.complete(deployment, request)

    async def stream(self, deployment: Deployment, request: Request) -> AsyncIterator[StreamChunk]:
        await self._check(deployment)
        async for chunk in self.inner.stream(deployment, request):
            yield chunk

    async def embed(self, deployment: Deployment, request: Request) -> ProviderResponse:
        await self._check(deployment)
        return await self.inner.embed(deployment, request)

    def answered_by(self, deployment_id: str) -> list[float]:
        return [at for d, at, ok in self.calls if d == deployment_id and ok]

    def failed_on(self, deployment_id: str) -> list[float]:
        return [at for d, at, ok in self.calls if d == deployment_id and not ok]


def _router(
    config: RouterConfig, clock: ManualClock, upstreams: Outage, recorder: Recorder
) -> Router:
    providers = {deployment.provider: upstreams for deployment in config.model_list}
    return Router(config, providers, clock=clock, rng=random.Random(1), observers=[recorder])


def _litellm_shape() -> RouterConfig:
    """One deployment per model plus fallbacks, LiteLLM's usual settings, turnout's defaults."""
    data = one_per_model(
        "http://127.0.0.1:9/primary",
        "http://127.0.0.1:9/spare",
        ids=True,
        num_retries=2,
        timeout=30,
    )
    return parse_config(data).router


async def _sequence(
    router: Router, clock: ManualClock, model: str, seconds: float = 12.0, every: float = 0.25
) -> list[str]:
    """A request every `every` seconds for `seconds`: which deployment answered each."""
    served = []
    start = clock.now()
    for index in range(int(seconds / every)):
        await clock.sleep(max(0.0, start + index * every - clock.now()))
        response = await router.complete(chat(model))
        assert response.body["choices"]
        served.append(response.deployment.id)
    return served


async def test_one_per_model_outage_is_served_by_the_fallback_and_the_primary_returns() -> None:
    clock = ManualClock()
    upstreams = Outage(clock)
    recorder = Recorder()
    config = _litellm_shape()
    router = _router(config, clock, upstreams, recorder)
    upstreams.windows["chat"] = (1.0, 7.0)
    served = await _sequence(router, clock, "chat", seconds=14.0)
    assert len(served) == 56  # every request answered
    assert "spare" in served
    back = upstreams.answered_by("chat")
    recovered = [at for at in back if at >= 7.0]
    # Back within a cooldown's time of its recovery (5 s, the default), on its first probe.
    assert recovered and recovered[0] <= 7.0 + config.health.cooldown_time + 0.25
    # And in rotation from then on: every later request is the primary's.
    assert set(served[int(recovered[0] / 0.25) + 1 :]) == {"chat"}
    # The outage cost the primary two ejections and a handful of attempts, not every request.
    ejections = [e for e in recorder.of(CooldownEntered) if e.deployment_id == "chat"]
    assert [e.ejections for e in ejections] == [1, 2]
    assert [e.seconds for e in ejections] == [5.0, 5.0]
    assert len(upstreams.failed_on("chat")) <= 6
    probes = [e for e in recorder.of(AttemptStarted) if e.probe]
    assert [e.deployment_id for e in probes] == ["chat", "chat"]  # one failed, one brought it back
    [health] = [h for h in await router.health() if h.deployment_id == "chat"]
    assert (health.breaker, health.cooling_down, health.ejections) == (
        BreakerPhase.CLOSED,
        False,
        2,
    )


async def _eject(router: Router, model: str = "chat") -> DeploymentHealth:
    """Send requests until the deployment `model` names is ejected; its health then."""
    for _ in range(10):
        response = await router.complete(chat(model))
        assert response.body["choices"]
        [health] = [h for h in await router.health() if h.deployment_id == model]
        if health.cooling_down:
            return health
    raise AssertionError("never ejected")


async def test_a_failed_probe_is_answered_by_the_fallback() -> None:
    clock = ManualClock()
    upstreams = Outage(clock)
    recorder = Recorder()
    router = _router(_litellm_shape(), clock, upstreams, recorder)
    upstreams.windows["chat"] = (0.0, 1000.0)
    health = await _eject(router)
    await clock.sleep(health.cooldown_left)
    since = len(recorder.events)
    response = await router.complete(chat("chat"))  # the probe fails: the fallback answers
    assert response.deployment.id == "spare"
    attempts = [e for e in recorder.events[since:] if isinstance(e, AttemptFinished)]
    assert [(a.deployment_id, a.error is None) for a in attempts] == [
        ("chat", False),
        ("spare", True),
    ]
    [health] = [h for h in await router.health() if h.deployment_id == "chat"]
    assert (health.breaker, health.ejections) == (BreakerPhase.OPEN, 2)


async def test_probes_are_one_at_a_time_under_concurrency_and_the_rest_fall_back() -> None:
    clock = ManualClock()
    upstreams = Outage(clock, latency=0.5)
    recorder = Recorder()
    router = _router(_litellm_shape(), clock, upstreams, recorder)
    upstreams.windows["chat"] = (0.0, 1000.0)
    await _eject(router)  # the spare answers meanwhile
    upstreams.windows["chat"] = (0.0, 0.0)
    await clock.sleep(10.0)  # past the ejection: the primary is probing, and healthy again
    since = len(upstreams.calls)
    responses = await asyncio.gather(*(router.complete(chat("chat")) for _ in range(10)))
    on_primary = [d for d, _, _ in upstreams.calls[since:] if d == "chat"]
    assert on_primary == ["chat"]  # one probe; the nine others went to the fallback at once
    assert sorted(r.deployment.id for r in responses) == ["chat"] + ["spare"] * 9
    responses = await asyncio.gather(*(router.complete(chat("chat")) for _ in range(10)))
    assert {r.deployment.id for r in responses} == {"chat"}  # back in rotation


async def test_a_streaming_probe_brings_the_deployment_back_at_its_first_chunk() -> None:
    """A probe that streams has answered once its first chunk arrives: the deployment is back
    in rotation then, not after the whole answer."""
    clock = ManualClock()
    upstreams = Outage(clock)
    recorder = Recorder()
    router = _router(_litellm_shape(), clock, upstreams, recorder)
    upstreams.windows["chat"] = (0.0, 1000.0)
    health = await _eject(router)
    upstreams.windows["chat"] = (0.0, 0.0)
    await clock.sleep(health.cooldown_left)
    stream = await router.stream(chat("chat"))  # the probe: its first chunk is here
    assert stream.deployment.id == "chat"
    [health] = [h for h in await router.health() if h.deployment_id == "chat"]
    assert (health.breaker, health.probing) == (BreakerPhase.CLOSED, False)
    response = await router.complete(chat("chat"))  # while the probe still streams
    assert response.deployment.id == "chat"
    chunks = [chunk async for chunk in stream]
    assert chunks
    [health] = [h for h in await router.health() if h.deployment_id == "chat"]
    assert (health.breaker, health.in_flight, health.probes) == (BreakerPhase.CLOSED, 0, 0)


async def test_a_group_of_several_deployments_routes_around_the_outage_and_takes_it_back() -> None:
    clock = ManualClock()
    upstreams = Outage(clock)
    recorder = Recorder()
    config = RouterConfig(
        model_list=(dep("a"), dep("b"), dep("c"), dep("s", "spare")),
        fallbacks=FallbackConfig(general={"chat": ["spare"]}),
    )
    router = _router(config, clock, upstreams, recorder)
    upstreams.windows["b"] = (1.0, 7.0)
    served = await _sequence(router, clock, "chat", seconds=14.0)
    assert len(served) == 56
    assert "s" not in served  # the group's other deployments served the outage
    recovered = [at for at in upstreams.answered_by("b") if at >= 7.0]
    assert recovered and recovered[0] <= 7.0 + config.health.cooldown_time + 0.25
    assert len(upstreams.failed_on("b")) <= 6
    ejections = [e for e in recorder.of(CooldownEntered) if e.deployment_id == "b"]
    assert ejections and all(e.seconds <= 5.0 for e in ejections)
    for health in await router.health():
        assert health.breaker is BreakerPhase.CLOSED, health


async def test_a_dead_deployment_is_probed_less_and_less_often() -> None:
    """Growth bounds what a dead upstream costs: over ten minutes, a few probes, not one per
    cooldown (120)."""
    clock = ManualClock()
    upstreams = Outage(clock)
    recorder = Recorder()
    router = _router(_litellm_shape(), clock, upstreams, recorder)
    upstreams.windows["chat"] = (0.0, 10_000.0)
    for _ in range(600):
        response = await router.complete(chat("chat"))
        assert response.deployment.id == "spare"
        await clock.sleep(1.0)
    ejections = [e for e in recorder.of(CooldownEntered) if e.deployment_id == "chat"]
    assert [e.seconds for e in ejections][:7] == [5.0, 5.0, 10.0, 20.0, 40.0, 80.0, 160.0]
    assert max(e.seconds for e in ejections) == 300.0
    assert len(ejections) <= 10
    assert all(e.reason is CooldownReason.FAILURES for e in ejections[1:])
