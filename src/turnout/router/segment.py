"""One upstream stream feeding the caller's stream: an attempt's opened stream and what its
chunks told so far."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from turnout.router.attempt import Attempt
from turnout.wire import RateLimitHints, StreamChunk, Usage


@dataclass(slots=True)
class Segment:
    """One upstream stream feeding the caller's stream."""

    attempt: Attempt
    first: StreamChunk
    chunks: AsyncIterator[StreamChunk]
    ttft: float
    #: For a continuation: how it was asked for, and the prompt tokens it added.
    prefill: bool = False
    added_prompt: int = 0
    usage: Usage | None = None
    content_chunks: int = 0
    finished: bool = False
    #: When the wait for the next chunk began (monotonic; 0 before the first wait).
    waiting_since: float = 0.0
    #: The longest wait between two chunks, once the segment ended well.
    longest_gap: float = 0.0
    rate_limits: RateLimitHints | None = None
    #: The finish reasons its chunks carried, and with content capture the text they
    #: delivered; kept only when an observer asked (`Bus.details`, `Bus.content`).
    finish_reasons: list[str] | None = None
    texts: list[str] | None = None


async def close_quietly(chunks: AsyncIterator[StreamChunk]) -> None:
    """Close an upstream stream whose outcome is already decided; a failure to close is moot."""
    close = getattr(chunks, "aclose", None)
    if close is not None:
        with contextlib.suppress(Exception):
            await close()
