"""The seam every upstream call passes through: a `Transport` and the values it speaks.

Providers build an `UpstreamRequest` (an adapter's translation of the caller's request), hand
it to a transport, and read an `UpstreamReply` (a body read whole) or an `UpstreamStream` (a
body read piece by piece) back. A transport owns connections, timeouts and the mapping of its
own failures into turnout's errors, so a provider never sees a socket, and anything that
wraps a transport (one that adds a ``traceparent`` header, say) works for every provider
without touching an adapter.

`turnout.upstream.aiohttp.AiohttpTransport` is the pooled HTTP client the gateway and
`turnout.open_router` use; `turnout.testing.MockTransport` answers from a function, for tests
without sockets. This package imports only `turnout.config` and `turnout.errors` below it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from turnout.config.router import Timeouts


@dataclass(frozen=True, slots=True)
class UpstreamRequest:
    """One HTTP call to an upstream, fully built."""

    url: str
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class UpstreamReply:
    """A reply read whole: the status, the headers (looked up without regard to case when the
    transport can) and the body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


class UpstreamStream(Protocol):
    """An open streamed reply: status and headers now, the body piece by piece.

    Its reader calls `close` when done with it, read to the end or not.
    """

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    async def read(self) -> bytes:
        """The whole body (for error replies); what could not be read is left out."""
        ...

    def pieces(self) -> AsyncIterator[bytes]:
        """Body bytes as they arrive; a broken connection raises `StreamInterruptedError`."""
        ...

    def close(self) -> None:
        """Release the connection (to its pool when the body was read to its end)."""
        ...


class Transport(Protocol):
    """Sends upstream calls. Failures to reach the upstream or to read its reply are raised as
    `turnout.errors.ProviderError`s (timeouts, connection errors); a reply with any status is
    returned, for the provider's adapter to classify."""

    async def send(self, call: UpstreamRequest, timeouts: Timeouts) -> UpstreamReply:
        """One call, its reply read whole."""
        ...

    async def open(self, call: UpstreamRequest, timeouts: Timeouts) -> UpstreamStream:
        """A call whose body will be streamed: returns once the status and headers arrived."""
        ...

    async def aclose(self) -> None:
        """Release every connection. Idempotent; the transport is not used after it."""
        ...


__all__ = ["Transport", "UpstreamReply", "UpstreamRequest", "UpstreamStream"]
