"""A provider that speaks HTTP: an adapter's translation over a `turnout.upstream.Transport`.

Every upstream call of every HTTP provider goes through the transport it was given, and through
nothing else, so a transport that wraps another (adding a tracing header, say) sees them all.

Each call carries the caller's request id upstream (``x-request-id``, unless a deployment's own
headers set one), and each answer, first stream chunk and error takes back the upstream's own id
for the call (`turnout.providers.headers.upstream_request_id`), so a request can be followed
into the provider's logs.

This is where upstream text first enters turnout's errors (error bodies, error events in a
stream, whatever a translator raises), so every `ProviderError` leaving it is redacted here:
the router, its events, logs and attempt summaries only ever see clean text. Adapters quote the
upstream's text whole (an HTML error page, a long message, an exception frame that is not
JSON); it is shortened here too, to `MESSAGE_LIMIT`, and only after redaction, because a key
cut in half is no longer a key any redactor recognises. Both run on the failure path alone; a
successful answer never meets them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

from turnout.config.router import Deployment
from turnout.errors import ProviderError
from turnout.providers.adapter import Adapter, TokenCountingAdapter
from turnout.providers.capabilities import Capabilities
from turnout.providers.credentials import deployment_secrets
from turnout.providers.headers import upstream_request_id
from turnout.secrets import Redactor
from turnout.upstream import Transport, UpstreamRequest
from turnout.wire import ProviderResponse, RateLimitHints, Request, StreamChunk

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
                _identified(adapter.build(deployment, request), request), deployment.timeouts
            )
            if reply.status >= 300:
                error = adapter.error(reply.status, reply.body, reply.headers)
                error.upstream_request_id = upstream_request_id(reply.headers)
                raise error
            answer = adapter.parse(deployment, request, reply.body, reply.headers)
            answer.upstream_request_id = upstream_request_id(reply.headers)
            return answer
        except ProviderError as error:
            self._redact(error, deployment)
            raise

    embed = complete

    async def count_tokens(self, deployment: Deployment, request: Request) -> int | None:
        """The upstream's own count of the request's input tokens, when the adapter's API
        has one (`TokenCountingAdapter`); None otherwise."""
        adapter = self._adapter
        if not isinstance(adapter, TokenCountingAdapter):
            return None
        call = adapter.count_request(deployment, request)
        if call is None:
            return None
        try:
            reply = await self._transport.send(_identified(call, request), deployment.timeouts)
            if reply.status >= 300:
                error = adapter.error(reply.status, reply.body, reply.headers)
                error.upstream_request_id = upstream_request_id(reply.headers)
                raise error
            return adapter.parse_count(reply.body)
        except ProviderError as error:
            self._redact(error, deployment)
            raise

    def capabilities(self, deployment: Deployment) -> Capabilities:
        """What the deployment's model can do, as its adapter declares it."""
        ask = getattr(self._adapter, "capabilities", None)
        found = ask(deployment.model) if ask is not None else None
        return found if isinstance(found, Capabilities) else Capabilities()

    async def stream(self, deployment: Deployment, request: Request) -> AsyncIterator[StreamChunk]:
        adapter = self._adapter
        try:
            reply = await self._transport.open(
                _identified(adapter.build(deployment, request), request), deployment.timeouts
            )
        except ProviderError as error:
            self._redact(error, deployment)
            raise
        upstream_id = upstream_request_id(reply.headers)
        try:
            if reply.status >= 300:
                raise adapter.error(reply.status, await reply.read(), reply.headers)
            translator = adapter.translator(deployment, request)
            hints = adapter.rate_limits(reply.headers)
            first = True
            async for piece in reply.pieces():
                for chunk in translator.feed(piece):
                    if first:
                        _first_chunk(chunk, hints, upstream_id)
                        first = False
                    yield chunk
                translator.check()
                if translator.done:
                    return
            for chunk in translator.finish():
                if first:
                    _first_chunk(chunk, hints, upstream_id)
                    first = False
                yield chunk
            translator.check()
        except ProviderError as error:
            # Error events mid-stream and first, translator failures, status errors: redacted
            # after parsing, so a secret split across pieces of the body is whole by now, and
            # shortened after redaction, so that no cut splits one either.
            error.upstream_request_id = error.upstream_request_id or upstream_id
            self._redact(error, deployment)
            raise
        finally:
            reply.close()

    def _redact(self, error: ProviderError, deployment: Deployment) -> None:
        redactor = self._redactor
        if redactor is None:
            redactor = Redactor([*deployment_secrets(deployment), *self._adapter.credentials()])
        redactor.scrub(error, limit=MESSAGE_LIMIT)


#: The header carrying the caller's request id upstream.
REQUEST_ID_HEADER = "x-request-id"


def _identified(call: UpstreamRequest, request: Request) -> UpstreamRequest:
    """`call` with the caller's request id in ``x-request-id``; a deployment's own headers
    (``extra_headers``, any case) win. Signed calls (Bedrock's SigV4) stay valid: the header is
    not among those signed. The headers are copied: an adapter may hand out a shared mapping."""
    headers = call.headers
    if any(name.lower() == REQUEST_ID_HEADER for name in headers):
        return call
    return dataclasses.replace(call, headers={**headers, REQUEST_ID_HEADER: request.public_id})


def _first_chunk(chunk: StreamChunk, hints: RateLimitHints | None, upstream_id: str | None) -> None:
    """What the reply's headers said, carried by the stream's first chunk."""
    if hints is not None:
        chunk.rate_limits = hints
    chunk.upstream_request_id = upstream_id
