"""A streamed answer, already under way.

`Router.stream` returns a `Stream` only once the first chunk has arrived, so every failure
before it is retried or failed over without the caller seeing anything. After that the stream is
the caller's: it is iterated once, and each wait for a chunk is bounded by the deployment's idle
limit and the request's deadline. When it breaks (a cut connection, an error event, a malformed
event, a stall), the router continues the answer from another deployment
(`turnout.router.continuation`) so that the caller sees one uninterrupted stream; when nothing
can continue it, iteration raises the original failure. A stream that breaks, stalls or ends
without a finish reason never ends quietly: a cut answer never looks complete.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from turnout.config.router import Deployment
from turnout.errors import (
    AttemptRecord,
    DeadlineExceededError,
    FailureKind,
    ProviderError,
    StreamInterruptedError,
    TurnoutError,
)
from turnout.router.attempt import Attempt
from turnout.router.bounds import idle_bound
from turnout.router.continuation import Rewriter
from turnout.router.dispatch import Dispatch
from turnout.router.limits import Limit
from turnout.router.response_facts import chunk_text, stream_facts
from turnout.router.segment import Segment, close_quietly
from turnout.router.transcript import Transcript, TranscriptBuilder
from turnout.wire import StreamChunk, Usage

#: Continuations one stream may take before its failure is reported.
MAX_FAILOVERS = 2


#: Given the failed segment, what the caller saw and why it broke: a continuation, or why
#: none could be opened (the last continuation's error, or None when none was tried).
Failover = Callable[[Attempt, Transcript, TurnoutError], Awaitable["Segment | TurnoutError | None"]]


class Stream:
    """Chunks of one answer; iterate it once, to the end or until it raises."""

    __slots__ = (
        "_carries_request",
        "_dispatch",
        "_failover",
        "_iterated",
        "_segment",
        "cost",
        "ttft",
        "usage",
    )

    def __init__(
        self, segment: Segment, dispatch: Dispatch, failover: Failover | None = None
    ) -> None:
        self._segment = segment
        #: Settles the stream's attempts and reports the request's end.
        self._dispatch = dispatch
        self._failover = failover
        self._iterated = False
        #: Whether this stream is the request's answer, whose end is the request's end (not
        #: a hedged race's second, nor a continuation's opening).
        self._carries_request = False
        #: Seconds from the attempt's start to its first chunk.
        self.ttft = segment.ttft
        #: Known once the stream has ended (for the whole answer, across continuations).
        self.usage: Usage | None = None
        self.cost: float | None = None

    @property
    def deployment(self) -> Deployment:
        """The deployment serving the stream now (another one after a failover)."""
        return self._segment.attempt.deployment

    @property
    def attempts(self) -> tuple[AttemptRecord, ...]:
        """Every attempt that has ended: failed ones, and this stream's once it ended."""
        return tuple(self._segment.attempt.run.attempts)

    @property
    def request_id(self) -> str:
        return self._segment.attempt.run.request.request_id

    def carry_request(self) -> None:
        """Make this stream the request's answer: its end reports the request's end."""
        self._carries_request = True

    def __aiter__(self) -> AsyncIterator[StreamChunk]:
        if self._iterated:
            raise RuntimeError("a Stream can be iterated only once")
        self._iterated = True
        return self._relay()

    async def __aenter__(self) -> Stream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Give the stream up early: closes the upstream and frees the deployment's slot.

        Harmless after the stream has ended (the attempt was settled then).
        """
        self._iterated = True
        segment = self._segment
        if not segment.attempt.settled:
            await self._dispatch.discard(segment)
        self._finish_request()

    async def _relay(self) -> AsyncIterator[StreamChunk]:
        # What a continuation needs of the chunks sent, kept compact: never the chunks.
        sent = TranscriptBuilder() if self._failover is not None else None
        rewriter: Rewriter | None = None
        original: TurnoutError | None = None
        failovers = 0
        segment = self._segment
        try:
            while True:
                pull = self._pull(segment)  # an async generator: closed below when abandoned
                try:
                    async for chunk in pull:
                        for out in [chunk] if rewriter is None else rewriter.feed(chunk):
                            if sent is not None:
                                sent.feed(out)
                            yield out
                    if rewriter is not None:
                        for out in rewriter.finish():
                            yield out
                except TurnoutError as error:
                    await close_quietly(pull)
                    await self._failed(segment, error)
                    original = original or error
                    if (
                        self._failover is None
                        or sent is None
                        or isinstance(error, DeadlineExceededError)
                        or failovers >= MAX_FAILOVERS
                    ):
                        raise _reported(original, error) from None
                    transcript = sent.transcript()
                    _restart_read(segment)
                    continuation = await self._failover(segment.attempt, transcript, original)
                    if not isinstance(continuation, Segment):
                        raise _reported(original, continuation or error) from None
                    failovers += 1
                    segment = self._segment = continuation
                    rewriter = Rewriter(
                        transcript, prefill=segment.prefill, added_prompt=segment.added_prompt
                    )
                    continue
                await self._succeeded(segment, rewriter)
                return
        finally:
            if not segment.attempt.settled:
                # The consumer stopped early (broke out, was cancelled): no verdict upstream.
                await self._dispatch.discard(segment)
            self._finish_request()

    def _finish_request(self) -> None:
        """Report the request's end, once, after its last attempt settled."""
        if not self._carries_request:
            return
        self._carries_request = False
        self._dispatch.request_finished(self._segment.attempt.run)

    async def _pull(self, segment: Segment) -> AsyncIterator[StreamChunk]:
        """The segment's chunks, each wait bounded; a break raises a `TurnoutError`."""
        attempt = segment.attempt
        deadline = attempt.run.deadline
        limit, readable = idle_bound(attempt, self._failover is not None)
        idle = None if limit is None else limit.seconds
        reserved = readable is not None and (idle is None or readable < idle)
        if reserved:
            idle = readable
        clock = self._dispatch.clock
        chunk = segment.first
        longest = 0.0
        bus = self._dispatch.bus
        reasons = segment.finish_reasons = [] if bus.details else None
        texts = segment.texts = [] if bus.content else None
        while True:
            if chunk.usage is not None:
                segment.usage = chunk.usage
            if texts is not None:
                texts.append(chunk_text(chunk))
            if chunk.finish_reason is not None:
                segment.finished = True
                if reasons is not None:
                    reasons.append(chunk.finish_reason)
            else:
                segment.content_chunks += 1
            if chunk.rate_limits is not None:
                segment.rate_limits = chunk.rate_limits
            yield chunk
            now = segment.waiting_since = clock.now()
            bound = deadline if idle is None else min(deadline, now + idle)
            try:
                async with clock.timeout_at(bound):
                    chunk = await anext(segment.chunks)
            except StopAsyncIteration:
                break
            except TimeoutError:
                if bound >= deadline:
                    raise DeadlineExceededError(
                        "The stream did not finish within the request's deadline"
                    ) from None
                raise _stalled(idle or 0.0, limit, reserved) from None
            except (ProviderError, asyncio.CancelledError, GeneratorExit):
                raise
            except Exception as exc:
                raise StreamInterruptedError(f"The stream broke: {type(exc).__name__}") from exc
            gap = clock.now() - now
            if gap > longest:
                longest = gap
        if not segment.finished:
            raise StreamInterruptedError("The stream ended without a finish reason")
        segment.longest_gap = longest

    async def _failed(self, segment: Segment, error: TurnoutError) -> None:
        attempt = segment.attempt
        await close_quietly(segment.chunks)
        if isinstance(error, ProviderError):
            error.deployment_id = attempt.deployment.id
            error.deployment_name = attempt.deployment.name
        if isinstance(error, DeadlineExceededError):
            await self._dispatch.abandon(attempt, FailureKind.DEADLINE)
        else:
            # What was sent before the break was generated, and is billed: account it.
            usage = Usage(attempt.request.prompt_tokens, segment.content_chunks)
            await self._dispatch.fail(attempt, error, usage)
        error.attempts = tuple(attempt.run.attempts)

    async def _succeeded(self, segment: Segment, rewriter: Rewriter | None) -> None:
        attempt = segment.attempt
        usage = segment.usage
        if usage is None:
            # No usage from upstream: estimate, one token per content chunk.
            usage = Usage(attempt.request.prompt_tokens, segment.content_chunks)
        facts = None
        if segment.finish_reasons is not None:
            facts = stream_facts(segment.first, segment.finish_reasons, segment.texts)
        cost = await self._dispatch.succeed(
            attempt, usage, segment.rate_limits, segment.ttft, facts=facts
        )
        attempt.run.bundle.limits.observe_stream(attempt.deployment.id, segment.longest_gap)
        self.usage = rewriter.usage if rewriter is not None and rewriter.usage else usage
        self.cost = cost


def _restart_read(segment: Segment) -> None:
    """A continuation's first chunk must reach a caller reading with a timeout within that
    timeout of the last chunk it saw: that is when its answer must resume."""
    run = segment.attempt.run
    within = run.request.start_within
    if within is not None and segment.waiting_since:
        run.open_by = min(run.deadline, segment.waiting_since + within)


def _stalled(seconds: float, limit: Limit | None, reserved: bool) -> StreamInterruptedError:
    """The failure of a stream that sent nothing for `seconds`, naming the limit it hit."""
    if reserved:
        why = "the caller's read timeout, less the time kept for a continuation to start"
    elif limit is not None:
        why = limit.describe()
    else:
        why = "the idle limit"
    return StreamInterruptedError(f"The stream stalled: no chunk for {seconds:.3g}s ({why})")


def _reported(original: TurnoutError, latest: TurnoutError) -> TurnoutError:
    """The error the caller gets: always the original failure, noting a failed continuation."""
    if latest is not original:
        original.message = (
            f"{original.message} (continuing on another deployment failed too: {latest.kind.value})"
        )
        original.args = (original.message,)
        original.attempts = latest.attempts or original.attempts
    return original
