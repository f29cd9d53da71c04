"""A provider that answers from a script instead of the network.

`SimulatedProvider` speaks the `turnout.providers.base.Provider` protocol and answers in OpenAI's
exact shapes, but every latency, failure and quota is chosen by a `Behaviour`: a frozen struct
that a test builds in Python and the gateway's demo mode loads from YAML. It exists so that
routing, health, fallback, deadlines and stream failover can be exercised without sockets:

- all waiting goes through the injected clock, so on a `ManualClock` a 30-second timeout takes
  no real time;
- all chance comes from one `random.Random(seed)`, and every call draws the same four numbers
  whatever its behaviour says, so the outcome of the n-th call depends only on the seed, n and
  that call's behaviour: changing one deployment's latency does not reshuffle another's errors;
- every call is logged per deployment (`calls`), with the outcome decided for it.

A call goes through three stages. Admission checks answer at once, before any waiting, as a
real upstream's front door would: the request's parameters, refused as OpenAI refuses them
(400, `turnout.providers.simulated_params`), the per-minute request quota (429), the context
window and the blocked phrase (400). Then the call waits (``latency``, or ``ttft`` for a stream,
plus jitter and the occasional tail) and either fails with an error drawn from ``errors`` or
answers; a ``timeout`` error waits ``timeout_after`` instead. Finally a stream may break after
it started, as ``stream_failure`` says.

What the answer says is decided apart from all that, from the request alone, as an OpenAI
model would answer it (`turnout.providers.simulated_answer`): tool calls, JSON built from the
caller's schema (`turnout.providers.simulated_schema`), ``n`` distinct choices, ``stop``,
``logprobs``, max tokens; embeddings honour ``dimensions`` (`turnout.providers.simulated_embed`).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Literal, NoReturn

from turnout.clock import Clock, SystemClock
from turnout.config.router import Deployment
from turnout.config.simulated import ERROR_KINDS, Behaviour, ErrorKind, StreamFailure
from turnout.errors import (
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    ContextWindowExceededError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UpstreamConnectionError,
    UpstreamNotFoundError,
    UpstreamTimeoutError,
)
from turnout.providers.simulated_answer import Answer
from turnout.providers.simulated_embed import (
    check_encoding,
    dimensions_of,
    embedding_inputs,
    embeddings_body,
)
from turnout.providers.simulated_params import check_chat, check_completion
from turnout.providers.simulated_prompt import PROMPT_FIELDS, prompt_text
from turnout.wire import Operation, ProviderResponse, RateLimitHints, Request, StreamChunk, Usage

__all__ = ["Behaviour", "Call", "SimulatedProvider"]

#: How long a stalled stream sleeps before giving up: far beyond any sane idle timeout.
STALL_SECONDS = 86_400.0

#: The behaviour of a deployment nobody configured.
HEALTHY = Behaviour()

#: What a logged call ended in: "ok", an error kind, an admission refusal, or a stream failure.
Outcome = (
    ErrorKind
    | Literal["ok", "bad_request", "context_window", "content_policy", "cut", "stall", "no_finish"]
)


@dataclass(frozen=True, slots=True)
class Call:
    """One call a deployment received, with the outcome chosen for it when it arrived."""

    operation: Operation
    stream: bool
    #: ``clock.now()`` when the call arrived.
    at: float
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class _Plan:
    """Everything decided about one call when it arrives, before any waiting."""

    number: int
    behaviour: Behaviour
    #: Seconds of jitter and tail added to the call's wait.
    extra_delay: float
    error: ErrorKind | None
    rate_limits: RateLimitHints | None


class SimulatedProvider:
    """A deterministic, configurable stand-in for an upstream provider; never touches the network.

    A call's behaviour is ``behaviours[deployment.id]``, else ``behaviours[deployment.model]``,
    else ``default``; `set_behaviour` changes it while running (to make a deployment flap).
    """

    def __init__(
        self,
        clock: Clock | None = None,
        *,
        seed: int = 0,
        behaviours: Mapping[str, Behaviour] | None = None,
        default: Behaviour = HEALTHY,
    ) -> None:
        self._clock: Clock = clock if clock is not None else SystemClock()
        self._random = random.Random(seed)
        self._behaviours: dict[str, Behaviour] = dict(behaviours or {})
        self._default = default
        self._calls: dict[str, list[Call]] = {}
        #: Per deployment id: (wall-clock minute, requests admitted in it).
        self._minutes: dict[str, tuple[int, int]] = {}
        self._count = 0

    def set_behaviour(self, key: str, behaviour: Behaviour | None) -> None:
        """Set the behaviour of a deployment id or upstream model name (None: remove it)."""
        if behaviour is None:
            self._behaviours.pop(key, None)
        else:
            self._behaviours[key] = behaviour

    def behaviour_for(self, deployment: Deployment) -> Behaviour:
        for key in (deployment.id, deployment.model):
            if key in self._behaviours:
                return self._behaviours[key]
        return self._default

    def calls(self, deployment_id: str) -> list[Call]:
        """The calls a deployment received, oldest first (a copy)."""
        return list(self._calls.get(deployment_id, ()))

    def reset_calls(self) -> None:
        self._calls.clear()

    async def complete(self, deployment: Deployment, request: Request) -> ProviderResponse:
        _expect(request, Operation.CHAT, Operation.COMPLETION)
        plan = self._begin(deployment, request, stream=False)
        await self._settle(plan, deployment, plan.behaviour.latency)
        answer = self._answer(plan, deployment, request)
        return ProviderResponse(
            body=answer.body(), usage=answer.usage, rate_limits=plan.rate_limits
        )

    async def stream(self, deployment: Deployment, request: Request) -> AsyncIterator[StreamChunk]:
        _expect(request, Operation.CHAT, Operation.COMPLETION)
        plan = self._begin(deployment, request, stream=True)
        behaviour = plan.behaviour
        ttft = behaviour.ttft if behaviour.ttft is not None else behaviour.latency
        await self._settle(plan, deployment, ttft)
        answer = self._answer(plan, deployment, request)
        failure = behaviour.stream_failure
        breaks = failure in ("cut", "stall")
        first, *others = answer.openings()
        yield StreamChunk(first, rate_limits=plan.rate_limits)
        for opening in others:
            yield StreamChunk(opening)
        contents = answer.contents()
        for sent, content in enumerate(contents):
            if breaks and sent == behaviour.fail_after_chunks:
                await self._interrupt(failure, deployment)
            await self._clock.sleep(behaviour.chunk_interval)
            last = failure == "no_finish" and sent == len(contents) - 1
            yield StreamChunk(content, usage=answer.usage if last else None)
        if breaks:
            await self._interrupt(failure, deployment)
        if failure == "no_finish":
            return
        finishes = answer.finishes()
        for number, (finish, reason) in enumerate(finishes, 1):
            # Without a usage chunk, the last finish carries the usage to the router.
            carries = number == len(finishes) and not answer.include_usage
            yield StreamChunk(finish, usage=answer.usage if carries else None, finish_reason=reason)
        if answer.include_usage:
            yield StreamChunk(answer.usage_chunk(), usage=answer.usage)

    async def embed(self, deployment: Deployment, request: Request) -> ProviderResponse:
        _expect(request, Operation.EMBEDDING)
        plan = self._begin(deployment, request, stream=False)
        await self._settle(plan, deployment, plan.behaviour.latency)
        body = request.body
        inputs = embedding_inputs(body)
        dimensions = dimensions_of(body, plan.behaviour.embedding_dimensions)
        usage = Usage(prompt_tokens=request.prompt_tokens)
        shaped = embeddings_body(body, inputs, dimensions, deployment, usage)
        return ProviderResponse(body=shaped, usage=usage, rate_limits=plan.rate_limits)

    def _answer(self, plan: _Plan, deployment: Deployment, request: Request) -> Answer:
        created = int(self._clock.wall())
        return Answer(plan.number, plan.behaviour, deployment, request, created)

    def _begin(self, deployment: Deployment, request: Request, *, stream: bool) -> _Plan:
        """Decide the call's fate and log it; raise at once if it is refused at the door."""
        behaviour = self.behaviour_for(deployment)
        # Always the same four draws, so the n-th call's fate never depends on earlier behaviours.
        fail_roll, kind_roll, jitter_roll, tail_roll = (self._random.random() for _ in range(4))
        self._count += 1
        log = self._calls.setdefault(deployment.id, [])
        at = self._clock.now()
        rate_limits, refusal = self._admit(deployment, request, behaviour)
        if refusal is not None:
            outcome, error = refusal
            log.append(Call(request.operation, stream, at, outcome))
            raise error
        error_kind = _pick_error(behaviour, fail_roll, kind_roll)
        if error_kind is not None:
            outcome = error_kind
        elif stream and behaviour.stream_failure != "none":
            outcome = behaviour.stream_failure
        else:
            outcome = "ok"
        log.append(Call(request.operation, stream, at, outcome))
        tail = behaviour.tail_latency if tail_roll < behaviour.tail_probability else 0.0
        return _Plan(
            number=self._count,
            behaviour=behaviour,
            extra_delay=jitter_roll * behaviour.jitter + tail,
            error=error_kind,
            rate_limits=rate_limits,
        )

    def _admit(
        self, deployment: Deployment, request: Request, behaviour: Behaviour
    ) -> tuple[RateLimitHints | None, tuple[Outcome, ProviderError] | None]:
        """The front door: the request's parameters, the request quota, the context window,
        then the content filter."""
        try:
            _check_parameters(request, behaviour)
        except BadRequestError as invalid:
            return None, ("bad_request", _blame(invalid, deployment))
        hints = None
        if behaviour.rpm_limit is not None:
            limit = behaviour.rpm_limit
            wall = self._clock.wall()
            minute = int(wall // 60)
            reset = (minute + 1) * 60 - wall
            window, used = self._minutes.get(deployment.id, (minute, 0))
            used = used if window == minute else 0
            if used >= limit:
                message = f"Rate limit reached: {limit} requests per minute"
                error = RateLimitError(message, status=429, retry_after=reset)
                return None, ("rate_limited", _blame(error, deployment))
            self._minutes[deployment.id] = (minute, used + 1)
            hints = RateLimitHints(
                remaining_requests=limit - used - 1, limit_requests=limit, reset_requests=reset
            )
        window_size = behaviour.context_window
        if window_size is not None and request.prompt_tokens > window_size:
            message = (
                f"This model's maximum context length is {window_size} tokens; "
                f"the prompt has {request.prompt_tokens}"
            )
            param = PROMPT_FIELDS[request.operation]
            overflow = ContextWindowExceededError(message, status=400, param=param)
            return hints, ("context_window", _blame(overflow, deployment))
        phrase = behaviour.blocked_phrase
        if phrase is not None and phrase.casefold() in prompt_text(request).casefold():
            refused = ContentPolicyError("The prompt was refused by the content filter", status=400)
            return hints, ("content_policy", _blame(refused, deployment))
        return hints, None

    async def _settle(self, plan: _Plan, deployment: Deployment, wait: float) -> None:
        """Wait as long as the call takes, then raise the error chosen for it, if any."""
        if plan.error == "timeout":
            await self._clock.sleep(plan.behaviour.timeout_after)
        else:
            await self._clock.sleep(wait + plan.extra_delay)
        if plan.error is not None:
            raise _blame(_make_error(plan.error, plan.behaviour), deployment)

    async def _interrupt(self, failure: StreamFailure, deployment: Deployment) -> NoReturn:
        if failure == "stall":
            await self._clock.sleep(STALL_SECONDS)
        message = "The simulated stream stalled" if failure == "stall" else "Simulated stream cut"
        raise _blame(StreamInterruptedError(message), deployment)


def _pick_error(behaviour: Behaviour, fail_roll: float, kind_roll: float) -> ErrorKind | None:
    if fail_roll >= behaviour.error_rate:
        return None
    weighted = [(kind, behaviour.errors.get(kind, 0.0)) for kind in ERROR_KINDS]
    weighted = [(kind, weight) for kind, weight in weighted if weight > 0]
    if not weighted:
        return None
    target = kind_roll * sum(weight for _, weight in weighted)
    for kind, weight in weighted:
        target -= weight
        if target < 0:
            return kind
    return weighted[-1][0]


def _make_error(kind: ErrorKind, behaviour: Behaviour) -> ProviderError:
    match kind:
        case "rate_limited":
            return RateLimitError(
                "Simulated rate limit", status=429, retry_after=behaviour.retry_after
            )
        case "server_error":
            return ServerError("Simulated server error", status=500)
        case "overloaded":
            return ServerError("Simulated overload", status=529)
        case "timeout":
            return UpstreamTimeoutError(
                f"Simulated upstream timeout after {behaviour.timeout_after:g}s"
            )
        case "connection":
            return UpstreamConnectionError("Simulated connection failure")
        case "authentication":
            return AuthenticationError("Simulated invalid API key", status=401)
        case "not_found":
            return UpstreamNotFoundError("Simulated unknown model", status=404)


def _blame(error: ProviderError, deployment: Deployment) -> ProviderError:
    error.deployment_id = deployment.id
    error.deployment_name = deployment.name
    return error


def _expect(request: Request, *operations: Operation) -> None:
    if request.operation not in operations:
        raise BadRequestError(f"this method does not serve {request.operation} requests")


def _check_parameters(request: Request, behaviour: Behaviour) -> None:
    """Refuse, as OpenAI would, a request whose parameters OpenAI's API does not accept."""
    body: Mapping[str, object] = request.body
    match request.operation:
        case Operation.CHAT:
            check_chat(body)
        case Operation.COMPLETION:
            check_completion(body)
        case Operation.EMBEDDING:
            embedding_inputs(body)
            dimensions_of(body, behaviour.embedding_dimensions)
            check_encoding(body)
