"""The provider protocol: how the router asks a deployment for an answer.

The router calls one of three methods with the deployment to use and the request; the provider
returns the upstream's answer in OpenAI's shape, or raises a `turnout.errors.ProviderError`
subclass that says what kind of failure it was. A stream is an async iterator of chunks: errors
before the first chunk count as failures to open it, errors after it as interruptions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

from turnout.config.router import Deployment
from turnout.wire import ProviderResponse, Request, StreamChunk


class Provider(Protocol):
    async def complete(self, deployment: Deployment, request: Request) -> ProviderResponse:
        """A chat or text completion, answered whole."""
        ...

    def stream(self, deployment: Deployment, request: Request) -> AsyncIterator[StreamChunk]:
        """A chat or text completion, answered chunk by chunk."""
        ...

    async def embed(self, deployment: Deployment, request: Request) -> ProviderResponse:
        """Embeddings of the request's input."""
        ...


@runtime_checkable
class Closable(Protocol):
    """A provider holding something to release (a client of its own, a background task):
    `turnout.Router.aclose` closes the providers that are."""

    async def aclose(self) -> None: ...


@runtime_checkable
class TokenCounter(Protocol):
    """A provider that may ask its upstream to count a request's input tokens."""

    async def count_tokens(self, deployment: Deployment, request: Request) -> int | None:
        """The upstream's count of `request`'s input tokens on `deployment`; None when its
        API has no such count. Raises a `turnout.errors.ProviderError` when the call fails."""
        ...
