"""Carrying out one request: pick, call, retry, hedge, fall back, all under one deadline.

For each request: resolve the model name to a group; pre-filter the group's deployments
(`turnout.router.filters`), preferring those whose predicted latency fits the time left; let the
strategy pick one; call its provider. If the group hedges and the attempt is slow, a duplicate
races it on another deployment (`turnout.router.hedging`). A retryable failure goes to another
healthy deployment of the group at once, or, when none is left, back to one already tried after
an exponential backoff with full jitter that honours Retry-After. When the group's retries are
spent, the fallback list for the kind of failure is tried, group by group, each with its own
retries, up to a bounded depth. Retries and fallback hops draw on a router-wide budget, and none
starts that cannot finish before the deadline. When everything fails the caller gets the most
informative underlying error with a summary of every attempt. A request that fails with a
server error on several deployments answering other requests is failed at once as the cause,
and counts against none of them (`turnout.router.poison`).
"""

from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Awaitable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from turnout.clock import Clock
from turnout.config.router import Deployment
from turnout.errors import (
    DeadlineExceededError,
    FailureKind,
    PoisonRequestError,
    ProviderError,
    ServerError,
    StreamInterruptedError,
    TurnoutError,
    UpstreamTimeoutError,
    fallback_kind,
    most_informative,
)
from turnout.health.breaker import Admission
from turnout.health.record import DeploymentState
from turnout.observe.bus import Bus
from turnout.observe.events import (
    AttemptStarted,
    BudgetExhausted,
    Event,
    FallbackTaken,
    PoisonRequest,
    RequestFinished,
    RequestStarted,
    RetryScheduled,
)
from turnout.providers.base import Provider
from turnout.router.attempt import Attempt, Call, Run
from turnout.router.backoff import backoff_delay
from turnout.router.budget import WindowBudget
from turnout.router.failover import continue_stream
from turnout.router.filters import Rejections, eligible
from turnout.router.hedging import Hedger, hedged
from turnout.router.poison import answering
from turnout.router.strategies import Strategy
from turnout.router.streaming import Stream, close_quietly
from turnout.router.table import ModelTable
from turnout.state.base import StateStore
from turnout.wire import ProviderResponse, Request

T = TypeVar("T")

#: Failures that say this deployment cannot serve the request: retry elsewhere, never here.
_NOT_HERE_AGAIN = frozenset(
    {FailureKind.AUTHENTICATION, FailureKind.PERMISSION, FailureKind.NOT_FOUND}
)
_NOTHING: frozenset[str] = frozenset()

#: What a non-streamed attempt returns: the answer, who served it, and its cost.
Answer = tuple[ProviderResponse, Deployment, float | None]
Outcome = Stream | Answer


@dataclass(frozen=True, slots=True)
class ConfigBundle:
    """Everything a request takes from one configuration, built whole per config.

    A reload swaps the router's bundle in one assignment; each request keeps the bundle it
    started with to its end, so a reload never takes away a provider that a request between
    retries (or a stream failing over) still needs, and every attempt it begins is settled.
    """

    table: ModelTable
    #: Provider name to the object that calls it: every provider the table's deployments use.
    providers: Mapping[str, Provider]
    strategy: Strategy
    #: Shared by the bundles of successive configs while the budget's settings do not change.
    retry_budget: WindowBudget | None
    #: Shared likewise while the hedging settings do not change.
    hedger: Hedger


def retry_budget_for(table: ModelTable) -> WindowBudget | None:
    """The router-wide retry budget the table's config asks for (None: unlimited)."""
    budget = table.config.retries.budget
    if not budget.enabled:
        return None
    return WindowBudget(budget.ratio, budget.window, budget.min_per_second)


class Executor:
    """The request machinery behind `turnout.Router`: what lives as long as the router (clock,
    chance, state, the event bus). What a config decides comes with each request, in the
    `ConfigBundle` it started with."""

    def __init__(
        self,
        *,
        clock: Clock,
        rng: random.Random,
        store: StateStore,
        bus: Bus,
    ) -> None:
        self.clock = clock
        self.rng = rng
        self.store = store
        self.bus = bus
        #: Continues a stream that broke after content was sent (see `turnout.router.failover`).
        self.failover = functools.partial(continue_stream, self)

    # ---- one request ---------------------------------------------------------------------

    async def run(self, bundle: ConfigBundle, request: Request, call: Call) -> tuple[Run, Outcome]:
        clock = self.clock
        started = clock.now()
        table = bundle.table
        config = table.config
        limit = request.timeout if request.timeout is not None else config.timeout
        run = Run(
            request,
            started,
            started + limit,
            bundle,
            hold_failures=config.health.poison_requests.enabled,
        )
        if self.bus.active:
            self.bus.emit(
                RequestStarted(
                    request.request_id, request.model, request.principal, started, request.stream
                )
            )
        if bundle.retry_budget is not None:
            bundle.retry_budget.record_request(started)
        #: Whether a stream took the request over (it then reports the request's end itself).
        streaming = False
        try:
            group = table.resolve(request.model)
            run.visited.add(group)
            hedger = bundle.hedger
            if hedger.active:
                hedger.record_request(group, started)
            async with clock.timeout_at(run.deadline):
                outcome = await self._with_fallbacks(table, group, run, call)
                if isinstance(outcome, Stream):
                    outcome.carry_request()
                    streaming = True
                return run, outcome
        except TimeoutError:
            error: TurnoutError = DeadlineExceededError(
                f"The request did not finish within its deadline of {limit:g}s"
            )
        except PoisonRequestError as poison:
            error = poison
        except TurnoutError as failure:
            error = most_informative(run.errors) if run.errors else failure
        finally:
            if run.holds:
                # Not the request's fault after all (or never known): the held failures count.
                await self._count_holds(run)
            run.holds = None
            if not streaming and self.bus.active:
                self.bus.emit(
                    RequestFinished(
                        request.request_id, request.model, request.principal, clock.now()
                    )
                )
        error.attempts = tuple(run.attempts)
        raise error

    async def _with_fallbacks(self, table: ModelTable, group: str, run: Run, call: Call) -> Outcome:
        try:
            return await self._with_retries(table, group, run, call)
        except PoisonRequestError:
            raise
        except TurnoutError as error:
            run.errors.append(error)
            kind = fallback_kind(error)
            if kind is None:
                raise
            max_depth = table.config.fallbacks.max_depth
            for target in table.fallbacks(kind, group):
                if target in run.visited:
                    continue
                if run.hops >= max_depth or not self.spend_retry(run, group):
                    break
                if not await self._can_finish(table, target, run):
                    continue
                run.hops += 1
                run.visited.add(target)
                if self.bus.active:
                    self.bus.emit(
                        FallbackTaken(run.request.request_id, group, target, kind, error.kind),
                    )
                try:
                    return await self._with_fallbacks(table, target, run, call)
                except PoisonRequestError:
                    raise
                except TurnoutError:
                    continue
            raise

    async def _with_retries(self, table: ModelTable, group: str, run: Run, call: Call) -> Outcome:
        clock = self.clock
        request = run.request
        tried: set[str] = set()
        banned: set[str] = set()
        #: Where the request failed while others were served, skipped while its verdict is open.
        spared: set[str] = set()
        retries = 0
        last_error: ProviderError | None = None
        while True:
            now = clock.now()
            wall = clock.wall()
            avoid = banned | spared if spared and run.holds is not None else banned
            exclude = (tried | avoid) if (tried or avoid) else _NOTHING
            deployment, rejections = await self.decide(
                run.bundle, group, request, exclude, now, wall, run.deadline - now
            )
            if deployment is None:
                if last_error is not None:
                    raise last_error
                raise rejections.error(group, request, wall)
            attempt = await self.begin(table, group, run, deployment, now, wall)
            if attempt is None:
                # Its last probe slot went to a concurrent request: pick again without it.
                tried.add(deployment.id)
                continue
            try:
                hedger = run.bundle.hedger
                if (
                    retries == 0
                    and hedger.active
                    and hedger.delay(group, request.stream) is not None
                ):
                    return await hedged(self, table, group, run, call, attempt, exclude)
                return await self.call_deployment(attempt, call)
            except ProviderError as error:
                last_error = error
                if run.holds:
                    await self._judge(table, run)
                    if _fallback_left(table, group, run, error):
                        # Where the request failed while others were served, another try would
                        # most likely fail alike: with a fallback left, that is the next try.
                        spared.update(held.deployment_id for held in run.holds)
                if not error.retryable or retries >= table.config.retries.num_retries:
                    raise
                if not self.spend_retry(run, group):
                    raise
                retries += 1
                for failed in {deployment.id, error.deployment_id or deployment.id}:
                    (banned if error.kind in _NOT_HERE_AGAIN else tried).add(failed)
                avoid = banned | spared if spared and run.holds is not None else banned
                await self._before_retry(table, group, run, tried, avoid, error, retries)

    async def begin(
        self,
        table: ModelTable,
        group: str,
        run: Run,
        deployment: Deployment,
        now: float,
        wall: float,
    ) -> Attempt | None:
        """Count the attempt in its deployment's state; None when the breaker refused it."""
        policy = table.policies[deployment.id]
        admission, events = await self.store.begin(deployment.id, policy, now, wall)
        if events:
            self.emit_all(events)
        if admission is Admission.REFUSED:
            return None
        return Attempt(
            run=run,
            group=group,
            deployment=deployment,
            policy=policy,
            probe=admission is Admission.PROBE,
            clock=self.clock,
            store=self.store,
            bus=self.bus,
        )

    # ---- poison requests -----------------------------------------------------------------

    async def _judge(self, table: ModelTable, run: Run) -> None:
        """Fail the request as the cause once enough deployments failed it while answering
        other requests (or idle, with one at least answering), each hold still clean: no other
        request's failure made it count meanwhile."""
        holds = run.holds
        assert holds is not None
        needed = table.config.health.poison_requests.min_deployments
        if len({held.deployment_id for held in holds}) < needed:
            return
        clean: list[str] = []
        for held in holds:
            if held.deployment_id not in clean and await self.store.still_held(
                held.deployment_id, held.token
            ):
                clean.append(held.deployment_id)
        if len(clean) < needed:
            return
        window = table.config.health.poison_requests.success_window
        now = self.clock.now()
        states = await self.store.snapshot(clean)
        if not any(answering(state, window, now) for state in states):
            return  # nobody has seen these deployments serve lately: no evidence either way
        run.holds = None
        await self.store.drop_holds([(held.deployment_id, held.token) for held in holds])
        if self.bus.active:
            request = run.request
            try:
                group = table.resolve(request.model)
            except TurnoutError:
                group = ""
            self.bus.emit(
                PoisonRequest(request.request_id, group, tuple(clean), len(run.attempts)),
            )
        raise PoisonRequestError(clean)

    async def _count_holds(self, run: Run) -> None:
        holds, run.holds = run.holds or [], []
        clock = self.clock
        for held in holds:
            self.emit_all(
                await self.store.resolve_hold(
                    held.deployment_id, held.token, True, held.policy, clock.now(), clock.wall()
                )
            )

    # ---- decisions -----------------------------------------------------------------------

    async def decide(
        self,
        bundle: ConfigBundle,
        group: str,
        request: Request,
        exclude: Collection[str],
        now: float,
        wall: float,
        time_left: float | None = None,
    ) -> tuple[Deployment | None, Rejections]:
        """One routing decision: pre-filter the group, prefer deployments that can answer in
        the time left, and let the strategy pick among them."""
        table = bundle.table
        states = await self.store.snapshot(table.ids[group])
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
        if time_left is not None and len(candidates) > 1:
            candidates, candidate_states = _fitting(candidates, candidate_states, time_left)
        if len(candidates) == 1:
            return candidates[0], rejections
        index = bundle.strategy.choose(group, candidates, candidate_states, request, wall)
        return candidates[index], rejections

    async def _can_finish(self, table: ModelTable, group: str, run: Run) -> bool:
        """Whether some deployment of `group` is predicted to answer before the deadline."""
        time_left = run.deadline - self.clock.now()
        states = await self.store.snapshot(table.ids[group])
        return time_left > 0 and any(s.latency is None or s.latency <= time_left for s in states)

    def spend_retry(self, run: Run, group: str) -> bool:
        budget = run.bundle.retry_budget
        if budget is None or budget.try_spend(self.clock.now()):
            return True
        if self.bus.active:
            self.bus.emit(BudgetExhausted(run.request.request_id, group, "retry"))
        return False

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
        least Retry-After, and until a cooling deployment returns) before trying one again.
        A retry that cannot finish before the deadline is not started."""
        clock = self.clock
        config = table.config
        ids = table.ids[group]
        deployments = table.groups[group]
        now, wall = clock.now(), clock.wall()
        states = await self.store.snapshot(ids)
        others, other_states = eligible(
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
            delay = backoff_delay(retries - 1, config.retries, self.rng, error.retry_after)
            rejections = Rejections()
            again, other_states = eligible(
                deployments, states, run.request, config.breaker, now, wall, banned, rejections
            )
            if not again:
                # Everything is cooling down or open. Waiting for it is worth it only when the
                # provider said when to come back (a rate limit); a failing one fails fast.
                wait = rejections.wait_hint()
                if (
                    error.kind is not FailureKind.RATE_LIMITED
                    or wait is None
                    or wait > config.retries.max_retry_after
                ):
                    raise error
                delay = max(delay, wait)
                other_states = list(states)  # the ones coming back after the wait
        time_left = run.deadline - now - delay
        if time_left <= 0 or not any(
            s.latency is None or s.latency <= time_left for s in other_states
        ):
            raise error
        if self.bus.active:
            self.bus.emit(
                RetryScheduled(
                    run.request.request_id, group, error.deployment_id or "", delay, error.kind
                ),
            )
        if delay > 0:
            await clock.sleep(delay)

    # ---- attempts ------------------------------------------------------------------------

    async def call_deployment(self, attempt: Attempt, call: Call) -> Outcome:
        deployment = attempt.deployment
        request = attempt.request
        bundle = attempt.run.bundle
        if self.bus.active:
            self.bus.emit(
                AttemptStarted(
                    request.request_id,
                    attempt.group,
                    deployment.id,
                    attempt.number,
                    attempt.started,
                    attempt.probe,
                ),
            )
        try:
            # In the bundle the attempt's deployment came from, so always there; inside the
            # `try` all the same, so that whatever goes wrong settles the attempt begun.
            provider = bundle.providers[deployment.provider]
            if call is Call.STREAM:
                return await self._open_stream(attempt, provider)
            method = provider.embed if call is Call.EMBED else provider.complete
            limit = deployment.timeouts.request
            if limit is None:
                result = await method(deployment, request)
            else:
                result = await self._within(limit, attempt.started, method(deployment, request))
        except asyncio.CancelledError:
            # The caller went away, a hedge won, or the request's deadline cancelled it.
            late = self.clock.now() >= attempt.run.deadline
            await attempt.abandon(FailureKind.DEADLINE if late else FailureKind.CANCELLED)
            raise
        except Exception as exc:
            error = _classify(exc, deployment)
            await attempt.fail(error)
            if error is exc:
                raise
            raise error from exc
        cost = await attempt.succeed(result.usage, result.rate_limits)
        if bundle.hedger.active:
            bundle.hedger.observe(attempt.group, False, self.clock.now() - attempt.started)
        return result, deployment, cost

    async def _open_stream(self, attempt: Attempt, provider: Provider) -> Stream:
        deployment = attempt.deployment
        chunks = provider.stream(deployment, attempt.request)
        limit = deployment.timeouts.first_token or deployment.timeouts.request
        try:
            first = await self._within(limit, attempt.started, anext(chunks))
        except StopAsyncIteration:
            raise StreamInterruptedError("The stream ended before its first chunk") from None
        except BaseException:  # includes cancellation: the upstream must be closed either way
            await close_quietly(chunks)
            raise
        ttft = self.clock.now() - attempt.started
        bundle = attempt.run.bundle
        bundle.hedger.observe(attempt.group, True, ttft)
        failover = self.failover if bundle.table.config.stream_failover else None
        return Stream(
            attempt=attempt,
            first=first,
            chunks=chunks,
            ttft=ttft,
            clock=self.clock,
            failover=failover,
        )

    async def _within(self, limit: float | None, started: float, work: Awaitable[T]) -> T:
        """Await `work`, bounded by `limit` seconds from `started` when a limit is set."""
        if limit is None:
            return await work
        try:
            async with self.clock.timeout_at(started + limit):
                return await work
        except TimeoutError:
            raise UpstreamTimeoutError(f"No answer within {limit:g}s") from None

    # ---- events --------------------------------------------------------------------------

    async def _lift_expired(self, deployment_ids: list[str]) -> None:
        for deployment_id in deployment_ids:
            self.emit_all(await self.store.lift_cooldown(deployment_id))

    def emit_all(self, events: Sequence[Event]) -> None:
        self.bus.emit_all(events)


def _fitting(
    candidates: list[Deployment], states: list[DeploymentState], time_left: float
) -> tuple[list[Deployment], list[DeploymentState]]:
    """Candidates predicted to answer within `time_left`, when some are and some are not."""
    fits = [s.latency is None or s.latency <= time_left for s in states]
    if all(fits) or not any(fits):
        return candidates, states
    return (
        [d for d, ok in zip(candidates, fits, strict=True) if ok],
        [s for s, ok in zip(states, fits, strict=True) if ok],
    )


def _fallback_left(table: ModelTable, group: str, run: Run, error: TurnoutError) -> bool:
    """Whether the failure's fallback list still holds a group this request has not visited."""
    kind = fallback_kind(error)
    return kind is not None and any(
        target not in run.visited for target in table.fallbacks(kind, group)
    )


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
