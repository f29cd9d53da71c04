"""Anthropic's Messages API (``POST /v1/messages``) behind turnout's OpenAI-shaped interface.

The translation lives in small modules, one job each: `anthropic_request` (OpenAI request to
native body), `anthropic_response` (native Message to ``chat.completion``), `anthropic_stream`
(native events to ``chat.completion.chunk``s) and `anthropic_errors` (error bodies, error events
and rate-limit headers). This module ties them into the `Adapter` protocol.

Calls carry ``x-api-key`` (the deployment's key, else ``ANTHROPIC_API_KEY``) and
``anthropic-version`` (the deployment's ``api_version``, else ``2023-06-01``). A deployment's
``params`` are defaults for the OpenAI-shaped request; its settings' ``extra_headers`` are sent
as HTTP headers (e.g. ``anthropic-beta``) and its ``extra_body`` is merged into the native body
as is. A request of the gateway's Messages route is sent as the caller wrote it
(`turnout.providers.anthropic.native`).

Anthropic has no embeddings and no legacy text completions: those operations are refused with
`InvalidRequestError` naming ``model``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from turnout.clock import Clock
from turnout.config.providers import AnthropicSettings, settings_of
from turnout.config.router import Deployment
from turnout.errors import InvalidRequestError, ProviderError
from turnout.providers.anthropic import json_mode
from turnout.providers.anthropic.errors import classify, describe, rate_limit_hints
from turnout.providers.anthropic.native import NativeMessagesRequest, NativeStreamTranslator
from turnout.providers.anthropic.request import RequestTranslator
from turnout.providers.anthropic.response import completion
from turnout.providers.anthropic.stream import AnthropicStreamTranslator
from turnout.providers.capabilities import Capabilities, Capable, Feature
from turnout.providers.chunks import wants_usage
from turnout.upstream import UpstreamRequest
from turnout.wire import Operation, ProviderResponse, RateLimitHints, Request

DEFAULT_BASE_URL = "https://api.anthropic.com"
API_VERSION = "2023-06-01"
KEY_VARIABLE = "ANTHROPIC_API_KEY"


class _Count(msgspec.Struct):
    input_tokens: int


_COUNT = msgspec.json.Decoder(_Count).decode

#: What the Messages API has no counterpart for. JSON mode and structured output are honoured
#: through a forced tool, ``parallel_tool_calls: false`` as ``disable_parallel_tool_use`` and a
#: ``metadata`` of only ``user_id`` as Anthropic's own metadata.
_LACKS = frozenset(
    {
        Feature.N,
        Feature.LOGPROBS,
        Feature.SEED,
        Feature.METADATA,
        Feature.LOGIT_BIAS,
        Feature.PENALTIES,
    }
)
_CLAUDE_3_AND_LATER = Capabilities(
    tools=True, vision=True, assistant_prefill=True, embeddings=False, unsupported=_LACKS
)
#: No tools, so no forced tool for JSON mode either.
_CLAUDE_2 = Capabilities(
    tools=False,
    vision=False,
    assistant_prefill=True,
    embeddings=False,
    unsupported=_LACKS | {Feature.JSON_OBJECT, Feature.JSON_SCHEMA, Feature.SERIAL_TOOL_CALLS},
)


class AnthropicAdapter(Capable):
    """The adapter for provider ``anthropic``: see the module docstring."""

    #: Every Claude model of the Messages API era (3, 3.5, 3.7, 4 and later) takes tools and
    #: images and continues a prefilled answer; only the retired Claude 2 line did not.
    CAPABILITIES = (
        ("", _CLAUDE_3_AND_LATER),
        ("claude-2", _CLAUDE_2),
        ("claude-instant", _CLAUDE_2),
    )

    __slots__ = ("_clock", "_default_key", "name")

    def __init__(self, name: str, environ: Mapping[str, str], clock: Clock) -> None:
        self.name = name
        self._default_key = environ.get(KEY_VARIABLE)
        self._clock = clock

    def credentials(self) -> tuple[str, ...]:
        """The keys this adapter read from the environment, for redaction."""
        return (self._default_key,) if self._default_key else ()

    def url(self, deployment: Deployment) -> str:
        """``/v1/messages`` under the base URL (one that already ends in ``/v1`` is fine)."""
        base = (deployment.base_url or DEFAULT_BASE_URL).rstrip("/")
        if base.endswith("/v1/messages"):
            return base
        return f"{base}/messages" if base.endswith("/v1") else f"{base}/v1/messages"

    def build(self, deployment: Deployment, request: Request) -> UpstreamRequest:
        if request.operation is not Operation.CHAT:
            what = "embeddings" if request.operation is Operation.EMBEDDING else "text completions"
            raise InvalidRequestError(
                f"{self.name}: Anthropic has no {what} API; `{deployment.model}` serves chat "
                "completions only",
                param="model",
            )
        settings = settings_of(deployment.settings, AnthropicSettings)
        if isinstance(request, NativeMessagesRequest):
            native = {**request.native, "model": deployment.model, **settings.extra_body}
        else:
            body: dict[str, Any] = dict(request.body)
            for name, value in deployment.params.items():
                body.setdefault(name, value)
            native = {"model": deployment.model}
            native.update(RequestTranslator(self.name, deployment).body(body, settings.extra_body))
        headers = self._headers(deployment, settings, request)
        return UpstreamRequest(self.url(deployment), msgspec.json.encode(native), headers)

    def count_request(self, deployment: Deployment, request: Request) -> UpstreamRequest | None:
        """``POST /v1/messages/count_tokens`` with the caller's Messages body (a count takes
        the same fields a message does, less the sampling ones, which the caller's SDK has
        left out), on the deployment's model, with the same headers as a message."""
        if not isinstance(request, NativeMessagesRequest):
            raise InvalidRequestError(
                f"{self.name}: only a Messages request can be counted upstream", param="model"
            )
        settings = settings_of(deployment.settings, AnthropicSettings)
        body = msgspec.json.encode({**request.native, "model": deployment.model})
        url = f"{self.url(deployment)}/count_tokens"
        return UpstreamRequest(url, body, self._headers(deployment, settings, request))

    def parse_count(self, body: bytes) -> int:
        try:
            answer = _COUNT(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ProviderError(f"{self.name}: not a token count: {exc}") from None
        return answer.input_tokens

    def _headers(
        self, deployment: Deployment, settings: AnthropicSettings, request: Request
    ) -> dict[str, str]:
        """Every call's headers: the deployment's own, the API version, a native request's
        forwarded Anthropic headers, and the key."""
        headers = {"content-type": "application/json"}
        for name, value in settings.extra_headers.items():
            headers[name.lower()] = value
        headers["anthropic-version"] = deployment.api_version or API_VERSION
        if isinstance(request, NativeMessagesRequest):
            _forward(headers, request.native_headers)
        key = deployment.api_key.reveal() if deployment.api_key else self._default_key
        if key:
            headers["x-api-key"] = key
        return headers

    def parse(
        self, deployment: Deployment, request: Request, body: bytes, headers: Mapping[str, str]
    ) -> ProviderResponse:
        json_tool = _json_tool(deployment, request)
        answer, usage = completion(self.name, deployment.model, self._created(), body, json_tool)
        # A native request's answer is relayed as it came; its translation is for the router.
        raw = body if isinstance(request, NativeMessagesRequest) else None
        return ProviderResponse(answer, usage, raw, self.rate_limits(headers))

    def translator(self, deployment: Deployment, request: Request) -> AnthropicStreamTranslator:
        if isinstance(request, NativeMessagesRequest):
            model, created = deployment.model, self._created()
            return NativeStreamTranslator(self.name, model, created, False, self._clock.wall)
        return AnthropicStreamTranslator(
            self.name,
            deployment.model,
            self._created(),
            wants_usage(request.body),
            self._clock.wall,
            _json_tool(deployment, request),
        )

    def error(self, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
        kind, message = describe(body)
        return classify(self.name, status, kind, message, headers, self._clock.wall)

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimitHints | None:
        return rate_limit_hints(headers, self._clock.wall)

    def _created(self) -> int:
        return int(self._clock.wall())


def _forward(headers: dict[str, str], given: Mapping[str, str]) -> None:
    """The caller's Anthropic headers over the deployment's: its API version wins, and its
    betas join the deployment's own."""
    version = given.get("anthropic-version")
    if version:
        headers["anthropic-version"] = version
    betas = [b for b in (headers.get("anthropic-beta"), given.get("anthropic-beta")) if b]
    if betas:
        headers["anthropic-beta"] = ",".join(betas)


def _json_tool(deployment: Deployment, request: Request) -> str | None:
    """The forced tool's name when the request asked for JSON mode (`anthropic_json_mode`)."""
    return json_mode.TOOL_NAME if json_mode.requested(request.body, deployment.params) else None


def create_adapter(name: str, environ: Mapping[str, str], clock: Clock) -> AnthropicAdapter:
    """The registry's factory (`turnout.providers.registry.NATIVE`)."""
    return AnthropicAdapter(name, environ, clock)
