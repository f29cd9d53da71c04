"""The dispatch seam: the only code that speaks to the state store and emits attempt events.

Four operations carry every attempt, whichever policy asked for it (retries, fallbacks, hedged
races, stream failover):

- `start`: one routing decision and the start of its attempt, in one store call;
- `call`: send the attempt to its provider, answering whole or opening a stream;
- `succeed` / `fail` / `abandon`: settle the attempt, in one store call;
- `pick`: a routing decision alone (`Router.pick`).

So a clean request makes two store calls, each one round trip to a shared store. What is held
against a request's verdict (`turnout.health.poison`) is judged and released here too, and the
router's operator controls (cooldowns, health, reload) reach the store only through here.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Collection, Sequence
from typing import Any, TypeVar

from turnout.clock import Clock
from turnout.config.router import Deployment
from turnout.config.urls import server_of
from turnout.errors import (
    AttemptRecord,
    FailureKind,
    PoisonRequestError,
    ProviderError,
    ServerError,
    StreamInterruptedError,
    TurnoutError,
    UpstreamTimeoutError,
)
from turnout.health.ejection import Admission
from turnout.health.poison import FAILING, Hold, suspect
from turnout.health.record import CooldownReason
from turnout.health.rules import HealthPolicy, Outcome
from turnout.health.snapshot import DeploymentSnapshot
from turnout.observe.bus import Bus
from turnout.observe.events import (
    AttemptFinished,
    AttemptStarted,
    BudgetExhausted,
    Event,
    PoisonRequest,
    RequestFinished,
    RequestStarted,
)
from turnout.pricing.price import price
from turnout.providers.base import Provider
from turnout.router.attempt import Attempt, Call, Reason, Run
from turnout.router.bounds import Bound, LeftForNext, attempt_bound
from turnout.router.decision import Choice, decide
from turnout.router.filters import Rejections
from turnout.router.limits import FIRST_TOKEN, REQUEST
from turnout.router.response_facts import ResponseFacts, answer_facts, input_messages
from turnout.router.runtime import ConfigBundle
from turnout.router.segment import Segment, close_quietly
from turnout.state.base import StateStore
from turnout.wire import ProviderResponse, RateLimitHints, Request, StreamChunk, Usage

T = TypeVar("T")

logger = logging.getLogger("turnout.router")

#: What a non-streamed attempt returns: the answer, who served it, and its cost.
Answer = tuple[ProviderResponse, Deployment, float | None]
#: What one attempt delivers: a whole answer, or a stream opened on its first chunk.
Delivery = Answer | Segment


class Dispatch:
    """Starts, calls and settles attempts over one state store, for the router's lifetime."""

    __slots__ = ("bus", "clock", "store")

    def __init__(self, *, clock: Clock, store: StateStore, bus: Bus) -> None:
        self.clock = clock
        self.store = store
        #: Every event goes through it; `bus.active` says whether anyone listens, and events
        #: are built only then.
        self.bus = bus

    # ---- events --------------------------------------------------------------------------

    def emit_all(self, events: Sequence[Event]) -> None:
        if self.bus.active:
            self.bus.emit_all(events)

    def request_started(self, run: Run) -> None:
        """The request entered the router, before any of its attempts."""
        if self.bus.active:
            request = run.request
            self.bus.emit(
                RequestStarted(
                    request.request_id,
                    request.model,
                    request.principal,
                    run.started,
                    request.stream,
                )
            )

    def request_finished(self, run: Run) -> None:
        """The request ended, after its last attempt settled."""
        if self.bus.active:
            request = run.request
            self.bus.emit(
                RequestFinished(
                    request.request_id, request.model, request.principal, self.clock.now()
                )
            )

    # ---- decisions -----------------------------------------------------------------------

    async def pick(
        self, bundle: ConfigBundle, group: str, request: Request
    ) -> tuple[Deployment | None, Rejections]:
        """A routing decision alone: nothing starts."""
        clock = self.clock
        now, wall = clock.now(), clock.wall()
        states = await self.store.snapshot(bundle.table.ids[group])
        rejections = Rejections()
        deployment = decide(bundle, group, request, states, (), now, wall, None, rejections)
        for deployment_id in rejections.expired:
            self.emit_all(await self.store.expire(deployment_id, now))
        return deployment, rejections

    async def start(
        self,
        run: Run,
        group: str,
        exclude: Collection[str] = (),
        *,
        time_left: float | None = None,
        must_fit: bool = False,
        only: Deployment | None = None,
        request: Request | None = None,
        reason: Reason | None = None,
    ) -> Choice:
        """Choose a deployment of `group` for the run and start an attempt on it.

        `exclude`: deployments not to choose. `time_left`: prefer deployments predicted to
        answer within it; with `must_fit`, start nothing unless one of the group is. `only`:
        no decision, start on this deployment. `request`: what the attempt sends, when not the
        run's own request (a continuation). `reason`: why the attempt starts (default: primary
        for the run's first, a retry after).
        """
        clock = self.clock
        bundle = run.bundle
        table = bundle.table
        now, wall = clock.now(), clock.wall()
        choice = Choice(bundle, group, run.request, exclude, now, wall, time_left, must_fit, only)
        ids = table.ids[group] if only is None else (only.id,)
        policies = table.policies
        chosen, admission, events = await self.store.begin(ids, choice, policies, now, wall)
        if events:
            self.emit_all(events)
        deployment = choice.deployment
        if chosen is None or deployment is None or admission is Admission.REFUSED:
            return choice
        choice.attempt = Attempt(
            run,
            group,
            deployment,
            policies[chosen],
            admission is Admission.PROBE,
            clock.now(),
            request,
            reason,
        )
        return choice

    async def states(self, ids: Sequence[str]) -> Sequence[DeploymentSnapshot]:
        """The deployments' current health, in order."""
        return await self.store.snapshot(ids)

    # ---- calls ---------------------------------------------------------------------------

    async def call(self, attempt: Attempt, call: Call) -> Delivery:
        """Send the attempt to its provider; settle it when it fails, or when it answers whole
        (a stream is settled when it ends)."""
        deployment = attempt.deployment
        request = attempt.request
        bundle = attempt.run.bundle
        bus = self.bus
        if bus.active:
            address, port = server_of(deployment.base_url)
            bus.emit(
                AttemptStarted(
                    request.request_id,
                    attempt.group,
                    deployment.id,
                    attempt.number,
                    attempt.started,
                    attempt.probe,
                    attempt.reason.value,
                    deployment.name,
                    deployment.provider,
                    deployment.model,
                    request.operation.value,
                    call is Call.STREAM,
                    address,
                    port,
                    input_messages(request) if bus.content else None,
                )
            )
        try:
            # In the bundle the attempt's deployment came from, so always there; inside the
            # `try` all the same, so that whatever goes wrong settles the attempt begun.
            provider = bundle.providers[deployment.provider]
            if call is Call.STREAM:
                return await self._open_stream(attempt, provider)
            method = provider.embed if call is Call.EMBED else provider.complete
            bound = attempt_bound(attempt, REQUEST)
            if bound is None:
                result = await method(deployment, request)
            else:
                result = await self._within(bound, attempt.started, method(deployment, request))
        except asyncio.CancelledError:
            # The caller went away, a hedge won, or the request's deadline cancelled it.
            late = self.clock.now() >= attempt.run.deadline
            await self.abandon(attempt, FailureKind.DEADLINE if late else FailureKind.CANCELLED)
            raise
        except LeftForNext as left:
            # Cut to keep time for the next candidate before it had a fair chance: no verdict
            # on the deployment, but the request moves on all the same.
            left.deployment_id = deployment.id
            if left.verdict:
                await self.fail(attempt, left)
            else:
                await self.abandon(attempt, FailureKind.DEADLINE)
            raise
        except Exception as exc:
            error = _classify(exc, deployment)
            await self.fail(attempt, error)
            if error is exc:
                raise
            raise error from exc
        attempt.upstream_request_id = result.upstream_request_id
        facts = answer_facts(result, bus.content) if bus.details else None
        cost = await self.succeed(attempt, result.usage, result.rate_limits, facts=facts)
        took = self.clock.now() - attempt.started
        bundle.limits.observe_whole(deployment.id, took, result.usage.completion_tokens)
        if bundle.hedger.active:
            bundle.hedger.observe(attempt.group, False, took)
        return result, deployment, cost

    async def _open_stream(self, attempt: Attempt, provider: Provider) -> Segment:
        deployment = attempt.deployment
        chunks = provider.stream(deployment, attempt.request)
        bound = attempt_bound(attempt, FIRST_TOKEN)
        try:
            first = await self._within(bound, attempt.started, anext(chunks))
        except StopAsyncIteration:
            raise StreamInterruptedError("The stream ended before its first chunk") from None
        except BaseException:  # includes cancellation: the upstream must be closed either way
            await close_quietly(chunks)
            raise
        ttft = self.clock.now() - attempt.started
        attempt.upstream_request_id = first.upstream_request_id
        bundle = attempt.run.bundle
        bundle.limits.observe_first_token(deployment.id, ttft)
        if attempt.probe:
            await self._probe_answered(attempt, chunks)
        bundle.hedger.observe(attempt.group, True, ttft)
        return Segment(attempt, first, chunks, ttft, rate_limits=first.rate_limits)

    async def _probe_answered(self, attempt: Attempt, chunks: AsyncIterator[StreamChunk]) -> None:
        """A probe's stream has started: its deployment is back in rotation now, not when the
        stream ends; the attempt settles as an ordinary one."""
        try:
            events = await self.store.probe_answered(
                attempt.deployment.id, attempt.policy, self.clock.now()
            )
        except BaseException:
            await close_quietly(chunks)
            raise
        attempt.probe = False
        self.emit_all(events)

    async def _within(self, bound: Bound | None, started: float, work: Awaitable[T]) -> T:
        """Await `work`, within the attempt's bound when it has one."""
        if bound is None:
            return await work
        try:
            async with self.clock.timeout_at(bound.until):
                return await work
        except TimeoutError:
            raise bound.error(self.clock.now() - started) from None

    async def discard(self, segment: Segment) -> None:
        """Give up a stream opened but not wanted (a hedged race's second to deliver, or a
        stream its caller left): what it generated so far was billed by the provider, so it is
        accounted: the upstream's usage when it sent some, else the prompt and one token per
        content chunk received (the rule of a stream that broke)."""
        await close_quietly(segment.chunks)
        usage = segment.usage
        if usage is None:
            usage = Usage(segment.attempt.request.prompt_tokens, segment.content_chunks)
        await self.abandon(segment.attempt, consumed=usage)

    # ---- settling ------------------------------------------------------------------------

    async def succeed(
        self,
        attempt: Attempt,
        usage: Usage,
        rate_limits: RateLimitHints | None = None,
        ttft: float | None = None,
        *,
        facts: ResponseFacts | None = None,
    ) -> float | None:
        """The try answered; returns the answer's cost. `facts`: what the answer said of
        itself, for observers that asked (`Bus.details`)."""
        deployment = attempt.deployment
        cost = price(deployment, usage.prompt_tokens, usage.completion_tokens, usage.cached_tokens)
        now = self.clock.now()
        outcome = Outcome(
            None,
            now - attempt.started,
            ttft=ttft,
            tokens=usage.total_tokens,
            rate_limits=rate_limits,
            probe=attempt.probe,
        )
        await self._settle(attempt, outcome, None, usage, cost, now, facts=facts)
        return cost

    async def fail(self, attempt: Attempt, error: TurnoutError, usage: Usage | None = None) -> None:
        """The try failed with `error` (already classified); `usage`: what it still consumed
        (a stream broken after content was generated)."""
        retry_after = getattr(error, "retry_after", None)
        outcome = Outcome(
            error.kind,
            self.clock.now() - attempt.started,
            retry_after=retry_after,
            tokens=usage.total_tokens if usage is not None else 0,
            probe=attempt.probe,
        )
        cost = None
        if usage is not None:
            cost = price(attempt.deployment, usage.prompt_tokens, usage.completion_tokens)
        holdable = attempt.run.holds is not None and not attempt.probe and suspect(error)
        await self._settle(attempt, outcome, error, usage, cost, holdable=holdable)

    async def abandon(
        self,
        attempt: Attempt,
        why: FailureKind = FailureKind.CANCELLED,
        *,
        consumed: Usage | None = None,
    ) -> None:
        """The try was cut off by the caller (gone, cancelled) or by the request's deadline:
        no verdict on the deployment. `consumed`: what it used before it was cut off, when
        known (a stream that had begun)."""
        outcome = Outcome(why, self.clock.now() - attempt.started, probe=attempt.probe)
        usage = consumed
        if usage is None and attempt.lost_race:
            # The provider bills a cancelled request's prompt: account it, estimated.
            usage = Usage(attempt.request.prompt_tokens, 0)
        cost = None
        if usage is not None:
            cost = price(
                attempt.deployment,
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_tokens,
            )
        await self._settle(attempt, outcome, None, usage, cost)

    async def _settle(
        self,
        attempt: Attempt,
        outcome: Outcome,
        error: TurnoutError | None,
        usage: Usage | None,
        cost: float | None,
        now: float | None = None,
        *,
        holdable: bool = False,
        facts: ResponseFacts | None = None,
    ) -> None:
        if attempt.settled:
            return
        attempt.settled = True
        clock = self.clock
        if now is None:
            now = clock.now()
        deployment_id = attempt.deployment.id
        run = attempt.run
        holds = run.holds if holdable else None
        token, events = await self.store.finish(
            deployment_id, outcome, attempt.policy, now, clock.wall(), holds
        )
        if token > 0:
            held = Hold(deployment_id, token, attempt.policy)
            if run.holds is not None:
                run.holds.append(held)
            else:  # the request's verdict came in meanwhile: no one is left to give it
                events += await self.store.resolve_holds([held], True, clock.now(), clock.wall())
        elif token == FAILING and run.holds is not None:
            # The deployment fails more than poison requests: from here on the request is an
            # ordinary failing one, and what it held counted with this failure.
            run.holds = None
        # An answer is a 200 from every provider; an attempt cut off has no status.
        status = error.status if error is not None else None if outcome.error else 200
        if error is not None:
            status = getattr(error, "upstream_status", None) or status
            upstream_id = getattr(error, "upstream_request_id", None)
            if upstream_id is not None:
                attempt.upstream_request_id = upstream_id
        run.attempts.append(
            AttemptRecord(
                deployment_id=deployment_id,
                model_group=attempt.group,
                started=attempt.started,
                duration=outcome.duration,
                error=outcome.error,
                status=status,
                message=error.message if error is not None else None,
                deployment_name=attempt.deployment.name,
                cost=cost,
                upstream_request_id=attempt.upstream_request_id,
            )
        )
        if self.bus.active:
            address, port = server_of(attempt.deployment.base_url)
            self.bus.emit(
                AttemptFinished(
                    request_id=run.request.request_id,
                    model_group=attempt.group,
                    deployment_id=deployment_id,
                    attempt=attempt.number,
                    at=now,
                    duration=outcome.duration,
                    error=outcome.error,
                    status=status,
                    usage=usage,
                    cost=cost,
                    ttft=outcome.ttft,
                    stream=run.request.stream,
                    principal=run.request.principal,
                    reason=attempt.reason.value,
                    deployment_name=attempt.deployment.name,
                    provider=attempt.deployment.provider,
                    upstream_model=attempt.deployment.model,
                    upstream_request_id=attempt.upstream_request_id,
                    operation=attempt.request.operation.value,
                    server_address=address,
                    server_port=port,
                    **_facts_fields(facts),
                )
            )
            for event in events:
                self.bus.emit(event)

    # ---- budgets -------------------------------------------------------------------------

    def spend_retry(self, run: Run, group: str) -> bool:
        """Take one retry (or fallback hop, or stream continuation) from the retry budget."""
        budget = run.bundle.retry_budget
        if budget is None or budget.try_spend(self.clock.now()):
            return True
        if self.bus.active:
            self.bus.emit(BudgetExhausted(run.request.request_id, group, "retry"))
        return False

    # ---- poison requests -----------------------------------------------------------------

    async def judge(self, run: Run) -> None:
        """Fail the request as the cause (`PoisonRequestError`) once enough deployments failed
        it while answering other requests, each hold still clean."""
        holds = run.holds
        assert holds is not None
        config = run.bundle.table.config.health.poison_requests
        needed = config.min_deployments
        if len({held.deployment_id for held in holds}) < needed:
            return
        clean = await self.store.judge(holds, needed, config.success_window, self.clock.now())
        if not clean:
            return
        run.holds = None
        if self.bus.active:
            request = run.request
            try:
                group = run.bundle.table.resolve(request.model)
            except TurnoutError:
                group = ""
            self.bus.emit(PoisonRequest(request.request_id, group, clean, len(run.attempts)))
        raise PoisonRequestError(list(clean))

    async def release_holds(self, run: Run) -> None:
        """The request ended without being judged the cause: what it held counts."""
        holds, run.holds = run.holds, None
        if holds:
            clock = self.clock
            self.emit_all(await self.store.resolve_holds(holds, True, clock.now(), clock.wall()))

    # ---- operator controls ---------------------------------------------------------------

    async def cool_down(
        self, deployment_id: str, reason: CooldownReason, seconds: float, policy: HealthPolicy
    ) -> None:
        events = await self.store.cool_down(
            deployment_id, reason, seconds, policy, self.clock.now()
        )
        self.emit_all(events)

    async def lift_cooldown(self, deployment_id: str) -> None:
        self.emit_all(await self.store.lift_cooldown(deployment_id))

    async def retain(self, ids: Collection[str]) -> None:
        await self.store.retain(ids)

    def state_status(self) -> dict[str, Any]:
        """Where state lives and whether it is shared now (a Redis store down serves locally)."""
        return self.store.status()

    async def aclose(self) -> None:
        await self.store.aclose()


_NO_FACTS: dict[str, Any] = {}


def _facts_fields(facts: ResponseFacts | None) -> dict[str, Any]:
    """`AttemptFinished`'s fields for what an answer said of itself, when it was read."""
    if facts is None:
        return _NO_FACTS
    return {
        "response_id": facts.id,
        "response_model": facts.model,
        "finish_reasons": facts.finish_reasons,
        "output_messages": facts.output,
    }


def _classify(exc: Exception, deployment: Deployment) -> TurnoutError:
    """Turn whatever a provider raised into a classified error tied to its deployment."""
    if isinstance(exc, ProviderError):
        exc.deployment_id = deployment.id
        exc.deployment_name = deployment.name
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
    error.deployment_name = deployment.name
    return error
