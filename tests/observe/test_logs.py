"""The routing log: what it writes, and that what it remembers per request is let go.

The observer remembers a request's failed attempts to name them on its served line. Real routers
on a manual clock drive many requests to every kind of ending (failed on every attempt and
fallback, judged poison, cut by the deadline, cancelled, streams broken beyond repair, left by
their reader or stalled, hedged races lost or won): afterwards the observer holds nothing. The
same runs check the request lifecycle the observer relies on: each request's events open with
one `RequestStarted` and close with one `RequestFinished`, whichever way it ended, and carry
the request's principal.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from harness import Recorder, chat, dep
from turnout import Deployment, Request, Router, RouterConfig
from turnout.config.router import (
    BreakerConfig,
    FallbackConfig,
    HealthConfig,
    HedgeConfig,
    RetryBudgetConfig,
    RetryConfig,
)
from turnout.errors import (
    FailureKind,
    ServerError,
    StreamInterruptedError,
    TurnoutError,
    UpstreamConnectionError,
)
from turnout.observe.events import (
    AttemptFinished,
    Event,
    FallbackTaken,
    HedgeFired,
    PoisonRequest,
    RequestFinished,
    RequestStarted,
    StreamFailover,
)
from turnout.observe.logs import LogObserver
from turnout.testing import ManualClock, SimulatedProvider
from turnout.wire import Principal, ProviderResponse, StreamChunk

#: Requests driven to each kind of ending.
REQUESTS = 12
FOREVER = 1e6
#: Who every request comes from: it must reach each of the request's lifecycle and attempt events.
CALLER = Principal("key-7f3a")


def ask(model: str, text: str) -> Request:
    """A chat request from `CALLER`."""
    request = chat(model, text)
    request.principal = CALLER
    return request


class Upstreams:
    """Simulated upstreams whose behaviour each request's text names (its first word), by the
    request's call number: "fail" always fails, "poison" always answers 500, "hang" fails
    once then never answers, "cut" streams two chunks then breaks, "stall" fails once then
    streams one chunk and goes silent, "slow" answers after 5 s on its first call, "late-fail"
    fails after 2 s; anything else is healthy."""

    def __init__(self, clock: ManualClock) -> None:
        self.clock = clock
        self.inner = SimulatedProvider(clock, seed=5)
        self.calls: Counter[str] = Counter()
        #: Set when a request's call starts hanging (its caller may now be cancelled).
        self.hanging = asyncio.Event()

    async def _before(self, request: Request) -> str:
        text = str(request.body["messages"][0]["content"])
        mode = text.split()[0]
        self.calls[request.request_id] += 1
        number = self.calls[request.request_id]
        await self.clock.sleep(0.05)
        if mode == "fail" or (mode in ("hang", "stall") and number == 1):
            raise UpstreamConnectionError("The connection was refused")
        if mode == "poison":
            raise ServerError("The server had an error processing your request", status=500)
        if mode == "hang":
            self.hanging.set()
            await self.clock.sleep(FOREVER)
        if mode == "late-fail":
            await self.clock.sleep(2.0)
            raise UpstreamConnectionError("The connection was reset")
        if mode == "slow" and number == 1:
            await self.clock.sleep(5.0)
        return mode

    async def complete(self, deployment: Deployment, request: Request) -> ProviderResponse:
        await self._before(request)
        return await self.inner.complete(deployment, request)

    async def stream(self, deployment: Deployment, request: Request) -> AsyncIterator[StreamChunk]:
        mode = await self._before(request)
        sent = 0
        async for chunk in self.inner.stream(deployment, request):
            if mode == "cut" and sent == 2:
                raise StreamInterruptedError("The stream broke: connection reset")
            if mode == "stall" and sent == 1:
                self.hanging.set()
                await self.clock.sleep(FOREVER)
            yield chunk
            sent += 1

    async def embed(self, deployment: Deployment, request: Request) -> ProviderResponse:
        await self._before(request)
        return await self.inner.embed(deployment, request)


class World:
    """A router over `Upstreams`, logging through a `LogObserver`, every event recorded.

    Groups: "chat" (two deployments, falling back to "backup"), "backup" (one) and "hedged"
    (two, hedged after 1 s). Cooldowns, breakers and the retry budget are off, so that every
    request really reaches its upstreams and goes every way it can.
    """

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.upstreams = Upstreams(self.clock)
        self.recorder = Recorder()
        self.logs = LogObserver("simple-shuffle")
        self.router = Router(
            RouterConfig(
                model_list=(
                    dep("a"),
                    dep("b"),
                    dep("c", "backup"),
                    dep("h1", "hedged"),
                    dep("h2", "hedged"),
                ),
                fallbacks=FallbackConfig(general={"chat": ["backup"]}),
                retries=RetryConfig(
                    num_retries=2, base_delay=0.1, budget=RetryBudgetConfig(enabled=False)
                ),
                health=HealthConfig(disable_cooldowns=True),
                breaker=BreakerConfig(enabled=False),
                hedging={"hedged": HedgeConfig(delay=1.0, budget=1.0)},
                timeout=30.0,
            ),
            {"sim": self.upstreams},
            clock=self.clock,
            rng=random.Random(3),
            observers=[self.recorder, self.logs],
        )

    async def healthy(self) -> None:
        """A served request between the others (and evidence that the deployments answer)."""
        for group in ("chat", "backup"):
            response = await self.router.complete(ask(group, "fine"))
            assert response.body["choices"]

    async def failing(self, request: Request) -> TurnoutError:
        with pytest.raises(TurnoutError) as caught:
            await self.router.complete(request)
        return caught.value

    async def read(self, request: Request, *, chunks: int | None = None) -> None:
        """Stream the answer; leave after `chunks` chunks (None: read it all)."""
        request.body["stream"] = True
        stream = await self.router.stream(request)
        if chunks is None:
            async for _ in stream:
                pass
            return
        async with stream:
            async for _ in stream:
                chunks -= 1
                if chunks == 0:
                    break

    async def cancelled(self, request: Request, *, stream: bool = False) -> None:
        """Start the request, and cancel it once an upstream hangs on it."""
        self.upstreams.hanging.clear()
        work = self.read(request) if stream else self.router.complete(request)
        task = asyncio.ensure_future(work)
        await self.upstreams.hanging.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    def failed_attempts(self) -> int:
        return sum(
            1
            for e in self.recorder.of(AttemptFinished)
            if e.error is not None and e.error is not FailureKind.CANCELLED
        )


async def _failed_everywhere(world: World) -> None:
    error = await world.failing(ask("chat", "fail"))
    assert error.kind is FailureKind.CONNECTION


async def _poison(world: World) -> None:
    await world.failing(ask("chat", "poison"))


async def _deadline(world: World) -> None:
    error = await world.failing(ask("chat", "hang"))
    assert error.kind is FailureKind.DEADLINE


async def _cancelled(world: World) -> None:
    await world.cancelled(ask("chat", "hang"))


async def _stream_broken(world: World) -> None:
    with pytest.raises(StreamInterruptedError):
        await world.read(ask("chat", "cut"))


async def _stream_failed_before_start(world: World) -> None:
    with pytest.raises(TurnoutError):
        await world.read(ask("chat", "fail"))


async def _stream_stalled(world: World) -> None:
    with pytest.raises(TurnoutError) as caught:
        await world.read(ask("chat", "stall"))
    assert caught.value.kind is FailureKind.DEADLINE


async def _stream_left(world: World) -> None:
    await world.read(ask("chat", "stall"), chunks=1)


async def _stream_cancelled(world: World) -> None:
    await world.cancelled(ask("chat", "stall"), stream=True)


async def _hedged_failed(world: World) -> None:
    await world.failing(ask("hedged", "late-fail"))


async def _hedged_won(world: World) -> None:
    response = await world.router.complete(ask("hedged", "slow"))
    assert response.body["choices"]


async def _served_after_failures(world: World) -> None:
    response = await world.router.complete(ask("chat", "stall"))
    assert response.body["choices"]


Ending = Callable[[World], Awaitable[None]]

#: Each kind of ending, and an event that shows the requests really went that way.
ENDINGS: dict[str, tuple[Ending, type[Any] | None]] = {
    "failed-everywhere": (_failed_everywhere, FallbackTaken),
    "poison": (_poison, PoisonRequest),
    "deadline": (_deadline, None),
    "cancelled": (_cancelled, None),
    "stream-broken": (_stream_broken, StreamFailover),
    "stream-failed-before-start": (_stream_failed_before_start, FallbackTaken),
    "stream-stalled": (_stream_stalled, None),
    "stream-left": (_stream_left, None),
    "stream-cancelled": (_stream_cancelled, None),
    "hedged-failed": (_hedged_failed, HedgeFired),
    "hedged-won": (_hedged_won, HedgeFired),
    "served-after-failures": (_served_after_failures, None),
}


@pytest.mark.parametrize("ending", list(ENDINGS))
async def test_the_observer_holds_nothing_once_requests_end(
    ending: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="turnout.routing")
    world = World()
    end, evidence = ENDINGS[ending]
    for _ in range(REQUESTS):
        await world.healthy()
        await end(world)
    if evidence is not None:
        assert world.recorder.of(evidence)
    if ending != "hedged-won":
        assert world.failed_attempts() >= REQUESTS
    assert world.logs.tracked_requests == 0
    finished = Counter(e.request_id for e in world.recorder.of(RequestFinished))
    assert len(finished) == REQUESTS * 3
    assert set(finished.values()) == {1}
    started = Counter(e.request_id for e in world.recorder.of(RequestStarted))
    assert started == finished
    assert_framed(world.recorder.events)


def assert_framed(events: list[Event]) -> None:
    """Each request's events open with its `RequestStarted` and close with its
    `RequestFinished`, both naming its model and principal, as each of its attempts does."""
    by_request: dict[str, list[Event]] = {}
    for event in events:
        request_id = getattr(event, "request_id", None)
        if request_id is not None:
            by_request.setdefault(request_id, []).append(event)
    for request_events in by_request.values():
        first, *middle, last = request_events
        assert isinstance(first, RequestStarted), request_events
        assert isinstance(last, RequestFinished), request_events
        assert not [e for e in middle if isinstance(e, RequestStarted | RequestFinished)]
        assert first.principal == last.principal == CALLER
        assert first.model == last.model
        assert first.at <= last.at
        attempts = [e for e in middle if isinstance(e, AttemptFinished)]
        assert attempts
        assert all(e.principal == CALLER for e in attempts)


async def test_a_served_line_still_names_the_failures_before_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="turnout.routing")
    world = World()
    await world.router.complete(chat("chat", "stall"))
    served = [r.getMessage() for r in caplog.records if r.getMessage().startswith("served ")]
    assert len(served) == 1
    assert " after=" in served[0]
    assert served[0].endswith(":connection")
    assert world.logs.tracked_requests == 0


def _failed(request_id: str) -> AttemptFinished:
    return AttemptFinished(
        request_id=request_id,
        model_group="chat",
        deployment_id="a",
        attempt=1,
        at=0.0,
        duration=0.1,
        error=FailureKind.SERVER_ERROR,
        status=500,
        usage=None,
        cost=None,
        ttft=None,
        stream=False,
    )


def test_a_hard_cap_bounds_what_is_remembered_when_endings_go_unreported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="turnout.routing")
    logs = LogObserver("simple-shuffle", max_tracked=50)
    for number in range(10_000):
        logs.on_event(_failed(f"req-{number}"))
        logs.on_event(_failed(f"req-{number}"))
    assert logs.tracked_requests == 50
    logs.on_event(RequestFinished("req-9999", "chat", None, 0.0))
    assert logs.tracked_requests == 49


def test_nothing_is_remembered_when_the_detail_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="turnout.routing")
    logs = LogObserver("simple-shuffle")
    logs.on_event(_failed("req-1"))
    assert logs.tracked_requests == 0


def test_the_cap_must_allow_one_request() -> None:
    with pytest.raises(ValueError, match="max_tracked"):
        LogObserver("simple-shuffle", max_tracked=0)
