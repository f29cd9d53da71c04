"""OpenAI and the OpenAI-compatible family: OpenAI, Groq, Mistral, DeepSeek, Together,
Fireworks, OpenRouter, vLLM, Ollama, or any server at a base URL that speaks OpenAI's API.

Requests pass through with only ``model`` replaced (and the deployment's default parameters
added where the caller set none), so fields turnout does not know reach the upstream untouched.
Answers are relayed as the upstream's own bytes: only usage, finish reasons and errors are
decoded, with msgspec views that skip everything else. For streams the adapter asks the upstream
for usage (``stream_options.include_usage``) so that streamed tokens are accounted too; when the
caller did not ask for it, the usage-only chunk is not forwarded and its usage rides on the
finish chunk instead.

A request of the gateway's Responses route sent to a deployment that takes Responses bodies
natively goes to its ``/responses`` endpoint as written (`turnout.providers.openai_responses`).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec

from turnout.clock import Clock, SystemClock
from turnout.config.providers import OpenAISettings, settings_of
from turnout.config.router import Deployment
from turnout.errors import (
    ConfigError,
    ContentPolicyError,
    ContextWindowExceededError,
    ProviderError,
    ServerError,
    StreamInterruptedError,
)
from turnout.providers.adapter import StreamTranslator
from turnout.providers.capabilities import (
    Capabilities,
    Capable,
    Feature,
    drop_lacking,
    lacking_of,
)
from turnout.providers.chunks import SSETranslator, UsagePolicy, wants_usage
from turnout.providers.headers import openai_rate_limits, retry_after
from turnout.providers.openai_responses import (
    RESPONSES_PATH,
    chat_completion,
    native_body,
    native_request,
)
from turnout.providers.openai_responses_stream import ResponsesStreamTranslator
from turnout.providers.statuses import by_status
from turnout.upstream import UpstreamRequest
from turnout.wire import Operation, ProviderResponse, RateLimitHints, Request, StreamChunk, Usage


@dataclass(frozen=True, slots=True)
class Preset:
    """Where a member of the family lives and what it supports."""

    base_url: str | None
    #: Environment variable read for the key when a deployment sets none.
    key_variable: str | None = None
    #: Whether it honours ``stream_options.include_usage``.
    stream_usage: bool = True


PRESETS: dict[str, Preset] = {
    "openai": Preset("https://api.openai.com/v1", "OPENAI_API_KEY"),
    "groq": Preset("https://api.groq.com/openai/v1", "GROQ_API_KEY"),
    "mistral": Preset("https://api.mistral.ai/v1", "MISTRAL_API_KEY", stream_usage=False),
    "deepseek": Preset("https://api.deepseek.com/v1", "DEEPSEEK_API_KEY"),
    "together": Preset("https://api.together.xyz/v1", "TOGETHER_API_KEY"),
    "fireworks": Preset("https://api.fireworks.ai/inference/v1", "FIREWORKS_API_KEY"),
    "openrouter": Preset("https://openrouter.ai/api/v1", "OPENROUTER_API_KEY"),
    "vllm": Preset(None),
    "ollama": Preset("http://127.0.0.1:11434/v1"),
    "openai-compatible": Preset(None),
}

_PATHS = {
    Operation.CHAT: "/chat/completions",
    Operation.COMPLETION: "/completions",
    Operation.EMBEDDING: "/embeddings",
}

#: Request fields turnout reads for itself and does not forward.
_TURNOUT_FIELDS = ("tags",)


class _UsageView(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    #: Read only when asked (``cached_tokens=True``); Any, so that no shape of it is an error.
    prompt_tokens_details: Any = None

    def usage(self, cached_tokens: bool) -> Usage:
        cached = 0
        details = self.prompt_tokens_details
        if cached_tokens and isinstance(details, dict):
            value = details.get("cached_tokens")
            cached = value if isinstance(value, int) and not isinstance(value, bool) else 0
        return Usage(self.prompt_tokens, self.completion_tokens, cached)


class _ResponseView(msgspec.Struct):
    usage: _UsageView | None = None


class _ChoiceView(msgspec.Struct):
    index: int = 0
    finish_reason: str | None = None


class _ChunkView(msgspec.Struct):
    choices: list[_ChoiceView] = []
    usage: _UsageView | None = None
    error: dict[str, Any] | None = None


class _ErrorView(msgspec.Struct):
    error: dict[str, Any] | str | None = None
    message: str | None = None
    detail: Any = None


_RESPONSE = msgspec.json.Decoder(_ResponseView)
_CHUNK = msgspec.json.Decoder(_ChunkView)
_ERROR = msgspec.json.Decoder(_ErrorView)
_ENCODE = msgspec.json.Encoder().encode

#: Looked for in the code, type and message (so the code ``context_length_exceeded`` is one).
_CONTEXT_HINTS = ("context length", "context_length", "maximum context", "too many tokens")
_POLICY_HINTS = ("content_policy", "content_filter", "content management policy", "safety")
_HINTS = ((_CONTEXT_HINTS, ContextWindowExceededError), (_POLICY_HINTS, ContentPolicyError))


_CHAT = Capabilities(tools=True)
_VISION = Capabilities(tools=True, vision=True)
#: OpenAI's reasoning models refuse sampling controls: "Unsupported parameter: 'logprobs' is
#: not supported with this model" (likewise ``logit_bias`` and the penalties).
_REASONING = Capabilities(
    tools=True,
    vision=True,
    unsupported=frozenset({Feature.LOGPROBS, Feature.LOGIT_BIAS, Feature.PENALTIES}),
)
#: What members of the family lack whatever the model, by their API references: Groq answers
#: 400 to ``logprobs``, ``top_logprobs`` and ``logit_bias``, and to any ``n`` but 1.
PRESET_LACKS: dict[str, frozenset[Feature]] = {
    "groq": frozenset({Feature.N, Feature.LOGPROBS, Feature.LOGIT_BIAS}),
}
_EMBEDDING = Capabilities(tools=False, embeddings=True, streaming=False)


class OpenAICompatibleAdapter(Capable):
    """The adapter for every provider in `PRESETS` (one instance per provider name).

    OpenAI's API has no assistant prefill (a final assistant message is answered, not
    continued), so no model of the family declares it: stream failover continues by instruction.
    """

    CAPABILITIES = (
        ("", _CHAT),
        ("gpt-4o", _VISION),
        ("gpt-4.1", _VISION),
        ("gpt-4.5", _VISION),
        ("gpt-5", _VISION),
        ("o1", _REASONING),
        ("o3", _REASONING),
        ("o4", _REASONING),
        ("chatgpt-4o", _VISION),
        ("gpt-3.5", _CHAT),
        ("text-embedding", _EMBEDDING),
        ("nomic-embed", _EMBEDDING),
        ("mistral-embed", _EMBEDDING),
    )

    __slots__ = ("_clock", "_default_key", "name", "preset")

    def __init__(
        self, name: str, environ: Mapping[str, str] | None = None, clock: Clock | None = None
    ) -> None:
        if name not in PRESETS:
            raise ConfigError(f"unknown OpenAI-compatible provider {name!r}")
        self.name = name
        self.preset = PRESETS[name]
        self._clock = clock or SystemClock()
        env = os.environ if environ is None else environ
        variable = self.preset.key_variable
        self._default_key = env.get(variable) if variable else None

    def credentials(self) -> tuple[str, ...]:
        """The keys this adapter read from the environment, for redaction."""
        return (self._default_key,) if self._default_key else ()

    def capabilities(self, model: str) -> Capabilities:
        found = super().capabilities(model)
        lacks = PRESET_LACKS.get(self.name)
        if lacks is None:
            return found
        return dataclasses.replace(found, unsupported=found.unsupported | lacks)

    def base_url(self, deployment: Deployment) -> str:
        base = deployment.base_url or self.preset.base_url
        if base is None:
            raise ConfigError(
                f"deployment {deployment.id!r}: provider {self.name!r} needs a base_url"
            )
        return base.rstrip("/")

    def build(self, deployment: Deployment, request: Request) -> UpstreamRequest:
        settings = settings_of(deployment.settings, OpenAISettings)
        native = native_request(request, deployment)
        if native is not None:
            body, headers = native_body(deployment, native), family_headers(settings)
            path = RESPONSES_PATH
        else:
            body, headers = prepare_call(
                deployment,
                request,
                settings,
                stream_usage=self.preset.stream_usage,
                # Read only for a deployment that drops: nothing more per request otherwise.
                capabilities=self.capabilities(deployment.model)
                if deployment.drop_params
                else None,
            )
            path = _PATHS[request.operation]
        key = deployment.api_key.reveal() if deployment.api_key else self._default_key
        if key:
            headers["authorization"] = f"Bearer {key}"
        return UpstreamRequest(
            url=self.base_url(deployment) + path, body=_ENCODE(body), headers=headers
        )

    def parse(
        self, deployment: Deployment, request: Request, body: bytes, headers: Mapping[str, str]
    ) -> ProviderResponse:
        hints = self.rate_limits(headers)
        if native_request(request, deployment) is not None:
            # Relayed as it came; its chat translation is for the router.
            answer, counted = chat_completion(self.name, body)
            return ProviderResponse(answer, counted, body, hints)
        usage = read_usage(body, self.name, cached_tokens=True)
        return ProviderResponse(raw=body, usage=usage, rate_limits=hints)

    def translator(self, deployment: Deployment, request: Request) -> StreamTranslator:
        if native_request(request, deployment) is not None:
            return ResponsesStreamTranslator(self.name, self._stream_error)
        return OpenAIStreamTranslator(
            self.name, wants_usage(request.body), self.preset.stream_usage, cached_tokens=True
        )

    def error(self, status: int, body: bytes, headers: Mapping[str, str]) -> ProviderError:
        message, code, kind, param = _describe_error(body)
        wait = retry_after(headers, self._clock.wall)
        return classify_error(status, message, code, kind, param, self.name, wait)

    def rate_limits(self, headers: Mapping[str, str]) -> RateLimitHints | None:
        return openai_rate_limits(headers)

    def _stream_error(self, error: Mapping[str, Any]) -> ProviderError:
        """The error an in-stream error object (a Responses ``error`` event's fields) says."""
        message, code, kind, param = error_fields(error)
        return classify_error(None, message, code, kind or code, param, self.name, None)


def family_headers(settings: OpenAISettings) -> dict[str, str]:
    """The headers every call of the family carries before auth: its ``extra_headers`` and
    ``organization``."""
    headers = {"content-type": "application/json"}
    if settings.extra_headers:
        headers.update(settings.extra_headers)
    if settings.organization:
        headers["openai-organization"] = settings.organization
    return headers


def prepare_call(
    deployment: Deployment,
    request: Request,
    settings: OpenAISettings,
    *,
    stream_usage: bool,
    capabilities: Capabilities | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The body and headers every member of the family sends, before auth and URL.

    The caller's body without turnout's own fields, the deployment's default parameters and then
    its ``extra_body`` where the caller set none, its ``extra_headers`` and ``organization`` as
    headers, ``model`` set to the deployment's, and for streams the ask for usage when
    `stream_usage`. A deployment with ``drop_params`` drops the parameters its model lacks
    (`capabilities`, the adapter's for the model).
    """
    body = dict(request.body)
    for name in _TURNOUT_FIELDS:
        body.pop(name, None)
    if deployment.drop_params and capabilities is not None:
        drop_lacking(body, lacking_of(capabilities, deployment))
    for name, value in deployment.params.items():
        body.setdefault(name, value)
    for name, value in settings.extra_body.items():
        body.setdefault(name, value)
    headers = family_headers(settings)
    body["model"] = deployment.model
    if request.stream and stream_usage:
        options = body.get("stream_options")
        options = dict(options) if isinstance(options, Mapping) else {}
        if options.get("include_usage") is not True:
            options["include_usage"] = True
            body["stream_options"] = options
    return body, headers


def read_usage(body: bytes, provider: str, *, cached_tokens: bool = False) -> Usage | None:
    """The usage of a whole answer (None when it has none); a body that is not JSON is a
    server error."""
    try:
        view = _RESPONSE.decode(body)
    except msgspec.DecodeError:
        raise ServerError(f"{provider}: sent an answer that is not JSON") from None
    return view.usage.usage(cached_tokens) if view.usage else None


class OpenAIStreamTranslator(SSETranslator):
    """SSE events of an OpenAI-style stream into chunks; knows when the answer is complete.

    Members whose streams carry events of their own pass `rewrite`: it sees each event's data
    (never ``[DONE]``) first and returns the data to read, changed or not, or None to skip the
    event. `cached_tokens` reads ``prompt_tokens_details.cached_tokens`` into the usage.
    """

    __slots__ = (
        "_cached_tokens",
        "_finished",
        "_name",
        "_open",
        "_rewrite",
        "_usage",
        "_usage_settled",
    )

    def __init__(
        self,
        name: str,
        wants_usage: bool,
        will_get_usage: bool,
        *,
        cached_tokens: bool = False,
        rewrite: Callable[[bytes], bytes | None] | None = None,
    ) -> None:
        super().__init__()
        self._name = name
        self._cached_tokens = cached_tokens
        self._rewrite = rewrite
        self._finished = False
        self._usage_settled = not (will_get_usage or wants_usage)
        #: The finish chunk is held back until the usage-only chunk brings its usage.
        self._usage = UsagePolicy(wants_usage)
        #: Choice indexes seen without a finish reason yet.
        self._open: set[int] = set()

    def _end(self, out: list[StreamChunk]) -> None:
        self._usage.release(out)

    def _event(self, data: bytes, out: list[StreamChunk]) -> None:
        if data == b"[DONE]":
            self._done = True
            self._usage.release(out)
            return
        if self._rewrite is not None:
            rewritten = self._rewrite(data)
            if rewritten is None:
                return
            data = rewritten
        try:
            view = _CHUNK.decode(data)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise StreamInterruptedError(f"{self._name}: sent a malformed stream event") from None
        if view.error is not None:
            message, code, kind, param = error_fields(view.error)
            raise classify_error(None, message, code, kind, param, self._name, None)
        usage = None
        if view.usage is not None:
            usage = view.usage.usage(self._cached_tokens)
        finish = None
        for choice in view.choices:
            if choice.finish_reason is not None:
                finish = choice.finish_reason
                self._open.discard(choice.index)
            else:
                self._open.add(choice.index)
        if usage is not None:
            self._usage_settled = True
        if not view.choices and usage is not None:
            # The usage-only chunk: forwarded if the caller asked, else folded into the finish
            # chunk held back for it.
            self._usage.settle(usage, out, lambda usage: StreamChunk(raw=data, usage=usage))
        else:
            chunk = StreamChunk(raw=data, usage=usage, finish_reason=finish)
            if finish is not None and not self._usage_settled:
                self._usage.finish(chunk, out)
            else:
                out.append(chunk)
        if finish is not None:
            self._finished = True
        if self._finished and not self._open and self._usage_settled:
            # Complete: no need to wait for [DONE] (some servers never send it).
            self._done = True
            self._usage.release(out)


def _describe_error(body: bytes) -> tuple[str, str | None, str | None, str | None]:
    """Message, code, type and param from an error body, whatever shape the server used."""
    try:
        view = _ERROR.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        text = body.decode("utf-8", "replace").strip()
        return (text or "no error message", None, None, None)
    if isinstance(view.error, dict):
        return error_fields(view.error)
    if isinstance(view.error, str):
        return view.error, None, None, None
    if view.message:
        return view.message, None, None, None
    if view.detail is not None:
        return str(view.detail), None, None, None
    return "no error message", None, None, None


def error_fields(error: Mapping[str, Any]) -> tuple[str, str | None, str | None, str | None]:
    """Message, code, type and param of an OpenAI error object."""
    message = error.get("message")
    code = error.get("code")
    kind = error.get("type")
    param = error.get("param")
    return (
        str(message) if message else "no error message",
        str(code) if code is not None else None,
        str(kind) if kind is not None else None,
        str(param) if param is not None else None,
    )


def classify_error(
    status: int | None,
    message: str,
    code: str | None,
    kind: str | None,
    param: str | None,
    provider: str,
    wait: float | None,
) -> ProviderError:
    """Map an OpenAI-style error (HTTP status or in-stream error object) into turnout's tree.

    `wait` is what the reply's headers said about retrying (`headers.retry_after`); an error met
    inside a stream has no headers of its own.
    """
    text = f"{provider}: {message}"
    lowered = f"{code or ''} {kind or ''} {message}".lower()
    if status is None:
        if kind in ("rate_limit_error", "rate_limit_exceeded") or code == "rate_limit_exceeded":
            status = 429
        elif kind in ("server_error", "api_error") or code == "server_error":
            status = 500
        elif kind == "invalid_request_error":
            status = 400
        else:
            return StreamInterruptedError(text)
    return by_status(
        text,
        status,
        lowered=lowered,
        hints=_HINTS,
        param=param,
        retry_after=wait,
    )
