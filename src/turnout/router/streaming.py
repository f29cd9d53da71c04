"""A streamed answer, already under way.

`Router.stream` returns a `Stream` only once the first chunk has arrived, so every failure
before it is retried or failed over without the caller seeing anything. After that the stream is
the caller's: it is iterated once, each wait for a chunk is bounded by the deployment's idle
limit and the request's deadline, and a stream that breaks, stalls or ends without a finish
reason raises instead of ending quietly, so a cut answer never looks complete.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from turnout.clock import Clock
from turnout.config import Deployment
from turnout.errors import (
    DeadlineExceededError,
    FailureKind,
    ProviderError,
    StreamInterruptedError,
    TurnoutError,
)
from turnout.router.attempt import Attempt, AttemptRecord
from turnout.wire import RateLimitHints, StreamChunk, Usage


class Stream:
    """Chunks of one answer from one deployment; iterate it once, to the end or until it raises."""

    __slots__ = (
        "_attempt",
        "_chunks",
        "_clock",
        "_first",
        "_iterated",
        "_rate_limits",
        "cost",
        "ttft",
        "usage",
    )

    def __init__(
        self,
        *,
        attempt: Attempt,
        first: StreamChunk,
        chunks: AsyncIterator[StreamChunk],
        ttft: float,
        clock: Clock,
    ) -> None:
        self._attempt = attempt
        self._first = first
        self._chunks = chunks
        self._clock = clock
        self._iterated = False
        self._rate_limits: RateLimitHints | None = first.rate_limits
        #: Seconds from the attempt's start to its first chunk.
        self.ttft = ttft
        #: Known once the stream has ended.
        self.usage: Usage | None = None
        self.cost: float | None = None

    @property
    def deployment(self) -> Deployment:
        return self._attempt.deployment

    @property
    def attempts(self) -> tuple[AttemptRecord, ...]:
        """The attempts before this one (all failed), and this one once it has ended."""
        return tuple(self._attempt.run.attempts)

    @property
    def request_id(self) -> str:
        return self._attempt.run.request.request_id

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
        if self._attempt.settled:
            return
        await self._close_upstream()
        await self._attempt.abandon()

    async def _relay(self) -> AsyncIterator[StreamChunk]:
        attempt = self._attempt
        deadline = attempt.run.deadline
        idle = attempt.deployment.timeouts.idle
        clock = self._clock
        usage: Usage | None = None
        finished = False
        content_chunks = 0
        error: TurnoutError | None = None
        completed = False
        chunk = self._first
        try:
            while True:
                if chunk.usage is not None:
                    usage = chunk.usage
                if chunk.finish_reason is not None:
                    finished = True
                else:
                    content_chunks += 1
                if chunk.rate_limits is not None:
                    self._rate_limits = chunk.rate_limits
                yield chunk
                now = clock.now()
                bound = deadline if idle is None else min(deadline, now + idle)
                try:
                    async with clock.timeout_at(bound):
                        chunk = await anext(self._chunks)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    if bound >= deadline:
                        error = DeadlineExceededError(
                            "The stream did not finish within the request's deadline"
                        )
                    else:
                        error = StreamInterruptedError(
                            f"The stream stalled: no chunk for {idle:g}s"
                        )
                    raise error from None
                except ProviderError as exc:
                    error = exc
                    raise
                except (asyncio.CancelledError, GeneratorExit):
                    raise
                except Exception as exc:
                    error = StreamInterruptedError(f"The stream broke: {type(exc).__name__}")
                    raise error from exc
            if not finished:
                error = StreamInterruptedError("The stream ended without a finish reason")
                raise error
            completed = True
        finally:
            await self._finish(error, completed, usage, content_chunks)

    async def _finish(
        self, error: TurnoutError | None, completed: bool, usage: Usage | None, chunks: int
    ) -> None:
        attempt = self._attempt
        if error is not None:
            await self._close_upstream()
            if isinstance(error, ProviderError):
                error.deployment_id = attempt.deployment.id
            if isinstance(error, DeadlineExceededError):
                await attempt.abandon(FailureKind.DEADLINE)
            else:
                await attempt.fail(error)
            error.attempts = tuple(attempt.run.attempts)
            return
        if not completed:
            # The consumer stopped early (broke out, was cancelled): no verdict on the upstream.
            await self._close_upstream()
            await attempt.abandon()
            return
        if usage is None:
            # No usage from upstream: estimate, one token per content chunk.
            usage = Usage(attempt.run.request.prompt_tokens, chunks)
        self.usage = usage
        self.cost = await attempt.succeed(usage, self._rate_limits, self.ttft)

    async def _close_upstream(self) -> None:
        await close_quietly(self._chunks)


async def close_quietly(chunks: AsyncIterator[StreamChunk]) -> None:
    """Close an upstream stream whose outcome is already decided; a failure to close is moot."""
    close = getattr(chunks, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
