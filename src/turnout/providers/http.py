"""A provider that speaks HTTP: an adapter's translation over a `turnout.upstream.Transport`.

Every upstream call of every HTTP provider goes through the transport it was given, and through
nothing else, so a transport that wraps another (adding a tracing header, say) sees them all.

This is where upstream text first enters turnout's errors (error bodies, error events in a
stream, whatever a translator raises), so every `ProviderError` leaving it is redacted here:
the router, its events, logs and attempt summaries only ever see clean text. Adapters quote the
upstream's text whole (an HTML error page, a long message, an exception frame that is not
JSON); it is shortened here too, to `MESSAGE_LIMIT`, and only after redaction, because a key
cut in half is no longer a key any redactor recognises. Both run on the failure path alone; a
successful answer never meets them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from turnout.config.router import Deployment
from turnout.errors import ProviderError
from turnout.providers.adapter import Adapter
from turnout.providers.capabilities import Capabilities
from turnout.providers.credentials import deployment_secrets
from turnout.secrets import Redactor
from turnout.upstream import Transport
from turnout.wire import ProviderResponse, Request, StreamChunk

#: Longest error message (provider name included) that leaves a provider: an upstream's error
#: page can be any length, and a client, a log line or an attempt summary needs its start.
MESSAGE_LIMIT = 600


class HttpProvider:
    """Implements the router's `Provider` protocol for any adapter.

    `redactor` holds the secrets of the whole configuration (`turnout.providers.registry` builds
    it); without one, a failure is redacted of the failing deployment's own credentials and the
    adapter's, and of anything shaped like a key.
    """

    __slots__ = ("_adapter", "_redactor", "_transport")

    def __init__(
        self, adapter: Adapter, transport: Transport, redactor: Redactor | None = None
    ) -> None:
        self._adapter = adapter
        self._transport = transport
        self._redactor = redactor

    async def complete(self, deployment: Deployment, request: Request) -> ProviderResponse:
        adapter = self._adapter
        try:
            reply = await self._transport.send(
                adapter.build(deployment, request), deployment.timeouts
            )
            if reply.status >= 300:
                raise adapter.error(reply.status, reply.body, reply.headers)
            return adapter.parse(deployment, request, reply.body, reply.headers)
        except ProviderError as error:
            self._redact(error, deployment)
            raise

    embed = complete

    def capabilities(self, deployment: Deployment) -> Capabilities:
        """What the deployment's model can do, as its adapter declares it."""
        ask = getattr(self._adapter, "capabilities", None)
        found = ask(deployment.model) if ask is not None else None
        return found if isinstance(found, Capabilities) else Capabilities()

    async def stream(self, deployment: Deployment, request: Request) -> AsyncIterator[StreamChunk]:
        adapter = self._adapter
        try:
            reply = await self._transport.open(
                adapter.build(deployment, request), deployment.timeouts
            )
        except ProviderError as error:
            self._redact(error, deployment)
            raise
        try:
            if reply.status >= 300:
                raise adapter.error(reply.status, await reply.read(), reply.headers)
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
        except ProviderError as error:
            # Error events mid-stream and first, translator failures, status errors: redacted
            # after parsing, so a secret split across pieces of the body is whole by now, and
            # shortened after redaction, so that no cut splits one either.
            self._redact(error, deployment)
            raise
        finally:
            reply.close()

    def _redact(self, error: ProviderError, deployment: Deployment) -> None:
        redactor = self._redactor
        if redactor is None:
            redactor = Redactor([*deployment_secrets(deployment), *self._adapter.credentials()])
        redactor.scrub(error, limit=MESSAGE_LIMIT)
