"""Amazon Bedrock: chat through the Converse and ConverseStream APIs, embeddings through
InvokeModel (Amazon Titan Text Embeddings and Cohere Embed), and a request of the gateway's
Messages route for a Claude model through InvokeModel as the caller wrote it.

Calls go to ``https://bedrock-runtime.{region}.amazonaws.com`` (or the deployment's
``base_url``, or its ``aws_bedrock_runtime_endpoint`` setting): ``POST /model/{modelId}/converse``,
``/converse-stream``, ``/invoke`` and ``/invoke-with-response-stream``. The model id may be an
ARN or an inference-profile id, so it is percent-encoded into one path segment (``/`` as
``%2F``), except ``:``, which is legal in a path and which turnout's HTTP client (aiohttp,
through yarl) would decode back to ``:`` anyway: the SigV4 signature must cover the path exactly
as sent. A LiteLLM-style ``converse/`` (or ``invoke/``) route prefix on the model is dropped.

The region is the ``aws_region_name`` setting, else ``AWS_REGION`` or ``AWS_DEFAULT_REGION``.
Auth is a Bedrock API key when there is one (the deployment's ``api_key``, else
``AWS_BEARER_TOKEN_BEDROCK``), else SigV4 with static credentials (see
`turnout.providers.bedrock.signing`), signed at the injected clock's wall time. The settings'
``extra_headers`` are sent (and signed); their ``extra_body`` is merged into the native body,
the way to pass Converse fields turnout does not map (``guardrailConfig``,
``additionalModelRequestFields``...); ``params`` are default OpenAI request fields, translated
like the caller's own. The settings are checked at load (`turnout.config.providers`).

A Messages request (`turnout.providers.anthropic.native`) for a deployment whose model id
contains ``anthropic.claude`` (a foundation model such as ``anthropic.claude-sonnet-4-5-...``,
a cross-region inference profile such as ``us.anthropic.claude-...``, or an ARN naming either)
is not translated: its body goes to InvokeModel in Anthropic's own shape and the answer comes
back as Claude gave it, thinking signatures included (`turnout.providers.bedrock.native`). A
``converse/`` route prefix keeps such a deployment on Converse; an application inference
profile's ARN names no model, so it does too.

The modules: `bedrock_messages` and `bedrock_request` (requests), `bedrock_response` (answers),
`bedrock_stream` (event-stream decoding), `bedrock_native` (Claude's Messages API through
InvokeModel), `bedrock_errors` (the error mapping) and `bedrock_signing` (credentials and SigV4).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

import msgspec

from turnout.clock import Clock
from turnout.config.providers import BedrockSettings, settings_of
from turnout.config.router import Deployment
from turnout.errors import AuthenticationError, ConfigError, InvalidRequestError, ProviderError
from turnout.providers.anthropic.response import completion
from turnout.providers.bedrock.errors import http_error
from turnout.providers.bedrock.messages import PROVIDER
from turnout.providers.bedrock.native import InvokeStreamTranslator, invoke_body, native_request
from turnout.providers.bedrock.request import (
    COHERE_INPUT_TYPE,
    JSON_TOOL,
    cohere_body,
    converse_body,
    titan_body,
)
from turnout.providers.bedrock.response import (
    chat_completion,
    cohere_embeddings,
    embedding_list,
    titan_embeddings,
)
from turnout.providers.bedrock.signing import credentials_from, own_credentials, sign
from turnout.providers.bedrock.stream import ConverseStreamTranslator
from turnout.providers.capabilities import Capabilities, Capable, Feature
from turnout.providers.chunks import wants_usage
from turnout.upstream import UpstreamRequest
from turnout.wire import Operation, ProviderResponse, RateLimitHints, Request, Usage

#: Cross-region inference profiles prefix a model id with a geography.
_GEOGRAPHIES = ("us.", "eu.", "apac.", "global.", "us-gov.", "jp.", "au.", "ca.")
_TITAN_EMBED = "amazon.titan-embed"
_COHERE_EMBED = "cohere.embed"

#: What Converse has no field for (``metadata`` is ``requestMetadata``, a JSON schema
#: ``outputConfig.textFormat``; plain JSON mode has no counterpart).
_LACKS = frozenset(
    {
        Feature.N,
        Feature.LOGPROBS,
        Feature.SEED,
        Feature.LOGIT_BIAS,
        Feature.PENALTIES,
        Feature.SERIAL_TOOL_CALLS,
        Feature.JSON_OBJECT,
    }
)
_CHAT = Capabilities(tools=True, unsupported=_LACKS)
_VISION = Capabilities(tools=True, vision=True, unsupported=_LACKS)
_EMBEDDINGS = Capabilities(tools=False, embeddings=True, streaming=False)
_ENCODE = msgspec.json.Encoder().encode


class BedrockAdapter(Capable):
    """Bedrock Runtime's Converse, ConverseStream and InvokeModel (embeddings)."""

    CAPABILITIES = (
        ("", _CHAT),
        (
            "anthropic.claude",
            # JSON mode through a forced tool, as on Anthropic's own API.
            Capabilities(
                tools=True,
                vision=True,
                assistant_prefill=True,
                unsupported=_LACKS - {Feature.JSON_OBJECT},
            ),
        ),
        ("meta.llama", _CHAT),
        ("meta.llama3-2-11b", _VISION),
        ("meta.llama3-2-90b", _VISION),
        ("meta.llama4", _VISION),
        ("mistral.", _CHAT),
        ("mistral.pixtral", _VISION),
        ("amazon.nova-", _VISION),
        ("amazon.nova-micro", _CHAT),
        ("cohere.command-", _CHAT),
        (_TITAN_EMBED, _EMBEDDINGS),
        (_COHERE_EMBED, _EMBEDDINGS),
    )

    __slots__ = ("_bearer", "_clock", "_credentials", "_region", "name")

    def __init__(self, name: str, environ: Mapping[str, str], clock: Clock) -> None:
        self.name = name
        self._clock = clock
        self._region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
        self._bearer = environ.get("AWS_BEARER_TOKEN_BEDROCK") or None
        self._credentials = credentials_from(environ)

    def credentials(self) -> tuple[str, ...]:
        """The keys this adapter read from the environment, for redaction."""
        held = [self._bearer]
        if self._credentials is not None:
            token = self._credentials.session_token
            held += [self._credentials.access_key, self._credentials.secret_key.reveal()]
            held.append(token.reveal() if token else None)
        return tuple(value for value in held if value)

    def capabilities(self, model: str) -> Capabilities:
        return super().capabilities(_family(model_id(model)))

    # -- requests ------------------------------------------------------------------------------

    def build(self, deployment: Deployment, request: Request) -> UpstreamRequest:
        settings = settings_of(deployment.settings, BedrockSettings)
        model = model_id(deployment.model)
        body = _with_defaults(request.body, deployment.params)
        messages = native_request(deployment, request)
        if messages is not None:
            native = invoke_body(messages, settings.extra_body)
            action = "invoke-with-response-stream" if request.stream else "invoke"
            headers = {"content-type": "application/json", "accept": "application/json"}
        elif request.operation is Operation.EMBEDDING:
            native, action = self._embedding_body(deployment, settings, model, body), "invoke"
            headers = {"content-type": "application/json", "accept": "application/json"}
        elif request.operation is Operation.CHAT:
            forced = self.capabilities(deployment.model).json_mode
            native = converse_body(body, deployment.drop_params, json_tool=forced)
            action = "converse-stream" if request.stream else "converse"
            headers = {"content-type": "application/json"}
        else:
            raise InvalidRequestError(
                f"{PROVIDER}: text completions are not supported; use chat completions",
                param="prompt",
            )
        for key, value in settings.extra_body.items():
            native.setdefault(key, value)
        for name, text in settings.extra_headers.items():
            headers[name.lower()] = text
        region = settings.aws_region_name or self._region
        base = self._base_url(deployment, settings, region)
        url = f"{base}/model/{quote(model, safe=':')}/{action}"
        payload = _ENCODE(native)
        headers = self._authorize(deployment, settings, region, url, payload, headers)
        return UpstreamRequest(url, payload, headers)

    def _base_url(
        self, deployment: Deployment, settings: BedrockSettings, region: str | None
    ) -> str:
        base = deployment.base_url or settings.aws_bedrock_runtime_endpoint
        if base:
            return base.rstrip("/")
        if region is None:
            raise ConfigError(
                f"deployment {deployment.id!r}: provider {self.name!r} needs a region "
                "(aws_region_name, AWS_REGION or AWS_DEFAULT_REGION) or a base_url"
            )
        return f"https://bedrock-runtime.{region}.amazonaws.com"

    def _authorize(
        self,
        deployment: Deployment,
        settings: BedrockSettings,
        region: str | None,
        url: str,
        payload: bytes,
        headers: dict[str, str],
    ) -> dict[str, str]:
        key = deployment.api_key.reveal() if deployment.api_key else None
        own = own_credentials(settings)
        if key or (self._bearer and own is None):
            headers["authorization"] = f"Bearer {key or self._bearer}"
            return headers
        # The deployment's own keys, else the environment's: never half of each (refused at load).
        credentials = own or self._credentials
        if credentials is None:
            raise AuthenticationError(
                f"{PROVIDER}: deployment {deployment.id!r} has no credentials: set its api_key "
                "(a Bedrock API key), settings aws_access_key_id and aws_secret_access_key, or "
                "AWS_BEARER_TOKEN_BEDROCK / AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        if region is None:
            raise ConfigError(
                f"deployment {deployment.id!r}: SigV4 signing needs a region "
                "(aws_region_name, AWS_REGION or AWS_DEFAULT_REGION)"
            )
        return sign("POST", url, payload, headers, credentials, region, self._clock.wall())

    def _embedding_body(
        self, deployment: Deployment, settings: BedrockSettings, model: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        if model.startswith(_TITAN_EMBED):
            return titan_body(body, deployment.drop_params)
        if model.startswith(_COHERE_EMBED):
            input_type = settings.input_type or COHERE_INPUT_TYPE
            return cohere_body(body, input_type, deployment.drop_params)
        raise InvalidRequestError(
            f"{PROVIDER}: embeddings are supported for {_TITAN_EMBED}* and {_COHERE_EMBED}* "
            f"models, not {model!r}",
            param="model",
        )

    # -- answers -------------------------------------------------------------------------------

    def parse(
        self, deployment: Deployment, request: Request, body: bytes, headers: Mapping[str, str]
    ) -> ProviderResponse:
        model = model_id(deployment.model)
        if request.operation is Operation.EMBEDDING:
            if model.startswith(_TITAN_EMBED):
                vectors, tokens = titan_embeddings(body)
            else:
                vectors, tokens = cohere_embeddings(body), _token_header(headers)
            tokens = tokens or request.prompt_tokens
            encoding = request.body.get("encoding_format")
            answer = embedding_list(vectors, deployment.model, tokens, encoding)
            return ProviderResponse(body=answer, usage=Usage(prompt_tokens=tokens))
        created = int(self._clock.wall())
        if native_request(deployment, request) is not None:
            # Claude's own Message, relayed as it came; its translation is for the router.
            answer, usage = completion(PROVIDER, deployment.model, created, body)
            return ProviderResponse(body=answer, usage=usage, raw=body)
        response_id = f"chatcmpl-{headers.get('x-amzn-requestid') or uuid.uuid4().hex}"
        json_tool = self._json_tool(deployment, request)
        answer, usage = chat_completion(body, deployment.model, response_id, created, json_tool)
        return ProviderResponse(body=answer, usage=usage)

    def translator(
        self, deployment: Deployment, request: Request
    ) -> ConverseStreamTranslator | InvokeStreamTranslator:
        if native_request(deployment, request) is not None:
            created = int(self._clock.wall())
            return InvokeStreamTranslator(deployment.model, created, self._clock.wall)
        response_id = f"chatcmpl-{uuid.uuid4().hex}"
        created = int(self._clock.wall())
        return ConverseStreamTranslator(
            response_id,
            deployment.model,
            created,
            wants_usage(request.body),
            self._json_tool(deployment, request),
        )

    def _json_tool(self, deployment: Deployment, request: Request) -> str | None:
        """The tool forced for JSON mode, when the request asked for it and the model takes
        one (`turnout.providers.bedrock.request.converse_body`)."""
        value = request.body.get("response_format", deployment.params.get("response_format"))
        asked = isinstance(value, dict) and value.get("type") == "json_object"
        return JSON_TOOL if asked and self.capabilities(deployment.model).json_mode else None

    def error(self, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
        return http_error(status, body, headers, self._clock.wall)

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimitHints | None:
        # Bedrock sends no quota headers (its quotas live in Service Quotas).
        return None


def model_id(model: str) -> str:
    """The Bedrock model id of a deployment's model, without a LiteLLM route prefix."""
    for route in ("converse/", "invoke/"):
        if model.startswith(route):
            return model[len(route) :]
    return model


def _family(model: str) -> str:
    for geography in _GEOGRAPHIES:
        if model.startswith(geography):
            return model[len(geography) :]
    return model


def _with_defaults(body: dict[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's body, with the deployment's default request fields where it set none."""
    defaults = {k: v for k, v in params.items() if k not in body}
    return {**body, **defaults} if defaults else body


def _token_header(headers: Mapping[str, str]) -> int:
    """InvokeModel's ``X-Amzn-Bedrock-Input-Token-Count`` (Cohere's body has no usage)."""
    try:
        return int(headers.get("x-amzn-bedrock-input-token-count") or 0)
    except ValueError:
        return 0


def create_adapter(name: str, environ: Mapping[str, str], clock: Clock) -> BedrockAdapter:
    return BedrockAdapter(name, environ, clock)
