"""Azure OpenAI: OpenAI's bodies and streams, at Azure's URLs, with Azure's auth and errors.

The body and the stream are OpenAI's, so the translation is the OpenAI-compatible family's
(`turnout.providers.openai`); this module adds what Azure does differently:

- URLs. The dated API: ``{base}/openai/deployments/{deployment}/{operation}?api-version=V``
  (``model`` stays in the body; Azure ignores it there), V from the deployment, else
  ``AZURE_API_VERSION`` / ``OPENAI_API_VERSION``, else `DEFAULT_API_VERSION`, the latest GA
  one. The v1 API (``api_version: v1``, or a base URL ending in ``/openai/v1``):
  ``{base}/openai/v1/{operation}`` with no api-version and the deployment name as ``model``;
  ``preview`` and ``latest`` also select it, with that api-version. The base URL comes from the
  deployment, else ``AZURE_API_BASE`` / ``AZURE_OPENAI_ENDPOINT``.
- Auth. An ``api-key`` header (the deployment's key, else ``AZURE_API_KEY`` /
  ``AZURE_OPENAI_API_KEY``), or a Microsoft Entra ID token given as the ``azure_ad_token``
  setting, sent as ``Authorization: Bearer``.
- Dated versions before 2024-09-01-preview lack ``stream_options``, ``max_completion_tokens``
  and ``parallel_tool_calls``: a 400 here, or dropped with ``drop_params``; streams on them
  carry no usage.
- Streams carry Azure's content-filter annotations: events with an empty ``id`` (the prompt's
  results first, and under the Asynchronous Filter results for text already sent). They are
  dropped, except one that ends a choice (``finish_reason: content_filter``), which is given
  the stream's id so that the client sees one stream.
- Errors. The content filter's 400 (``code: content_filter``, ``inner_error`` or
  ``innererror`` with ``ResponsibleAIPolicyViolation``) is a `ContentPolicyError`; a 401 may
  come as ``{"statusCode": 401, "message": ...}``; ``DeploymentNotFound`` is a 404; a 429 says
  when to retry in ``retry-after-ms``, ``retry-after``, ``x-ratelimit-reset-*`` or its message.
  A completion that the filter cut short is a success (``finish_reason: content_filter``).
- The Responses API. A deployment with ``native_responses`` is sent the gateway's Responses
  requests as they are (`turnout.providers.openai_responses`), at the v1 API's
  ``{base}/openai/v1/responses``, the only place Azure serves it: dated api-versions have no
  Responses path, so a dated deployment's version applies to its chat calls only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any
from urllib.parse import quote

import msgspec

from turnout.clock import Clock, SystemClock
from turnout.config.providers import AzureSettings, settings_of
from turnout.config.router import Deployment
from turnout.errors import (
    ConfigError,
    ContentPolicyError,
    InvalidRequestError,
    ProviderError,
    RateLimitError,
    UpstreamNotFoundError,
)
from turnout.providers.adapter import StreamTranslator
from turnout.providers.capabilities import Capabilities, Capable
from turnout.providers.chunks import wants_usage
from turnout.providers.headers import openai_rate_limits, parse_duration, retry_after
from turnout.providers.openai import (
    OpenAIStreamTranslator,
    classify_error,
    error_fields,
    family_headers,
    prepare_call,
    read_usage,
)
from turnout.providers.openai_responses import (
    RESPONSES_PATH,
    chat_completion,
    native_body,
    native_request,
)
from turnout.providers.openai_responses_stream import ResponsesStreamTranslator
from turnout.upstream import UpstreamRequest
from turnout.wire import Operation, ProviderResponse, RateLimitHints, Request

NAME = "azure"
#: The latest GA dated api-version of the inference API.
DEFAULT_API_VERSION = "2024-10-21"
#: Values of ``api_version`` that select the v1 API, and the api-version query each sends.
V1_VERSIONS: Mapping[str, str | None] = {"v1": None, "preview": "preview", "latest": "latest"}

_BASE_VARIABLES = ("AZURE_API_BASE", "AZURE_OPENAI_ENDPOINT")
_KEY_VARIABLES = ("AZURE_API_KEY", "AZURE_OPENAI_API_KEY")
_VERSION_VARIABLES = ("AZURE_API_VERSION", "OPENAI_API_VERSION")
_OPERATIONS = {
    Operation.CHAT: "/chat/completions",
    Operation.COMPLETION: "/completions",
    Operation.EMBEDDING: "/embeddings",
}
#: The first dated api-version with the request fields below (2024-09-01-preview).
_MODERN_SINCE = "2024-09-01"
_MODERN_FIELDS = ("stream_options", "max_completion_tokens", "parallel_tool_calls")
_DATED = re.compile(r"\d{4}-\d{2}-\d{2}")
_RETRY_IN_MESSAGE = re.compile(r"retry after (\d+(?:\.\d+)?) second", re.IGNORECASE)
_ENCODE = msgspec.json.Encoder().encode

_CHAT = Capabilities(tools=True, vision=True)
_TEXT_ONLY = Capabilities(tools=True)


class AzureAdapter(Capable):
    """The adapter for Azure OpenAI deployments (one instance serves them all)."""

    #: By model family; a deployment named otherwise gets the defaults (tools, nothing else).
    CAPABILITIES = (
        ("", Capabilities()),
        ("gpt-35-turbo", _TEXT_ONLY),
        ("gpt-4", _TEXT_ONLY),
        ("gpt-4-turbo", _CHAT),
        ("gpt-4o", _CHAT),
        ("gpt-4.1", _CHAT),
        ("gpt-4.5", _CHAT),
        ("gpt-5", _CHAT),
        ("o1", _CHAT),
        ("o1-mini", Capabilities(tools=False)),
        ("o1-preview", Capabilities(tools=False)),
        ("o3", _CHAT),
        ("o3-mini", _TEXT_ONLY),
        ("o4-mini", _CHAT),
        ("text-embedding-", Capabilities(tools=False, embeddings=True, streaming=False)),
    )

    __slots__ = ("_base", "_clock", "_key", "_version")

    def __init__(self, environ: Mapping[str, str], clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._base = _first(environ, _BASE_VARIABLES)
        self._key = _first(environ, _KEY_VARIABLES)
        self._version = _first(environ, _VERSION_VARIABLES)

    def credentials(self) -> tuple[str, ...]:
        """The keys this adapter read from the environment, for redaction."""
        return (self._key,) if self._key else ()

    def build(self, deployment: Deployment, request: Request) -> UpstreamRequest:
        base, version = self._endpoint(deployment)
        settings = settings_of(deployment.settings, AzureSettings)
        native = native_request(request, deployment)
        if native is not None:
            query = V1_VERSIONS.get(version)
            url = f"{base}/openai/v1{RESPONSES_PATH}" + (f"?api-version={query}" if query else "")
            headers = family_headers(settings)
            headers.update(self._auth(deployment, settings))
            return UpstreamRequest(
                url=url, body=_ENCODE(native_body(deployment, native)), headers=headers
            )
        modern = _modern(version)
        capabilities = self.capabilities(deployment.model) if deployment.drop_params else None
        body, headers = prepare_call(
            deployment, request, settings, stream_usage=modern, capabilities=capabilities
        )
        if not modern:
            _drop_unsupported(body, deployment, version)
        headers.update(self._auth(deployment, settings))
        path = _OPERATIONS[request.operation]
        if version in V1_VERSIONS:
            query = V1_VERSIONS[version]
            url = f"{base}/openai/v1{path}" + (f"?api-version={query}" if query else "")
        else:
            name = quote(deployment.model, safe="")
            url = f"{base}/openai/deployments/{name}{path}?api-version={quote(version)}"
        return UpstreamRequest(url=url, body=_ENCODE(body), headers=headers)

    def parse(
        self, deployment: Deployment, request: Request, body: bytes, headers: Mapping[str, str]
    ) -> ProviderResponse:
        if native_request(request, deployment) is not None:
            # Relayed as it came; its chat translation is for the router.
            answer, counted = chat_completion(NAME, body)
            return ProviderResponse(answer, counted, body, self.rate_limits(headers))
        usage = read_usage(body, NAME, cached_tokens=True)
        return ProviderResponse(raw=body, usage=usage, rate_limits=self.rate_limits(headers))

    def translator(self, deployment: Deployment, request: Request) -> StreamTranslator:
        if native_request(request, deployment) is not None:
            return ResponsesStreamTranslator(NAME, _stream_error)
        modern = _modern(self._endpoint(deployment)[1])
        asked = wants_usage(request.body)
        # On an older version the ask was refused or dropped by `build`: no usage will come.
        rewrite = _Annotations(request.operation is Operation.CHAT)
        return OpenAIStreamTranslator(
            NAME, asked and modern, modern, cached_tokens=True, rewrite=rewrite
        )

    def error(self, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
        error, inner = _error_object(body)
        message, code, kind, param = error_fields(error)
        if inner == "ResponsibleAIPolicyViolation" or code == "content_filter":
            return ContentPolicyError(f"{NAME}: {message}", status=status, param=param)
        if code == "DeploymentNotFound":
            return UpstreamNotFoundError(f"{NAME}: {message}", status=status)
        wait = retry_after(headers, self._clock.wall)
        failure = classify_error(status, message, code, kind, param, NAME, wait)
        if isinstance(failure, RateLimitError) and failure.retry_after is None:
            failure.retry_after = _retry_after(headers, message)
        return failure

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimitHints | None:
        hints = openai_rate_limits(headers)
        if hints is None:
            return None
        # Azure sends -1 for a quota it does not know (seen on some deployments).
        unknown = {f.name: None for f in fields(hints) if (getattr(hints, f.name) or 0) < 0}
        return replace(hints, **unknown) if unknown else hints

    def _endpoint(self, deployment: Deployment) -> tuple[str, str]:
        """The base URL (without ``/openai``) and the api-version for `deployment`."""
        base = deployment.base_url or self._base
        if not base:
            raise ConfigError(
                f"deployment {deployment.id!r}: provider {NAME!r} needs a base_url "
                f"(or {' / '.join(_BASE_VARIABLES)} in the environment)"
            )
        base = base.rstrip("/")
        version = deployment.api_version
        if base.endswith("/openai/v1"):
            base, version = base.removesuffix("/openai/v1"), version or "v1"
        base = base.removesuffix("/openai")
        return base, version or self._version or DEFAULT_API_VERSION

    def _auth(self, deployment: Deployment, settings: AzureSettings) -> dict[str, str]:
        token = settings.azure_ad_token
        if token:
            return {"authorization": f"Bearer {token.reveal()}"}
        key = deployment.api_key.reveal() if deployment.api_key else self._key
        return {"api-key": key} if key else {}


class _EventView(msgspec.Struct):
    id: Any = None
    object: Any = None
    created: Any = None
    model: Any = None
    choices: list[_ChoiceView] = []
    usage: Any = None
    error: Any = None


class _ChoiceView(msgspec.Struct):
    finish_reason: Any = None
    delta: Any = None
    text: Any = None


_EVENT = msgspec.json.Decoder(_EventView)


class _Annotations:
    """The `rewrite` of Azure streams: drops content-filter annotations (events with no id and
    no delta or text), and gives one that ends a choice the stream's id, object and model."""

    __slots__ = ("_chat", "_envelope")

    def __init__(self, chat: bool) -> None:
        self._chat = chat
        self._envelope: dict[str, Any] | None = None

    def __call__(self, data: bytes) -> bytes | None:
        try:
            view = _EVENT.decode(data)
        except msgspec.DecodeError:
            return data  # the translator reports it as malformed
        choices = view.choices
        if view.id or view.error is not None or any(_carries(choice) for choice in choices):
            if self._envelope is None and view.id:
                self._envelope = {
                    "id": view.id,
                    "object": view.object,
                    "created": view.created,
                    "model": view.model,
                }
            return data
        if view.usage is None and all(choice.finish_reason is None for choice in choices):
            return None
        event = msgspec.json.decode(data)
        kind = "chat.completion.chunk" if self._chat else "text_completion"
        event.update(self._envelope or {"id": "", "object": kind, "created": 0, "model": ""})
        for choice in event.get("choices") or ():
            if isinstance(choice, dict) and self._chat:
                choice.setdefault("delta", {})
            elif isinstance(choice, dict):
                choice.setdefault("text", "")
        return _ENCODE(event)


def _carries(choice: _ChoiceView) -> bool:
    """Whether a choice carries output (annotations carry filter results only)."""
    return choice.delta is not None or choice.text is not None


def create_adapter(name: str, environ: Mapping[str, str], clock: Clock) -> AzureAdapter:
    """The registry's factory (`turnout.providers.registry.NATIVE`)."""
    return AzureAdapter(environ, clock)


def _stream_error(error: Mapping[str, Any]) -> ProviderError:
    """The error an in-stream error object (a Responses ``error`` event's fields) says."""
    message, code, kind, param = error_fields(error)
    return classify_error(None, message, code, kind or code, param, NAME, None)


def _first(environ: Mapping[str, str], names: tuple[str, ...]) -> str | None:
    return next((environ[name] for name in names if environ.get(name)), None)


def _modern(version: str) -> bool:
    """Whether the api-version knows ``stream_options`` and the fields added with it."""
    if version in V1_VERSIONS or not _DATED.match(version):
        return True
    return version[:10] >= _MODERN_SINCE


def _drop_unsupported(body: dict[str, Any], deployment: Deployment, version: str) -> None:
    for name in _MODERN_FIELDS:
        if name not in body:
            continue
        if not deployment.drop_params:
            raise InvalidRequestError(
                f"{NAME}: api-version {version} does not support `{name}` (it came with "
                f"{_MODERN_SINCE}-preview); set a later api_version, or drop_params",
                param=name,
            )
        value = body.pop(name)
        if name == "max_completion_tokens":
            body.setdefault("max_tokens", value)  # the same cap, under its older name


def _error_object(body: bytes) -> tuple[dict[str, Any], str | None]:
    """The error object (OpenAI's fields) and the inner error's code, whatever the shape."""
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError:
        text = body.decode("utf-8", "replace").strip()
        return {"message": text or "no error message"}, None
    if not isinstance(value, dict):
        return {"message": str(value)}, None
    error = value.get("error")
    if isinstance(error, str):
        return {"message": error}, None
    if not isinstance(error, dict):
        # {"statusCode": 401, "message": "Access denied ..."}, and other bare shapes
        return {"message": value.get("message") or value.get("detail")}, None
    inner = error.get("inner_error") or error.get("innererror")
    code = inner.get("code") if isinstance(inner, dict) else None
    return error, str(code) if code is not None else None


def _retry_after(headers: Mapping[str, str], message: str) -> float | None:
    """For a 429 without ``retry-after(-ms)``: the reset headers, else the message's advice."""
    waits = [
        parse_duration(value)
        for name in ("x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")
        if (value := headers.get(name))
    ]
    positive = [wait for wait in waits if wait is not None and wait > 0]
    if positive:
        return max(positive)
    found = _RETRY_IN_MESSAGE.search(message)
    return float(found.group(1)) if found else None
