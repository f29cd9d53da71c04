"""A provider that speaks HTTP: an adapter's translation over the one upstream seam."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

from turnout.config import Deployment
from turnout.errors import ProviderError
from turnout.providers.adapter import Adapter
from turnout.providers.capabilities import Capabilities
from turnout.secrets import redact
from turnout.upstream import Upstream
from turnout.wire import ProviderResponse, Request, StreamChunk


class HttpProvider:
    """Implements the router's `Provider` protocol for any adapter."""

    __slots__ = ("_adapter", "_upstream")

    def __init__(self, adapter: Adapter, upstream: Upstream) -> None:
        self._adapter = adapter
        self._upstream = upstream

    async def complete(self, deployment: Deployment, request: Request) -> ProviderResponse:
        adapter = self._adapter
        reply = await self._upstream.send(adapter.build(deployment, request), deployment.timeouts)
        if reply.status >= 300:
            raise self._failure(deployment, reply.status, reply.body, reply.headers)
        return adapter.parse(deployment, request, reply.body, reply.headers)

    embed = complete

    def capabilities(self, deployment: Deployment) -> Capabilities:
        """What the deployment's model can do, as its adapter declares it."""
        ask = getattr(self._adapter, "capabilities", None)
        found = ask(deployment.model) if ask is not None else None
        return found if isinstance(found, Capabilities) else Capabilities()

    async def stream(self, deployment: Deployment, request: Request) -> AsyncIterator[StreamChunk]:
        adapter = self._adapter
        reply = await self._upstream.open(adapter.build(deployment, request), deployment.timeouts)
        try:
            if reply.status >= 300:
                body = await reply.read()
                raise self._failure(deployment, reply.status, body, reply.headers)
            translator = adapter.translator(deployment, request)
            hints = adapter.rate_limits(reply.headers)
            async for piece in reply.pieces():
                for chunk in translator.feed(piece):
                    if hints is not None:
                        chunk.rate_limits, hints = hints, None
                    yield chunk
                translator.check()
                if translator.done:
                    return
            for chunk in translator.finish():
                yield chunk
            translator.check()
        finally:
            reply.close()

    def _failure(
        self, deployment: Deployment, status: int, body: bytes, headers: Mapping[str, str]
    ) -> ProviderError:
        error = self._adapter.error(status, body, headers)
        error.message = redact(error.message, deployment.api_key)
        error.args = (error.message,)
        return error
