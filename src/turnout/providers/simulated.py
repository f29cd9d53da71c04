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
real upstream's front door would: the per-minute request quota (429), the context window and
the blocked phrase (400). Then the call waits (``latency``, or ``ttft`` for a stream, plus jitter
and the occasional tail) and either fails with an error drawn from ``errors`` or answers; a
``timeout`` error waits ``timeout_after`` instead. Finally a stream may break after it started,
as ``stream_failure`` says.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NoReturn

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
from turnout.wire import Operation, ProviderResponse, RateLimitHints, Request, StreamChunk, Usage

__all__ = ["Behaviour", "Call", "SimulatedProvider"]

#: How long a stalled stream sleeps before giving up: far beyond any sane idle timeout.
STALL_SECONDS = 86_400.0

#: Where each operation's prompt lives in the request body.
_PROMPT_FIELDS = {
    Operation.CHAT: "messages",
    Operation.COMPLETION: "prompt",
    Operation.EMBEDDING: "input",
}

#: Words the simulated answers are made of, one per output token.
_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")


#: The behaviour of a deployment nobody configured.
HEALTHY = Behaviour()

#: What a logged call ended in: "ok", an error kind, an admission refusal, or a stream failure.
Outcome = ErrorKind | Literal["ok", "context_window", "content_policy", "cut", "stall", "no_finish"]


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
        answer = _Answer(plan, deployment, request, created=int(self._clock.wall()))
        return ProviderResponse(
            body=answer.body(), usage=answer.usage, rate_limits=plan.rate_limits
        )

    async def stream(self, deployment: Deployment, request: Request) -> AsyncIterator[StreamChunk]:
        _expect(request, Operation.CHAT, Operation.COMPLETION)
        plan = self._begin(deployment, request, stream=True)
        behaviour = plan.behaviour
        ttft = behaviour.ttft if behaviour.ttft is not None else behaviour.latency
        await self._settle(plan, deployment, ttft)
        answer = _Answer(plan, deployment, request, created=int(self._clock.wall()))
        failure = behaviour.stream_failure
        breaks = failure in ("cut", "stall")
        yield StreamChunk(answer.chunk(opening=True), rate_limits=plan.rate_limits)
        for sent, token in enumerate(answer.tokens):
            if breaks and sent == behaviour.fail_after_chunks:
                await self._interrupt(failure, deployment)
            await self._clock.sleep(behaviour.chunk_interval)
            last = failure == "no_finish" and sent == len(answer.tokens) - 1
            yield StreamChunk(answer.chunk(token), usage=answer.usage if last else None)
        if breaks:
            await self._interrupt(failure, deployment)
        if failure == "no_finish":
            return
        finish = answer.chunk(finish_reason=answer.finish_reason)
        if not answer.include_usage:
            yield StreamChunk(finish, usage=answer.usage, finish_reason=answer.finish_reason)
            return
        yield StreamChunk(finish, finish_reason=answer.finish_reason)
        yield StreamChunk(answer.usage_chunk(), usage=answer.usage)

    async def embed(self, deployment: Deployment, request: Request) -> ProviderResponse:
        _expect(request, Operation.EMBEDDING)
        inputs = _embedding_inputs(request.body)
        plan = self._begin(deployment, request, stream=False)
        await self._settle(plan, deployment, plan.behaviour.latency)
        dimensions = plan.behaviour.embedding_dimensions
        usage = Usage(prompt_tokens=request.prompt_tokens)
        body = {
            "object": "list",
            "data": [
                {"object": "embedding", "index": index, "embedding": _embedding(text, dimensions)}
                for index, text in enumerate(inputs)
            ],
            "model": deployment.model,
            "usage": {"prompt_tokens": usage.prompt_tokens, "total_tokens": usage.total_tokens},
        }
        return ProviderResponse(body=body, usage=usage, rate_limits=plan.rate_limits)

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
        """The front door: the request quota, then the context window, then the content filter."""
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
            param = _PROMPT_FIELDS[request.operation]
            overflow = ContextWindowExceededError(message, status=400, param=param)
            return hints, ("context_window", _blame(overflow, deployment))
        phrase = behaviour.blocked_phrase
        if phrase is not None and phrase.casefold() in _prompt_text(request).casefold():
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


class _Answer:
    """One successful answer's text and its OpenAI shapes, whole or as stream chunks."""

    def __init__(self, plan: _Plan, deployment: Deployment, request: Request, created: int):
        self.chat = request.operation is Operation.CHAT
        self.id = f"{'chatcmpl' if self.chat else 'cmpl'}-sim-{plan.number}"
        self.created = created
        self.model = deployment.model
        wanted = plan.behaviour.output_tokens
        cap = request.max_completion_tokens
        count = wanted if cap is None else max(0, min(wanted, cap))
        self.finish_reason = "length" if count < wanted else "stop"
        self.tokens = _tokens(deployment.model, count)
        wanted_choices = request.body.get("n")
        #: Choices asked for (``n``), each the same text: a stream carries them all in each chunk.
        self.choices = (
            min(wanted_choices, 128)
            if isinstance(wanted_choices, int)
            and not isinstance(wanted_choices, bool)
            and wanted_choices > 1
            else 1
        )
        self.usage = Usage(
            prompt_tokens=request.prompt_tokens, completion_tokens=count * self.choices
        )
        options = request.body.get("stream_options")
        self.include_usage = isinstance(options, dict) and options.get("include_usage") is True

    def body(self) -> dict[str, Any]:
        text = "".join(self.tokens)
        choice: dict[str, Any]
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}}
        else:
            choice = {"index": 0, "text": text}
        choice["logprobs"] = None
        choice["finish_reason"] = self.finish_reason
        return {
            "id": self.id,
            "object": "chat.completion" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": self._each(choice),
            "usage": self.usage.to_openai(),
        }

    def chunk(
        self, content: str = "", *, opening: bool = False, finish_reason: str | None = None
    ) -> dict[str, Any]:
        choice: dict[str, Any]
        if self.chat:
            delta: dict[str, Any] = {}
            if opening:
                delta = {"role": "assistant", "content": ""}
            elif finish_reason is None:
                delta = {"content": content}
            choice = {"index": 0, "delta": delta}
        else:
            choice = {"index": 0, "text": content}
        choice["logprobs"] = None
        choice["finish_reason"] = finish_reason
        return self._envelope(self._each(choice))

    def _each(self, choice: dict[str, Any]) -> list[dict[str, Any]]:
        if self.choices == 1:
            return [choice]
        return [{**choice, "index": index} for index in range(self.choices)]

    def usage_chunk(self) -> dict[str, Any]:
        """OpenAI's extra last chunk when the caller asked for usage: no choices, only usage."""
        chunk = self._envelope([])
        chunk["usage"] = self.usage.to_openai()
        return chunk

    def _envelope(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk" if self.chat else "text_completion",
            "created": self.created,
            "model": self.model,
            "choices": choices,
        }
        if self.include_usage:
            # OpenAI sends an explicit null usage on every chunk before the usage chunk.
            chunk["usage"] = None
        return chunk


def _embedding(text: str, dimensions: int) -> list[float]:
    """A unit vector that depends only on ``text``: equal inputs embed equally, across runs."""
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        values.extend(
            int.from_bytes(digest[i : i + 2], "big") / 32767.5 - 1.0 for i in range(0, 32, 2)
        )
        block += 1
    del values[dimensions:]
    norm = math.sqrt(sum(value * value for value in values))
    if norm == 0:
        return [1.0] + [0.0] * (dimensions - 1)
    return [value / norm for value in values]


def _tokens(model: str, count: int) -> list[str]:
    """The answer's pieces, one per token; the first names the model that answered."""
    tokens = [f" {_WORDS[index % len(_WORDS)]}" for index in range(count)]
    if tokens:
        tokens[0] = f"Simulated answer from {model}:{tokens[0]}"
    return tokens


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


def _prompt_text(request: Request) -> str:
    """The prompt's text, where a content filter would look for a blocked phrase."""
    body = request.body
    if request.operation is Operation.CHAT:
        parts: list[str] = []
        messages = body.get("messages")
        for message in messages if isinstance(messages, list) else ():
            content = message.get("content") if isinstance(message, dict) else None
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                parts.extend(
                    part["text"]
                    for part in content
                    if isinstance(part, dict) and isinstance(part.get("text"), str)
                )
        return "\n".join(parts)
    prompt = body.get(_PROMPT_FIELDS[request.operation])
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        return "\n".join(item for item in prompt if isinstance(item, str))
    return ""


def _embedding_inputs(body: dict[str, Any]) -> list[str]:
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    raise BadRequestError("input must be a string or a non-empty list of strings", param="input")
