"""Routers on simulated providers and a manual clock, for tests of routing behaviour.

Loaded as a pytest plugin by the root conftest, so its `h` fixture is everywhere; test modules
import its helpers with `from harness import ...`.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest

from turnout import Deployment, Request, Router, RouterConfig
from turnout.errors import TurnoutError
from turnout.observe.events import Event
from turnout.observe.stats import RouterStats
from turnout.testing import ManualClock, SimulatedProvider
from turnout.wire import ProviderResponse, StreamChunk


def dep(deployment_id: str, group: str = "chat", **fields: Any) -> Deployment:
    """A simulated deployment whose id is also its upstream model name."""
    return Deployment(
        model_name=group, model=deployment_id, provider="sim", id=deployment_id, **fields
    )


def chat(model: str = "chat", text: str = "hello", **body: Any) -> Request:
    return Request(model=model, body={"messages": [{"role": "user", "content": text}], **body})


class Recorder:
    """An observer that keeps every event."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event) -> None:
        self.events.append(event)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self.events if isinstance(e, kind)]


class Scripted:
    """Delegates to a simulated provider, but first raises the errors queued per deployment."""

    def __init__(self, inner: SimulatedProvider) -> None:
        self.inner = inner
        self.queued: dict[str, list[Exception]] = {}
        self.calls: list[str] = []

    def fail(self, deployment_id: str, *errors: Exception) -> None:
        self.queued.setdefault(deployment_id, []).extend(errors)

    def _next_error(self, deployment: Deployment) -> Exception | None:
        self.calls.append(deployment.id)
        queue = self.queued.get(deployment.id)
        return queue.pop(0) if queue else None

    async def complete(self, deployment: Deployment, request: Request) -> ProviderResponse:
        error = self._next_error(deployment)
        if error is not None:
            raise error
        return await self.inner.complete(deployment, request)

    async def stream(self, deployment: Deployment, request: Request) -> AsyncIterator[StreamChunk]:
        error = self._next_error(deployment)
        if error is not None:
            raise error
        async for chunk in self.inner.stream(deployment, request):
            yield chunk

    async def embed(self, deployment: Deployment, request: Request) -> ProviderResponse:
        error = self._next_error(deployment)
        if error is not None:
            raise error
        return await self.inner.embed(deployment, request)


class Harness:
    """A router, its simulated provider, its clock, an event recorder and the counters derived
    from its events, built together."""

    def __init__(self) -> None:
        self.clock = ManualClock()
        self.sim = SimulatedProvider(self.clock, seed=7)
        self.scripted = Scripted(self.sim)
        self.recorder = Recorder()
        self.stats = RouterStats()
        self._router: Router | None = None

    def router(self, *deployments: Deployment, **config: Any) -> Router:
        return self.router_of(RouterConfig(model_list=deployments, **config))

    def router_of(self, config: RouterConfig) -> Router:
        """A router of a config built elsewhere (a parsed config file, say)."""
        self._router = Router(
            config,
            {"sim": self.scripted},
            clock=self.clock,
            rng=random.Random(3),
            observers=[self.recorder, self.stats],
        )
        return self._router

    async def failure(self, request: Request) -> TurnoutError:
        assert self._router is not None
        with pytest.raises(TurnoutError) as caught:
            await self._router.complete(request)
        return caught.value


@pytest.fixture
def h() -> Harness:
    return Harness()
