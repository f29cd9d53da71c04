"""The router: the public face of routing (requests, reloads, operator controls, health).

For each request: resolve the model name to a group; pre-filter the group's deployments
(`turnout.router.filters`); let the strategy pick one; call its provider. A retryable failure
goes to another healthy deployment of the group at once, or, when none is left, back to one
already tried after an exponential backoff with full jitter that honours Retry-After. When the
group's retries are spent, the fallback list for the kind of failure is tried, group by group,
each with its own retries, up to a bounded depth. One overall deadline bounds all of it. When
everything fails the caller gets the most informative underlying error with a summary of every
attempt, not a generic "no deployments available".
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from types import MappingProxyType, TracebackType
from typing import Any, Self

from turnout.clock import Clock, SystemClock
from turnout.config.router import Deployment, RouterConfig
from turnout.errors import (
    ConfigError,
    InvalidRequestError,
)
from turnout.health.ejection import count_at, phase_at
from turnout.health.record import BreakerPhase, CooldownReason
from turnout.observe.bus import Bus, Observer
from turnout.providers.base import Closable, Provider
from turnout.router.attempt import Call
from turnout.router.dispatch import Dispatch
from turnout.router.execution import Executor
from turnout.router.hedging import Hedger
from turnout.router.limits import LearnedLimits, LimitsView
from turnout.router.result import Response
from turnout.router.runtime import ConfigBundle, retry_budget_for
from turnout.router.strategies import create_strategy
from turnout.router.streaming import Stream
from turnout.router.table import ModelTable
from turnout.state.base import StateStore
from turnout.state.factory import store_for
from turnout.upstream import Transport
from turnout.wire import Request


@dataclass(frozen=True, slots=True)
class DeploymentHealth:
    """A deployment's health as an operator sees it (for status pages and admin calls)."""

    deployment_id: str
    model_group: str
    provider: str
    model: str
    in_flight: int
    #: Ejected now (`turnout.health.ejection`): out of rotation until its expiry.
    cooling_down: bool
    #: Why it was ejected, while ejected or probing (None in rotation).
    cooldown_reason: CooldownReason | None
    #: Seconds of the ejection left (0 when not ejected).
    cooldown_left: float
    #: The phase: closed (in rotation), open (ejected), half-open (probing).
    breaker: BreakerPhase
    latency: float | None
    ttft: float | None
    reliability: float
    #: The attempt limits it gets now while something else could answer (learned, cold or
    #: configured; see `turnout.router.limits`).
    limits: LimitsView | None = None
    #: Consecutive ejections (decayed by the time since it came back), which sets how long
    #: the next one lasts.
    ejections: int = 0
    #: Probing: a bounded number of requests at a time until one succeeds.
    probing: bool = False
    #: Probes in flight.
    probes: int = 0


logger = logging.getLogger("turnout.router")


class Router:
    """Routes OpenAI-shaped requests to the deployments of model groups. Async, in-process.

    ``providers`` maps each deployment's ``provider`` name to the object that calls it. The
    clock, random generator and state store are injected so that tests control time and chance
    and so that several gateway instances can share state. ``transport``, when given, is the
    upstream transport the providers send through, which the router then owns: `aclose`
    closes it. `turnout.open_router` builds a router with real providers from a config.
    ``observers`` receive every event the router emits, through its `bus` (where more may
    subscribe later; `RouterStats` counts from them); with none, no event is built.
    """

    def __init__(
        self,
        config: RouterConfig,
        providers: Mapping[str, Provider],
        *,
        state: StateStore | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        observers: Sequence[Observer] = (),
        transport: Transport | None = None,
    ) -> None:
        self._clock: Clock = clock or SystemClock()
        self._transport = transport
        self._closed = False
        self._rng = rng or random.Random()
        #: Every event of the router goes through it; subscribe to it to observe them.
        self.bus = Bus(observers)
        #: What requests take from the current config; replaced whole, never changed, so that
        #: a request that read it once keeps a consistent configuration to its end.
        self._bundle = self._build_bundle(config, providers, None)
        #: The one way to the state store, and to the bus for attempt events.
        self._dispatch = Dispatch(
            clock=self._clock, store=state or store_for(config, self._clock), bus=self.bus
        )
        self._executor = Executor(self._dispatch, self._rng)

    # ---- configuration -------------------------------------------------------------------

    @property
    def config(self) -> RouterConfig:
        return self._bundle.table.config

    def model_names(self) -> list[str]:
        """Every name a caller may use: model groups and aliases."""
        return self._bundle.table.public_names()

    def group_of(self, name: str) -> str:
        """The model group a public name refers to (raises `ModelNotFoundError`)."""
        return self._bundle.table.resolve(name)

    def deployments(self) -> tuple[Deployment, ...]:
        return self._bundle.table.config.model_list

    def provider_of(self, deployment: Deployment) -> Provider:
        """The provider that calls `deployment`, in the configuration in force."""
        return self._bundle.providers[deployment.provider]

    async def reload(
        self, config: RouterConfig, providers: Mapping[str, Provider] | None = None
    ) -> None:
        """Swap in a new model list (and providers). Requests in flight finish on the
        configuration they started with, providers included; deployments whose id persists
        keep their runtime state (health, averages, counters). A config that does not build
        changes nothing."""
        previous = self._bundle
        bundle = self._build_bundle(
            config, previous.providers if providers is None else providers, previous
        )
        self._bundle = bundle
        if config.state != previous.table.config.state:
            logger.warning("reload: state (the state backend) takes effect only on restart")
        await self._dispatch.retain(bundle.table.by_id)

    def _build_bundle(
        self,
        config: RouterConfig,
        providers: Mapping[str, Provider],
        previous: ConfigBundle | None,
    ) -> ConfigBundle:
        """Everything `config` decides, built whole. Parts whose settings did not change carry
        over from `previous` with what they learned: the strategy's per-group memory
        (round-robin position), the retry budget's window, the hedger's latency samples."""
        missing = sorted({d.provider for d in config.model_list} - set(providers))
        if missing:
            raise ConfigError(
                f"no provider registered for {', '.join(map(repr, missing))}; "
                f"registered: {', '.join(sorted(providers)) or 'none'}"
            )
        table = ModelTable(config, providers)
        if previous is not None and config.routing == previous.table.config.routing:
            strategy = previous.strategy
        else:
            strategy = create_strategy(config.routing.strategy, config.routing, self._rng)
        if previous is not None and (config.retries.budget, config.hedging) == (
            previous.table.config.retries.budget,
            previous.table.config.hedging,
        ):
            retry_budget, hedger = previous.retry_budget, previous.hedger
        else:
            retry_budget, hedger = retry_budget_for(table), Hedger(config.hedging)
        if previous is not None and config.learned_timeouts == previous.limits.config:
            limits = previous.limits
            limits.retain(table.by_id)
        else:
            limits = LearnedLimits(config.learned_timeouts)
        return ConfigBundle(
            table=table,
            # A copy no caller can change under the requests that use it.
            providers=MappingProxyType(dict(providers)),
            strategy=strategy,
            retry_budget=retry_budget,
            hedger=hedger,
            limits=limits,
        )

    def state_status(self) -> dict[str, Any]:
        """Where runtime state lives (``backend``), and whether it is shared right now
        (``shared``: False for in-process state, and for Redis while it is unreachable)."""
        return self._dispatch.state_status()

    # ---- lifetime ------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the current providers that hold something (`Closable` ones), then the
        transport the router owns, releasing its connections. Idempotent.

        Later requests raise `RuntimeError`; requests still running fail once their provider
        is closed. Providers a reload replaced are their owner's to close (requests started
        before the reload may still use them).
        """
        if self._closed:
            return
        self._closed = True
        # Every close runs even when one fails (and the failure is raised after); the
        # transport, which the providers send through, closes last.
        async with AsyncExitStack() as closing:
            closing.push_async_callback(self._dispatch.aclose)
            if self._transport is not None:
                closing.push_async_callback(self._transport.aclose)
            for provider in {id(p): p for p in self._bundle.providers.values()}.values():
                if isinstance(provider, Closable):
                    closing.push_async_callback(provider.aclose)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # ---- operator controls ---------------------------------------------------------------

    async def cool_down(self, deployment_id: str, seconds: float) -> None:
        """Eject a deployment for `seconds` (a manual ejection; it probes when it ends)."""
        table = self._bundle.table
        if deployment_id not in table.by_id:
            raise InvalidRequestError(f"no deployment with id {deployment_id!r}")
        await self._dispatch.cool_down(
            deployment_id, CooldownReason.MANUAL, seconds, table.policies[deployment_id]
        )

    async def lift_cooldown(self, deployment_id: str) -> None:
        """Put an ejected or probing deployment back in rotation now, its count of consecutive
        ejections forgotten."""
        await self._dispatch.lift_cooldown(deployment_id)

    async def health(self) -> list[DeploymentHealth]:
        """Every deployment's current health."""
        table = self._bundle.table
        ids = list(table.by_id)
        states = await self._dispatch.states(ids)
        limits = self._bundle.limits
        now, wall = self._clock.now(), self._clock.wall()
        report = []
        for deployment_id, state in zip(ids, states, strict=True):
            deployment = table.by_id[deployment_id]
            cooling = state.cooling(now)
            phase = phase_at(state, now)
            policy = table.policies[deployment_id]
            report.append(
                DeploymentHealth(
                    deployment_id=deployment_id,
                    model_group=deployment.model_name,
                    provider=deployment.provider,
                    model=deployment.model,
                    in_flight=state.in_flight,
                    cooling_down=cooling,
                    cooldown_reason=state.cooldown_reason if phase else None,
                    cooldown_left=state.cooldown_until - now if cooling else 0.0,
                    breaker=phase,
                    latency=state.latency,
                    ttft=state.ttft,
                    reliability=state.reliability(wall),
                    limits=limits.view(deployment),
                    ejections=count_at(state, policy.ejection_decay, now),
                    probing=phase is BreakerPhase.HALF_OPEN,
                    probes=state.probes if phase is BreakerPhase.HALF_OPEN else 0,
                )
            )
        return report

    # ---- requests ------------------------------------------------------------------------

    async def complete(self, request: Request) -> Response:
        """A chat or text completion, answered whole."""
        if request.stream:
            raise InvalidRequestError(
                "stream=true requests go through Router.stream", param="stream"
            )
        return await self._answer(request, Call.COMPLETE)

    async def embed(self, request: Request) -> Response:
        """Embeddings of the request's input."""
        return await self._answer(request, Call.EMBED)

    async def stream(self, request: Request) -> Stream:
        """A streamed completion. Returns once the first chunk has arrived: every failure before
        it is retried or failed over invisibly.

        Iterate the stream to its end, or leave it early with ``aclose()`` or by using it as
        ``async with await router.stream(request) as stream:``, so that the deployment's
        in-flight slot is freed.
        """
        if self._closed:
            raise _closed()
        if not request.stream:
            request.body["stream"] = True
        _, outcome = await self._executor.run(self._bundle, request, Call.STREAM)
        assert isinstance(outcome, Stream)
        return outcome

    async def pick(self, request: Request) -> Deployment:
        """The deployment that would serve `request` now: one routing decision, no call made.

        Raises what a real request would raise when nothing is available.
        """
        bundle = self._bundle
        group = bundle.table.resolve(request.model)
        deployment, rejections = await self._dispatch.pick(bundle, group, request)
        if deployment is None:
            raise rejections.error(group, request, self._clock.wall())
        return deployment

    async def chat(self, model: str, messages: list[dict[str, Any]], **params: Any) -> Response:
        """Shorthand for `complete` with a chat request built from its parts."""
        body: dict[str, Any] = {"model": model, "messages": messages, **params}
        return await self.complete(Request(model=model, body=body))

    async def _answer(self, request: Request, call: Call) -> Response:
        if self._closed:
            raise _closed()
        run, outcome = await self._executor.run(self._bundle, request, call)
        assert isinstance(outcome, tuple)
        result, deployment, cost = outcome
        return Response(
            result,
            deployment=deployment,
            attempts=tuple(run.attempts),
            cost=cost,
            latency=self._clock.now() - run.started,
        )


def _closed() -> RuntimeError:
    # Refused before routing: a provider closed under a request would count as its failure.
    return RuntimeError("the router is closed")


__all__ = ["DeploymentHealth", "Router"]
