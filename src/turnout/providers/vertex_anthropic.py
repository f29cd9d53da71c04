"""Anthropic's Claude models served by Google Vertex AI.

Vertex AI takes Anthropic's Messages API bodies at ``POST https://{location}-aiplatform.
googleapis.com/v1/projects/{project}/locations/{location}/publishers/anthropic/models/
{model}:rawPredict`` (streams at ``:streamRawPredict``, as Anthropic's server-sent events);
location ``global`` is served by ``aiplatform.googleapis.com``. The body is the one Anthropic's
own API is sent, with two differences: the model is named by the path, not the body, and the API
version is a body field, ``anthropic_version`` (``vertex-2023-10-16``, or the deployment's
``api_version``), not a header. Answers are Anthropic's, so everything else is the Anthropic
adapter's: the chat translation, the answers, the stream, the Messages route's requests passed
through as the caller wrote them, thinking blocks and their signatures included, and the
capabilities of each Claude model.

The deployment names its ``vertex_project`` and ``vertex_location`` (both required). Its
``api_key`` is sent as the bearer token, else ``VERTEX_ACCESS_TOKEN``: an OAuth access token, as
for the gemini provider through Vertex AI (turnout mints no tokens from service-account
credentials; ``gcloud auth print-access-token`` gives one, valid for an hour). A ``base_url``
replaces the scheme and host. The caller's ``anthropic-beta`` header of a Messages request is
forwarded with the deployment's own ``extra_headers``.

Vertex AI answers a failed call either as Anthropic does (the model's own refusal of a request)
or as Google does, ``{"error": {"code", "message", "status"}}`` (authentication, quota, a model
the project may not use): both are classified, the first by Anthropic's rules, the second by its
HTTP status and any ``RetryInfo``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from turnout.clock import Clock
from turnout.config.providers import VertexAnthropicSettings, settings_of
from turnout.config.router import Deployment
from turnout.errors import InvalidRequestError, ProviderError
from turnout.providers.anthropic.adapter import AnthropicAdapter
from turnout.providers.anthropic.errors import classify
from turnout.providers.anthropic.native import NativeMessagesRequest
from turnout.providers.anthropic.request import RequestTranslator
from turnout.providers.gemini.errors import retry_delay
from turnout.upstream import UpstreamRequest
from turnout.wire import Operation, Request

#: The body's ``anthropic_version`` unless the deployment gives an ``api_version``.
VERTEX_VERSION = "vertex-2023-10-16"
TOKEN_VARIABLE = "VERTEX_ACCESS_TOKEN"
_HOST = "aiplatform.googleapis.com"
_ENCODE = msgspec.json.Encoder().encode


class VertexAnthropicAdapter(AnthropicAdapter):
    """The adapter for provider ``vertex_anthropic``: see the module docstring."""

    __slots__ = ()

    def __init__(self, name: str, environ: Mapping[str, str], clock: Clock) -> None:
        super().__init__(name, environ, clock)
        # Vertex AI takes Google's token, never an Anthropic key.
        self._default_key = environ.get(TOKEN_VARIABLE)

    def url(self, deployment: Deployment, stream: bool = False) -> str:
        """The model's ``:rawPredict`` (or ``:streamRawPredict``) URL."""
        settings = settings_of(deployment.settings, VertexAnthropicSettings)
        location = settings.vertex_location or "global"
        host = _HOST if location == "global" else f"{location}-{_HOST}"
        base = (deployment.base_url or f"https://{host}").rstrip("/")
        if not base.endswith("/v1"):
            base += "/v1"
        method = "streamRawPredict" if stream else "rawPredict"
        return (
            f"{base}/projects/{settings.vertex_project}/locations/{location}"
            f"/publishers/anthropic/models/{deployment.model}:{method}"
        )

    def build(self, deployment: Deployment, request: Request) -> UpstreamRequest:
        if request.operation is not Operation.CHAT:
            raise InvalidRequestError(
                f"{self.name}: Claude on Vertex AI serves chat only; `{deployment.model}` has "
                "no embeddings or text completions",
                param="model",
            )
        settings = settings_of(deployment.settings, VertexAnthropicSettings)
        headers = {"content-type": "application/json"}
        for name, value in settings.extra_headers.items():
            headers[name.lower()] = value
        native: dict[str, Any]
        if isinstance(request, NativeMessagesRequest):
            native = {**request.native, **settings.extra_body}
            beta = request.native_headers.get("anthropic-beta")
            if beta:
                own = headers.get("anthropic-beta")
                headers["anthropic-beta"] = f"{own},{beta}" if own else beta
        else:
            body: dict[str, Any] = dict(request.body)
            for name, value in deployment.params.items():
                body.setdefault(name, value)
            native = RequestTranslator(self.name, deployment).body(body, settings.extra_body)
        native.pop("model", None)
        native["anthropic_version"] = deployment.api_version or VERTEX_VERSION
        token = deployment.api_key.reveal() if deployment.api_key else self._default_key
        if token:
            headers["authorization"] = f"Bearer {token}"
        url = self.url(deployment, request.stream)
        return UpstreamRequest(url, _ENCODE(native), headers)

    def count_request(self, deployment: Deployment, request: Request) -> UpstreamRequest | None:
        """None: Anthropic's ``count_tokens`` is not among the endpoints turnout calls on
        Vertex AI, so a count for a Vertex group is the gateway's estimate."""
        return None

    def error(self, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
        google = _google_error(body)
        if google is None:
            return super().error(status, body, headers)
        message = str(google.get("message") or "no error message")
        error = classify(self.name, status, None, message, headers, self._clock.wall)
        details = google.get("details")
        if error.retry_after is None and isinstance(details, list):
            error.retry_after = retry_delay(details)
        return error


def _google_error(body: bytes) -> Mapping[str, Any] | None:
    """The ``error`` object of a Google error body (``google.rpc.Status``, alone or as a
    one-element list); None for Anthropic's shape (whose error has a ``type``) or any other."""
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        return None
    if isinstance(value, list) and len(value) == 1:
        value = value[0]
    error = value.get("error") if isinstance(value, dict) else None
    if isinstance(error, dict) and "type" not in error and ("code" in error or "status" in error):
        return error
    return None


def create_adapter(name: str, environ: Mapping[str, str], clock: Clock) -> VertexAnthropicAdapter:
    """The registry's factory (`turnout.providers.registry.NATIVE`)."""
    return VertexAnthropicAdapter(name, environ, clock)
