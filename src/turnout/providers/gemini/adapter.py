"""Google Gemini through the Generative Language API, or through Vertex AI.

Chat goes to ``POST /v1beta/models/{model}:generateContent`` (streams to
``:streamGenerateContent?alt=sse``) with the key in ``x-goog-api-key``: the deployment's
``api_key``, else ``GEMINI_API_KEY`` or ``GOOGLE_API_KEY``. Embeddings go to
``:batchEmbedContents``. A ``base_url`` replaces ``https://generativelanguage.googleapis.com``;
one that already ends in an API version (``/v1beta``, ``/v1``) keeps it.

A deployment with a ``vertex_project`` setting is served by Vertex AI instead, which takes the
same bodies at ``https://{location}-aiplatform.googleapis.com/v1/projects/{project}/locations/
{location}/publishers/google/models/{model}:generateContent`` (``vertex_location``, default
us-central1; ``global`` is served by ``aiplatform.googleapis.com``). Its ``api_key`` is sent as
the bearer token: an OAuth access token, which expires within the hour, as turnout does not mint
tokens from service-account credentials. Embeddings through Vertex AI are not supported.

The translation lives in the ``gemini_*`` modules: `gemini_request` and `gemini_messages`
(requests), `gemini_schema` (tool and response schemas), `gemini_response` (answers and
embeddings), `gemini_stream` (stream events) and `gemini_errors` (error bodies).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import msgspec

from turnout.clock import Clock
from turnout.config.providers import GeminiSettings, settings_of
from turnout.config.router import Deployment
from turnout.errors import InvalidRequestError, ProviderError
from turnout.providers.capabilities import Capabilities, Capable, Feature
from turnout.providers.chunks import wants_usage
from turnout.providers.gemini.errors import error_from_body
from turnout.providers.gemini.request import chat_body, embedding_body, with_defaults
from turnout.providers.gemini.response import completion, embeddings
from turnout.providers.gemini.stream import GeminiStreamTranslator
from turnout.upstream import UpstreamRequest
from turnout.wire import Operation, ProviderResponse, RateLimitHints, Request

GEMINI_URL = "https://generativelanguage.googleapis.com"
KEY_VARIABLES = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
DEFAULT_VERTEX_LOCATION = "us-central1"
_VERSIONS = ("/v1beta", "/v1", "/v1alpha")
_ENCODE = msgspec.json.Encoder().encode

#: What Gemini has no counterpart for: ``n`` is ``candidateCount``, ``seed``, the penalties and
#: ``response_format`` (``responseMimeType``/``responseSchema``) are mapped, the rest is not.
_LACKS = frozenset(
    {
        Feature.LOGPROBS,
        Feature.LOGIT_BIAS,
        Feature.METADATA,
        Feature.METADATA_USER_ID,
        Feature.SERIAL_TOOL_CALLS,
    }
)
_CHAT_MODEL = Capabilities(tools=True, vision=True, unsupported=_LACKS)
_EMBEDDING_MODEL = Capabilities(tools=False, embeddings=True, streaming=False)


class GeminiAdapter(Capable):
    """The adapter for provider ``gemini``; see the module docstring."""

    CAPABILITIES = (
        ("", Capabilities(unsupported=_LACKS)),
        ("gemini-1.5", _CHAT_MODEL),
        ("gemini-2", _CHAT_MODEL),
        ("gemini-3", _CHAT_MODEL),
        ("gemini-embedding", _EMBEDDING_MODEL),
        ("text-embedding", _EMBEDDING_MODEL),
        ("embedding-", _EMBEDDING_MODEL),
    )

    __slots__ = ("_clock", "_default_key", "name")

    def __init__(self, name: str, environ: Mapping[str, str], clock: Clock) -> None:
        self.name = name
        self._clock = clock
        self._default_key = next((environ[v] for v in KEY_VARIABLES if environ.get(v)), None)

    def credentials(self) -> tuple[str, ...]:
        """The keys this adapter read from the environment, for redaction."""
        return (self._default_key,) if self._default_key else ()

    def capabilities(self, model: str) -> Capabilities:
        return super().capabilities(model.removeprefix("models/"))

    def build(self, deployment: Deployment, request: Request) -> UpstreamRequest:
        settings = settings_of(deployment.settings, GeminiSettings)
        body = with_defaults(deployment, request.body)
        model = deployment.model.removeprefix("models/")
        vertex = settings.vertex_project
        if request.operation is Operation.EMBEDDING:
            if vertex:
                raise InvalidRequestError(
                    "gemini: embeddings through Vertex AI are not supported", param="model"
                )
            native = embedding_body(deployment, body, f"models/{model}", settings.extra_body)
            method = "batchEmbedContents"
        elif request.operation is Operation.CHAT:
            native = chat_body(deployment, body, settings.extra_body)
            method = "streamGenerateContent?alt=sse" if request.stream else "generateContent"
        else:
            raise InvalidRequestError(
                "gemini: Gemini has no text completions endpoint; use chat completions",
                param="prompt",
            )
        headers = {"content-type": "application/json"}
        if settings.extra_headers:
            headers.update(settings.extra_headers)
        key = deployment.api_key.reveal() if deployment.api_key else self._default_key
        if vertex:
            location = settings.vertex_location or DEFAULT_VERTEX_LOCATION
            url = self._vertex_url(deployment, vertex, location, model, method)
            if key:
                headers["authorization"] = f"Bearer {key}"
        else:
            url = f"{_versioned(deployment.base_url or GEMINI_URL)}/models/{model}:{method}"
            if key:
                headers["x-goog-api-key"] = key
        return UpstreamRequest(url=url, body=_ENCODE(native), headers=headers)

    def parse(
        self, deployment: Deployment, request: Request, body: bytes, headers: Mapping[str, str]
    ) -> ProviderResponse:
        if request.operation is Operation.EMBEDDING:
            encoding = request.body.get("encoding_format")
            answer, usage = embeddings(body, deployment.model, request.prompt_tokens, encoding)
            return ProviderResponse(body=answer, usage=usage)
        created, fallback = self._stamp()
        answer, usage = completion(body, deployment.model, created, fallback)
        return ProviderResponse(body=answer, usage=usage)

    def translator(self, deployment: Deployment, request: Request) -> GeminiStreamTranslator:
        n = request.body.get("n")
        candidates = n if isinstance(n, int) and not isinstance(n, bool) else 1
        created, fallback = self._stamp()
        return GeminiStreamTranslator(
            deployment.model, created, fallback, wants_usage(request.body), candidates
        )

    def error(self, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
        return error_from_body(status, body, headers, self._clock.wall)

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimitHints | None:
        # Gemini sends no rate-limit headers; its 429s say how long to wait instead.
        return None

    def _stamp(self) -> tuple[int, str]:
        """The ``created`` time of an answer, and an id for it should Gemini send none."""
        return int(self._clock.wall()), uuid.uuid4().hex

    @staticmethod
    def _vertex_url(
        deployment: Deployment, project: str, location: str, model: str, method: str
    ) -> str:
        host = "aiplatform.googleapis.com"
        if location != "global":
            host = f"{location}-{host}"
        base = (deployment.base_url or f"https://{host}").rstrip("/")
        if not base.endswith(_VERSIONS):
            base += "/v1"
        path = f"/projects/{project}/locations/{location}/publishers/google/models/{model}"
        return f"{base}{path}:{method}"


def _versioned(base: str) -> str:
    base = base.rstrip("/")
    return base if base.endswith(_VERSIONS) else f"{base}/v1beta"


def create_adapter(name: str, environ: Mapping[str, str], clock: Clock) -> GeminiAdapter:
    """The registry's factory (see `turnout.providers.registry.NATIVE`)."""
    return GeminiAdapter(name, environ, clock)
