"""The router: pick a deployment, call it, retry, fall back, all under one deadline.

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

import asyncio
import random
from collections.abc import Awaitable, Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from turnout.clock import Clock, SystemClock
from turnout.config import Deployment, RouterConfig
from turnout.errors import (
    ConfigError,
    DeadlineExceededError,
    FailureKind,
    InvalidRequestError,
    ProviderError,
    ServerError,
    StreamInterruptedError,
    TurnoutError,
    UpstreamTimeoutError,
    fallback_kind,
    most_informative,
)
from turnout.observe.events import AttemptStarted, FallbackTaken, Observer, RetryScheduled
from turnout.observe.stats import RouterStats
from turnout.providers.base import Provider
from turnout.router.attempt import Attempt, Run, emit
from turnout.router.backoff import backoff_delay
from turnout.router.breaker import Admission
from turnout.router.deployments import ModelTable
from turnout.router.filters import Rejections, eligible
from turnout.router.strategies import create_strategy
from turnout.router.streaming import Stream, close_quietly
from turnout.state.base import StateStore
from turnout.state.memory import MemoryStateStore
from turnout.state.record import BreakerPhase, CooldownReason
from turnout.wire import ProviderResponse, Request, Response

T = TypeVar("T")

#: Failures that say this deployment cannot serve the request: retry elsewhere, never here.
_NOT_HERE_AGAIN = frozenset(
    {FailureKind.AUTHENTICATION, FailureKind.PERMISSION, FailureKind.NOT_FOUND}
)
_NOTHING: frozenset[str] = frozenset()


class _Call(Enum):
    COMPLETE = "complete"
    EMBED = "embed"
    STREAM = "stream"


@dataclass(frozen=True, slots=True)
class DeploymentHealth:
    """A deployment's health as an operator sees it (for status pages and admin calls)."""

    deployment_id: str
    model_group: str
    provider: str
    model: str
    in_flight: int
    cooling_down: bool
    cooldown_reason: CooldownReason | None
    #: Seconds of cooldown left (0 when not cooling down).
    cooldown_left: float
    breaker: BreakerPhase
    latency: float | None
    ttft: float | None
    reliability: float


class Router:
    """Routes OpenAI-shaped requests to the deployments of model groups. Async, in-process.

    ``providers`` maps each deployment's ``provider`` name to the object that calls it. The
    clock, random generator and state store are injected so that tests control time and chance
    and so that several gateway instances can share state.
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
    ) -> None:
        self._providers = dict(providers)
        self._clock: Clock = clock or SystemClock()
        self._rng = rng or random.Random()
        self._store: StateStore = state or MemoryStateStore()
        self._observers = tuple(observers)
        self.stats = RouterStats()
        self._table = self._build_table(config)
        self._strategy = create_strategy(config.routing.strategy, config.routing, self._rng)

    # ---- configuration -------------------------------------------------------------------

    @property
    def config(self) -> RouterConfig:
        return self._table.config

    def model_names(self) -> list[str]:
        """Every name a caller may use: model groups and aliases."""
        return self._table.public_names()

    def group_of(self, name: str) -> str:
        """The model group a public name refers to (raises `ModelNotFoundError`)."""
        return self._table.resolve(name)

    def deployments(self) -> tuple[Deployment, ...]:
        return self._table.config.model_list

    async def reload(
        self, config: RouterConfig, providers: Mapping[str, Provider] | None = None
    ) -> None:
        """Swap in a new model list (and providers). Requests in flight finish on the table they
        started with; deployments whose id persists keep their runtime state (health, averages,
        counters)."""
        if providers is not None:
            missing = {d.provider for d in config.model_list} - set(providers)
            if missing:
                raise ConfigError(f"no provider registered for {', '.join(sorted(missing))}")
            self._providers = dict(providers)
        table = self._build_table(config)
        if config.routing != self._table.config.routing:
            # Otherwise keep the strategy and its per-group memory (round-robin position).
            self._strategy = create_strategy(config.routing.strategy, config.routing, self._rng)
        self._table = table
        await self._store.retain(table.by_id)

    def _build_table(self, config: RouterConfig) -> ModelTable:
        missing = sorted({d.provider for d in config.model_list} - set(self._providers))
        if missing:
            raise ConfigError(
                f"no provider registered for {', '.join(map(repr, missing))}; "
                f"registered: {', '.join(sorted(self._providers)) or 'none'}"
            )
        return ModelTable(config)

    # ---- operator controls ---------------------------------------------------------------

    async def cool_down(self, deployment_id: str, seconds: float) -> None:
        """Take a deployment out of rotation for `seconds` (a manual cooldown)."""
        table = self._table
        if deployment_id not in table.by_id:
            raise InvalidRequestError(f"no deployment with id {deployment_id!r}")
        events = await self._store.cool_down(
            deployment_id,
            CooldownReason.MANUAL,
            seconds,
            table.policies[deployment_id],
            self._clock.now(),
        )
        self._emit_all(events)

    async def lift_cooldown(self, deployment_id: str) -> None:
        """Put a cooling deployment back in rotation now."""
        self._emit_all(await self._store.lift_cooldown(deployment_id))

    async def health(self) -> list[DeploymentHealth]:
        """Every deployment's current health."""
        table = self._table
        ids = list(table.by_id)
        states = await self._store.snapshot(ids)
        now, wall = self._clock.now(), self._clock.wall()
        report = []
        for deployment_id, state in zip(ids, states, strict=True):
            deployment = table.by_id[deployment_id]
            cooling = state.cooling(now)
            report.append(
                DeploymentHealth(
                    deployment_id=deployment_id,
                    model_group=deployment.model_name,
                    provider=deployment.provider,
                    model=deployment.model,
                    in_flight=state.in_flight,
                    cooling_down=cooling,
                    cooldown_reason=state.cooldown_reason if cooling else None,
                    cooldown_left=state.cooldown_until - now if cooling else 0.0,
                    breaker=state.breaker.phase,
                    latency=state.latency,
                    ttft=state.ttft,
                    reliability=state.reliability(wall),
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
        return await self._answer(request, _Call.COMPLETE)

    async def embed(self, request: Request) -> Response:
        """Embeddings of the request's input."""
        return await self._answer(request, _Call.EMBED)

    async def stream(self, request: Request) -> Stream:
        """A streamed completion. Returns once the first chunk has arrived: every failure before
        it is retried or failed over invisibly.

        Iterate the stream to its end, or leave it early with ``aclose()`` or by using it as
        ``async with await router.stream(request) as stream:``, so that the deployment's
        in-flight slot is freed.
        """
        if not request.stream:
            request.body["stream"] = True
        _, outcome = await self._execute(request, _Call.STREAM)
        assert isinstance(outcome, Stream)
        return outcome

    async def pick(self, request: Request) -> Deployment:
        """The deployment that would serve `request` now: one routing decision, no call made.

        Raises what a real request would raise when nothing is available.
        """
        table = self._table
        group = table.resolve(request.model)
        clock = self._clock
        deployment, rejections = await self._decide(
            table, group, request, _NOTHING, clock.now(), clock.wall()
        )
        if deployment is None:
            raise rejections.error(group, request, clock.wall())
        return deployment

    async def chat(self, model: str, messages: list[dict[str, Any]], **params: Any) -> Response:
        """Shorthand for `complete` with a chat request built from its parts."""
        body: dict[str, Any] = {"model": model, "messages": messages, **params}
        return await self.complete(Request(model=model, body=body))

    async def _answer(self, request: Request, call: _Call) -> Response:
        run, outcome = await self._execute(request, call)
        assert isinstance(outcome, tuple)
        result, deployment, cost = outcome
        return Response(
            result,
            deployment=deployment,
            attempts=tuple(run.attempts),
            cost=cost,
            latency=self._clock.now() - run.started,
        )

    async def _execute(
        self, request: Request, call: _Call
    ) -> tuple[Run, Stream | tuple[ProviderResponse, Deployment, float | None]]:
        table = self._table
        clock = self._clock
        started = clock.now()
        limit = request.timeout if request.timeout is not None else table.config.timeout
        run = Run(request, started, started + limit)
        self.stats.requests += 1
        try:
            group = table.resolve(request.model)
            run.visited.add(group)
            async with clock.timeout_at(run.deadline):
                return run, await self._with_fallbacks(table, group, run, call)
        except TimeoutError:
            error: TurnoutError = DeadlineExceededError(
                f"The request did not finish within its deadline of {limit:g}s"
            )
        except TurnoutError as failure:
            error = most_informative(run.errors) if run.errors else failure
        error.attempts = tuple(run.attempts)
        raise error

    async def _with_fallbacks(
        self, table: ModelTable, group: str, run: Run, call: _Call
    ) -> Stream | tuple[ProviderResponse, Deployment, float | None]:
        try:
            return await self._with_retries(table, group, run, call)
        except TurnoutError as error:
            run.errors.append(error)
            kind = fallback_kind(error)
            if kind is None:
                raise
            max_depth = table.config.fallbacks.max_depth
            for target in table.fallbacks(kind, group):
                if target in run.visited:
                    continue
                if run.hops >= max_depth:
                    break
                run.hops += 1
                run.visited.add(target)
                self.stats.fallbacks += 1
                if self._observers:
                    emit(
                        self._observers,
                        FallbackTaken(run.request.request_id, group, target, kind, error.kind),
                    )
                try:
                    return await self._with_fallbacks(table, target, run, call)
                except TurnoutError:
                    continue
            raise

    async def _with_retries(
        self, table: ModelTable, group: str, run: Run, call: _Call
    ) -> Stream | tuple[ProviderResponse, Deployment, float | None]:
        clock = self._clock
        store = self._store
        request = run.request
        tried: set[str] = set()
        banned: set[str] = set()
        retries = 0
        last_error: ProviderError | None = None
        while True:
            now = clock.now()
            wall = clock.wall()
            exclude = (tried | banned) if (tried or banned) else _NOTHING
            deployment, rejections = await self._decide(table, group, request, exclude, now, wall)
            if deployment is None:
                if last_error is not None:
                    raise last_error
                raise rejections.error(group, request, wall)
            policy = table.policies[deployment.id]
            admission, events = await store.begin(deployment.id, policy, now, wall)
            if events:
                self._emit_all(events)
            if admission is Admission.REFUSED:
                # Its last probe slot went to a concurrent request: pick again without it.
                tried.add(deployment.id)
                continue
            self.stats.selections[deployment.id] += 1
            attempt = Attempt(
                run=run,
                group=group,
                deployment=deployment,
                policy=policy,
                probe=admission is Admission.PROBE,
                clock=clock,
                store=store,
                observers=self._observers,
            )
            try:
                return await self._attempt(attempt, call)
            except ProviderError as error:
                last_error = error
                if not error.retryable or retries >= table.config.retries.num_retries:
                    raise
                retries += 1
                self.stats.retries += 1
                (banned if error.kind in _NOT_HERE_AGAIN else tried).add(deployment.id)
                await self._before_retry(table, group, run, tried, banned, error, retries)

    async def _decide(
        self,
        table: ModelTable,
        group: str,
        request: Request,
        exclude: Collection[str],
        now: float,
        wall: float,
    ) -> tuple[Deployment | None, Rejections]:
        """One routing decision: pre-filter the group, let the strategy pick among the rest."""
        states = await self._store.snapshot(table.ids[group])
        rejections = Rejections()
        candidates, candidate_states = eligible(
            table.groups[group],
            states,
            request,
            table.config.breaker,
            now,
            wall,
            exclude,
            rejections,
        )
        if rejections.expired:
            await self._lift_expired(rejections.expired)
        if not candidates:
            return None, rejections
        if len(candidates) == 1:
            return candidates[0], rejections
        self.stats.strategy_evaluations += 1
        index = self._strategy.choose(group, candidates, candidate_states, request, wall)
        return candidates[index], rejections

    async def _before_retry(
        self,
        table: ModelTable,
        group: str,
        run: Run,
        tried: set[str],
        banned: set[str],
        error: ProviderError,
        retries: int,
    ) -> None:
        """Go on at once when another deployment can take the retry; otherwise back off (at
        least Retry-After, and until a cooling deployment returns) before trying one again."""
        clock = self._clock
        config = table.config
        ids = table.ids[group]
        deployments = table.groups[group]
        now, wall = clock.now(), clock.wall()
        states = await self._store.snapshot(ids)
        others, _ = eligible(
            deployments,
            states,
            run.request,
            config.breaker,
            now,
            wall,
            tried | banned,
            Rejections(),
        )
        delay = 0.0
        if not others:
            if error.retry_after is not None and error.retry_after > config.retries.max_retry_after:
                raise error
            tried.clear()
            delay = backoff_delay(retries - 1, config.retries, self._rng, error.retry_after)
            rejections = Rejections()
            again, _ = eligible(
                deployments, states, run.request, config.breaker, now, wall, banned, rejections
            )
            if not again:
                wait = rejections.wait_hint()
                if wait is None or wait > config.retries.max_retry_after:
                    raise error
                delay = max(delay, wait)
            if now + delay >= run.deadline:
                raise error
        if self._observers:
            emit(
                self._observers,
                RetryScheduled(
                    run.request.request_id, group, error.deployment_id or "", delay, error.kind
                ),
            )
        if delay > 0:
            await clock.sleep(delay)

    async def _attempt(
        self, attempt: Attempt, call: _Call
    ) -> Stream | tuple[ProviderResponse, Deployment, float | None]:
        deployment = attempt.deployment
        request = attempt.run.request
        provider = self._providers[deployment.provider]
        if self._observers:
            emit(
                self._observers,
                AttemptStarted(
                    request.request_id,
                    attempt.group,
                    deployment.id,
                    attempt.number,
                    attempt.started,
                    attempt.probe,
                ),
            )
        timeouts = deployment.timeouts
        try:
            if call is _Call.STREAM:
                return await self._open_stream(attempt, provider)
            method = provider.embed if call is _Call.EMBED else provider.complete
            result = await self._within(
                timeouts.request, attempt.started, method(deployment, request)
            )
        except asyncio.CancelledError:
            # The caller went away, or the request's deadline cancelled the attempt.
            why = FailureKind.DEADLINE if self._clock.now() >= attempt.run.deadline else None
            await attempt.abandon(why or FailureKind.CANCELLED)
            raise
        except Exception as exc:
            error = _classify(exc, deployment)
            await attempt.fail(error)
            if error is exc:
                raise
            raise error from exc
        cost = await attempt.succeed(result.usage, result.rate_limits)
        return result, deployment, cost

    async def _open_stream(self, attempt: Attempt, provider: Provider) -> Stream:
        deployment = attempt.deployment
        chunks = provider.stream(deployment, attempt.run.request)
        limit = deployment.timeouts.first_token or deployment.timeouts.request
        try:
            first = await self._within(limit, attempt.started, anext(chunks))
        except StopAsyncIteration:
            raise StreamInterruptedError("The stream ended before its first chunk") from None
        except BaseException:  # includes cancellation: the upstream must be closed either way
            await close_quietly(chunks)
            raise
        ttft = self._clock.now() - attempt.started
        return Stream(attempt=attempt, first=first, chunks=chunks, ttft=ttft, clock=self._clock)

    async def _within(self, limit: float | None, started: float, work: Awaitable[T]) -> T:
        """Await `work`, bounded by `limit` seconds from `started` when a limit is set."""
        if limit is None:
            return await work
        try:
            async with self._clock.timeout_at(started + limit):
                return await work
        except TimeoutError:
            raise UpstreamTimeoutError(f"No answer within {limit:g}s") from None

    async def _lift_expired(self, deployment_ids: list[str]) -> None:
        for deployment_id in deployment_ids:
            self._emit_all(await self._store.lift_cooldown(deployment_id))

    def _emit_all(self, events: Sequence[Any]) -> None:
        if self._observers:
            for event in events:
                emit(self._observers, event)


def _classify(exc: Exception, deployment: Deployment) -> TurnoutError:
    """Turn whatever a provider raised into a classified error tied to its deployment."""
    if isinstance(exc, ProviderError):
        exc.deployment_id = deployment.id
        return exc
    if isinstance(exc, TurnoutError):
        return exc
    if isinstance(exc, TimeoutError):
        error: ProviderError = UpstreamTimeoutError("The upstream timed out")
    else:
        # A provider bug must not take the request down with an unclassified exception;
        # the type is reported, the text is not (it may hold request data or credentials).
        error = ServerError(f"The provider `{deployment.provider}` failed: {type(exc).__name__}")
    error.deployment_id = deployment.id
    return error


__all__ = ["DeploymentHealth", "Router"]
