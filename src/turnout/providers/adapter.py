"""The adapter protocol: what a provider's translation layer does, and nothing more.

An adapter turns an OpenAI-shaped request into the bytes of an upstream call, and the upstream's
reply (a body, each stream event, an error) back into OpenAI's shape and turnout's error tree. It
never opens a socket: `turnout.providers.http.HttpProvider` pairs an adapter with a
`turnout.upstream.Transport`, the one upstream I/O seam.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from turnout.config.router import Deployment
from turnout.errors import ProviderError
from turnout.upstream import UpstreamRequest
from turnout.wire import ProviderResponse, RateLimitHints, Request, StreamChunk


class StreamTranslator(Protocol):
    """Turns a streamed body into OpenAI chunks, one piece of bytes at a time."""

    def feed(self, piece: bytes) -> list[StreamChunk]:
        """Chunks completed by these bytes; raises a `ProviderError` for an error event, its
        text whole (as `Adapter.error`: shortened after redaction, by `HttpProvider`)."""
        ...

    def finish(self) -> list[StreamChunk]:
        """Chunks still held when the body ended."""
        ...

    def check(self) -> None:
        """Raise the `ProviderError` of a bad event, once the chunks before it were returned."""
        ...

    @property
    def done(self) -> bool:
        """Whether the answer is complete (no need to read further)."""
        ...


class Adapter(Protocol):
    def build(self, deployment: Deployment, request: Request) -> UpstreamRequest:
        """The upstream call for `request` on `deployment`."""
        ...

    def parse(
        self, deployment: Deployment, request: Request, body: bytes, headers: Mapping[str, str]
    ) -> ProviderResponse:
        """A successful (2xx) non-streamed answer."""
        ...

    def translator(self, deployment: Deployment, request: Request) -> StreamTranslator:
        """A fresh translator for one streamed answer."""
        ...

    def error(self, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
        """The classified error for a non-2xx reply.

        Its message quotes the upstream's text whole (an HTML page too): `HttpProvider`
        redacts it and only then shortens it. Cut here, a key straddling the cut would leave
        its first characters behind, which no redactor can recognise.
        """
        ...

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimitHints | None:
        """What the reply's headers say about remaining quota."""
        ...

    def credentials(self) -> tuple[str, ...]:
        """The keys the adapter holds beyond its deployments' (read from the environment), so
        that the redactor removes them from upstream text too."""
        ...


@runtime_checkable
class TokenCountingAdapter(Adapter, Protocol):
    """An adapter whose upstream counts a request's input tokens itself (Anthropic's
    ``/v1/messages/count_tokens``): exact where turnout's own count is an estimate."""

    def count_request(self, deployment: Deployment, request: Request) -> UpstreamRequest | None:
        """The upstream call that counts `request`'s input tokens on `deployment`; None when
        this deployment's endpoint has no count (a subclass serving another host's API)."""
        ...

    def parse_count(self, body: bytes) -> int:
        """The input tokens a successful count answered (a `ProviderError` if it is not one)."""
        ...
