"""The Azure OpenAI adapter: URLs, auth, old api-versions, content-filter annotations, errors.

Native bodies are Azure's, from its REST reference and content-streaming documentation. Tests
marked "through its provider" run the adapter inside `HttpProvider` on a `MockTransport`.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from turnout import Deployment, Request, Secret
from turnout.clock import SystemClock
from turnout.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContentPolicyError,
    ContextWindowExceededError,
    InvalidRequestError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UpstreamNotFoundError,
)
from turnout.providers.azure import DEFAULT_API_VERSION, AzureAdapter, create_adapter
from turnout.providers.http import HttpProvider
from turnout.providers.registry import native_adapter
from turnout.testing import MockStream, MockTransport
from turnout.upstream import UpstreamReply
from turnout.wire import Operation, StreamChunk

BASE = "https://contoso.openai.azure.com"
KEY = "azure-secret-key-1234"


def _deployment(**fields: Any) -> Deployment:
    fields.setdefault("base_url", BASE)
    fields.setdefault("api_key", Secret(KEY))
    fields.setdefault("model", "gpt-4o-prod")
    return Deployment(model_name="chat", provider="azure", **fields)


def _request(operation: Operation = Operation.CHAT, **body: Any) -> Request:
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return Request(model="chat", body={"model": "chat", **body}, operation=operation)


def _adapter(**environ: str) -> AzureAdapter:
    return AzureAdapter(environ)


def _body(call: Any) -> dict[str, Any]:
    decoded: dict[str, Any] = msgspec.json.decode(call.body)
    return decoded


# --- URLs -----------------------------------------------------------------------------------


def test_the_registry_builds_it() -> None:
    assert isinstance(native_adapter("azure", environ={}), AzureAdapter)
    assert isinstance(create_adapter("azure", {}, SystemClock()), AzureAdapter)


def test_deployment_urls_carry_the_api_version() -> None:
    adapter = _adapter()
    call = adapter.build(_deployment(api_version="2024-06-01"), _request())
    assert (
        call.url == f"{BASE}/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-06-01"
    )
    embed = Request(model="e", body={"input": "x"}, operation=Operation.EMBEDDING)
    assert adapter.build(_deployment(), embed).url == (
        f"{BASE}/openai/deployments/gpt-4o-prod/embeddings?api-version={DEFAULT_API_VERSION}"
    )
    text = _request(Operation.COMPLETION, prompt="hi")
    assert "/deployments/gpt-4o-prod/completions?" in adapter.build(_deployment(), text).url


def test_the_api_version_falls_back_to_the_environment_then_the_ga_default() -> None:
    assert DEFAULT_API_VERSION == "2024-10-21"
    for environ, version in [
        (
            {"AZURE_API_VERSION": "2024-08-01-preview", "OPENAI_API_VERSION": "x"},
            "2024-08-01-preview",
        ),
        ({"OPENAI_API_VERSION": "2024-06-01"}, "2024-06-01"),
        ({}, DEFAULT_API_VERSION),
    ]:
        url = _adapter(**environ).build(_deployment(), _request()).url
        assert url.endswith(f"?api-version={version}")


def test_the_base_url_may_come_from_the_environment_and_is_required() -> None:
    deployment = _deployment(base_url=None)
    url = _adapter(AZURE_OPENAI_ENDPOINT="https://env.openai.azure.com/").build(
        deployment, _request()
    )
    assert url.url.startswith("https://env.openai.azure.com/openai/deployments/")
    with pytest.raises(ConfigError, match="needs a base_url") as caught:
        _adapter().build(deployment, _request())
    assert KEY not in str(caught.value)


@pytest.mark.parametrize(
    ("base", "version", "url"),
    [
        (BASE, "v1", f"{BASE}/openai/v1/chat/completions"),
        (f"{BASE}/openai/v1/", None, f"{BASE}/openai/v1/chat/completions"),
        (f"{BASE}/openai", "preview", f"{BASE}/openai/v1/chat/completions?api-version=preview"),
        (f"{BASE}/openai/", "2024-10-21", f"{BASE}/openai/deployments/gpt-4o-prod/"),
    ],
)
def test_the_v1_api_and_base_urls_with_openai_in_them(
    base: str, version: str | None, url: str
) -> None:
    call = _adapter().build(_deployment(base_url=base, api_version=version), _request())
    assert call.url.startswith(url)
    assert _body(call)["model"] == "gpt-4o-prod"  # v1 needs it; deployment URLs ignore it


# --- body and auth --------------------------------------------------------------------------


def test_the_body_is_openais_with_defaults_and_without_azures_own_params() -> None:
    deployment = _deployment(
        params={"temperature": 0.2, "azure_ad_token": "entra-token", "extra_headers": {"x-a": "1"}}
    )
    call = _adapter().build(deployment, _request(temperature=0.7, tags=["eu"], seed=3))
    body = _body(call)
    assert body["temperature"] == 0.7
    assert body["seed"] == 3
    assert "azure_ad_token" not in body
    assert "tags" not in body
    assert call.headers["x-a"] == "1"
    assert call.headers["authorization"] == "Bearer entra-token"
    assert "api-key" not in call.headers  # the token wins over the key


def test_the_key_goes_in_the_api_key_header() -> None:
    call = _adapter().build(_deployment(), _request())
    assert call.headers["api-key"] == KEY
    assert "authorization" not in call.headers
    env = _adapter(AZURE_OPENAI_API_KEY="env-key").build(_deployment(api_key=None), _request())
    assert env.headers["api-key"] == "env-key"
    assert "api-key" not in _adapter().build(_deployment(api_key=None), _request()).headers


def test_an_entra_token_may_be_a_secret() -> None:
    deployment = _deployment(params={"azure_ad_token": Secret("tok")})
    assert _adapter().build(deployment, _request()).headers["authorization"] == "Bearer tok"


def test_streams_ask_for_usage_from_2024_09_01_preview_on() -> None:
    for version, asks in [
        ("2024-10-21", True),
        ("2024-09-01-preview", True),
        ("v1", True),
        ("2024-06-01", False),
    ]:
        body = _body(_adapter().build(_deployment(api_version=version), _request(stream=True)))
        assert ("stream_options" in body) is asks, version


@pytest.mark.parametrize(
    "field", ["stream_options", "max_completion_tokens", "parallel_tool_calls"]
)
def test_older_versions_refuse_newer_fields_unless_told_to_drop_them(field: str) -> None:
    value: Any = {"include_usage": True} if field == "stream_options" else 5
    request = _request(stream=True, **{field: value})
    with pytest.raises(InvalidRequestError, match=f"does not support `{field}`") as caught:
        _adapter().build(_deployment(api_version="2024-06-01"), request)
    assert caught.value.param == field
    assert caught.value.message.startswith("azure: ")
    dropping = _deployment(api_version="2024-06-01", drop_params=True)
    body = _body(_adapter().build(dropping, request))
    assert field not in body
    if field == "max_completion_tokens":
        assert body["max_tokens"] == 5


# --- answers --------------------------------------------------------------------------------

_ANSWER = {
    "id": "chatcmpl-7R1nGnsXO8n4oi9UPz2f3UHdgAYMn",
    "object": "chat.completion",
    "created": 1686676106,
    "model": "gpt-4o-2024-08-06",
    "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}],
    "choices": [
        {
            "index": 0,
            "finish_reason": "content_filter",
            "message": {"role": "assistant", "content": "Ahoy"},
            "content_filter_results": {"violence": {"filtered": True, "severity": "medium"}},
        }
    ],
    "usage": {
        "completion_tokens": 557,
        "prompt_tokens": 33,
        "total_tokens": 590,
        "prompt_tokens_details": {"cached_tokens": 10},
    },
}


async def test_a_whole_answer_passes_through_with_its_usage() -> None:
    # Through its provider, with the headers in the case Azure sends them.
    raw = msgspec.json.encode(_ANSWER)
    headers = {"X-RateLimit-Remaining-Requests": "99", "x-ratelimit-limit-tokens": "-1"}
    transport = MockTransport(lambda call: UpstreamReply(200, headers, raw))
    answer = await HttpProvider(_adapter(), transport).complete(_deployment(), _request())
    [sent] = transport.requests
    path = "/openai/deployments/gpt-4o-prod/chat/completions"
    assert sent.url == f"{BASE}{path}?api-version={DEFAULT_API_VERSION}"
    assert sent.headers["api-key"] == KEY
    assert answer.raw is raw
    assert answer.body["choices"][0]["finish_reason"] == "content_filter"  # a success, as is
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (33, 557)
    assert answer.usage.cached_tokens == 10
    assert answer.rate_limits is not None
    assert answer.rate_limits.remaining_requests == 99
    assert answer.rate_limits.limit_tokens is None  # -1: Azure does not know


def test_rate_limit_hints() -> None:
    hints = _adapter().rate_limits(
        {
            "x-ratelimit-limit-requests": "4500",
            "x-ratelimit-limit-tokens": "450000",
            "x-ratelimit-remaining-requests": "4499",
            "x-ratelimit-remaining-tokens": "438897",
            "x-ratelimit-reset-tokens": "45",
        }
    )
    assert hints is not None
    assert (hints.limit_requests, hints.remaining_requests) == (4500, 4499)
    assert (hints.limit_tokens, hints.remaining_tokens, hints.reset_tokens) == (450000, 438897, 45)
    assert _adapter().rate_limits({}) is None


# --- streams --------------------------------------------------------------------------------

_OPENING = msgspec.json.encode(
    {
        "id": "",
        "object": "",
        "created": 0,
        "model": "",
        "prompt_filter_results": [
            {
                "prompt_index": 0,
                "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}},
            }
        ],
        "choices": [],
        "usage": None,
    }
)
_ID = "chatcmpl-7rCNsVeZy0PGnX3H6jK8STps5nZUY"


def _event(payload: dict[str, Any] | bytes) -> bytes:
    data = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
    return b"data: " + data + b"\n\n"


def _chunk(delta: dict[str, Any], finish: str | None = None, usage: Any = None) -> bytes:
    choice = {"index": 0, "finish_reason": finish, "delta": delta}
    envelope = {"id": _ID, "object": "chat.completion.chunk", "created": 1692913344}
    return _event({**envelope, "model": "gpt-35-turbo", "choices": [choice], "usage": usage})


def _annotation(finish: str | None = None) -> bytes:
    choice = {
        "index": 0,
        "finish_reason": finish,
        "content_filter_results": {"hate": {"filtered": False, "severity": "safe"}},
        "content_filter_offsets": {"check_offset": 44, "start_offset": 44, "end_offset": 198},
    }
    envelope = {"id": "", "object": "", "created": 0, "model": ""}
    return _event({**envelope, "choices": [choice], "usage": None})


_USAGE = _event(
    {
        "id": _ID,
        "object": "chat.completion.chunk",
        "created": 1692913344,
        "model": "gpt-35-turbo",
        "choices": [],
        "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7},
    }
)


def _stream(*events: bytes, **body: Any) -> list[StreamChunk]:
    translator = _adapter().translator(_deployment(), _request(stream=True, **body))
    chunks = translator.feed(b"".join(events))
    chunks += translator.finish()
    translator.check()
    return chunks


async def test_a_stream_through_its_provider_arrives_piece_by_piece() -> None:
    # Through its provider on a `MockTransport`, one event a piece: the first chunk carries the
    # reply's rate-limit headers, the annotation is dropped, the usage asked for comes last.
    events = [
        _event(_OPENING),
        _chunk({"role": "assistant", "content": "Hi"}),
        _annotation(),
        _chunk({}, "stop"),
        _USAGE,
        b"data: [DONE]\n\n",
    ]
    hints = {"x-ratelimit-remaining-requests": "7"}
    transport = MockTransport(lambda call: MockStream(events, headers=hints))
    provider = HttpProvider(_adapter(), transport)
    request = _request(stream=True, stream_options={"include_usage": True})
    chunks = [chunk async for chunk in provider.stream(_deployment(), request)]
    assert chunks[0].rate_limits is not None
    assert chunks[0].rate_limits.remaining_requests == 7
    assert [chunk.finish_reason for chunk in chunks] == [None, "stop", None]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 2
    assert transport.open_streams == 0


def test_annotations_are_dropped_and_the_stream_keeps_one_id() -> None:
    # The Asynchronous Filter's sample stream (it passes the filters), with usage asked for.
    chunks = _stream(
        _event(_OPENING),
        _chunk({"role": "assistant"}),
        _chunk({"content": "Color"}),
        _annotation(),
        _chunk({"content": " is"}),
        _chunk({}, finish="stop"),
        _annotation(),
        _USAGE,
        b"data: [DONE]\n\n",
    )
    assert {chunk.data["id"] for chunk in chunks} == {_ID}
    assert {chunk.data["object"] for chunk in chunks} == {"chat.completion.chunk"}
    text = "".join(c.data["choices"][0]["delta"].get("content", "") for c in chunks[:-1])
    assert text == "Color is"
    finish = chunks[-1]
    assert finish.finish_reason == "stop"
    assert finish.usage is not None  # not asked for: it rides on the finish chunk
    assert finish.usage.completion_tokens == 2


def test_usage_asked_for_comes_as_its_own_chunk() -> None:
    chunks = _stream(
        _event(_OPENING),
        _chunk({"content": "Hi"}),
        _chunk({}, finish="stop"),
        _USAGE,
        stream_options={"include_usage": True},
    )
    assert [c.finish_reason for c in chunks] == [None, "stop", None]
    assert chunks[-1].data["choices"] == []
    assert chunks[-1].usage is not None


def test_a_filter_verdict_in_an_annotation_ends_the_stream_under_its_id() -> None:
    # The Asynchronous Filter's sample stream that is blocked by the filters.
    chunks = _stream(
        _event(_OPENING),
        _chunk({"role": "assistant"}),
        _chunk({"content": "Hey"}),
        _annotation(),
        _annotation(finish="content_filter"),
        _USAGE,
        b"data: [DONE]\n\n",
    )
    finish = chunks[-1]
    assert finish.finish_reason == "content_filter"
    assert finish.data["id"] == _ID
    assert finish.data["object"] == "chat.completion.chunk"
    assert finish.data["choices"][0]["delta"] == {}
    assert len({chunk.data["id"] for chunk in chunks}) == 1


def test_an_event_with_output_but_no_id_is_not_an_annotation() -> None:
    bare = {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]}
    chunks = _stream(_event(_OPENING), _event(bare), _chunk({}, finish="stop"), _USAGE)
    assert chunks[0].data["choices"][0]["delta"]["content"] == "Hi"
    assert chunks[-1].finish_reason == "stop"


@pytest.mark.parametrize("reason", ["stop", "length", "tool_calls", "content_filter"])
def test_finish_reasons_pass_through(reason: str) -> None:
    chunks = _stream(_chunk({"content": "x"}), _chunk({}, finish=reason), _USAGE)
    assert chunks[-1].finish_reason == reason
    assert chunks[-1].data["choices"][0]["finish_reason"] == reason


def test_text_completion_streams_drop_annotations_too() -> None:
    translator = _adapter().translator(
        _deployment(), _request(Operation.COMPLETION, prompt="hi", stream=True)
    )
    text = {"id": "cmpl-1", "object": "text_completion", "created": 1, "model": "m"}
    choice = {"index": 0, "text": "Hi", "finish_reason": None, "logprobs": None}
    chunks = translator.feed(
        _event(_OPENING)
        + _event({**text, "choices": [choice]})
        + _annotation(finish="content_filter")
        + _USAGE
    )
    assert [c.data["id"] for c in chunks] == ["cmpl-1", "cmpl-1"]
    assert chunks[-1].data["choices"][0]["text"] == ""
    assert chunks[-1].data["object"] == "text_completion"


def test_old_versions_stream_without_usage_and_end_at_the_finish() -> None:
    translator = _adapter().translator(_deployment(api_version="2024-06-01"), _request(stream=True))
    chunks = translator.feed(_event(_OPENING) + _chunk({"content": "Hi"}) + _chunk({}, "stop"))
    assert [c.finish_reason for c in chunks] == [None, "stop"]
    assert translator.done


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (b"data: {not json\n\n", StreamInterruptedError),
        (b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n', ServerError),
    ],
)
def test_a_bad_event_is_raised_after_the_chunks_before_it(
    bad: bytes, error: type[ProviderError]
) -> None:
    translator = _adapter().translator(_deployment(), _request(stream=True))
    chunks = translator.feed(_event(_OPENING) + _chunk({"content": "one"}) + bad)
    assert len(chunks) == 1
    with pytest.raises(error) as caught:
        translator.check()
    assert caught.value.message.startswith("azure: ")


# --- errors ---------------------------------------------------------------------------------

_FILTERED = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content management "
    "policy. Please modify your prompt and retry."
)
_RESULTS = {"sexual": {"filtered": True, "severity": "high"}}
_DENIED = "Access denied due to invalid subscription key or wrong API endpoint."


def _error(status: int, body: Any, **headers: str) -> ProviderError:
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    error = _adapter().error(status, raw, headers)
    assert error.message.startswith("azure: ")
    assert error.upstream_status == status
    return error


@pytest.mark.parametrize(
    "body",
    [
        # as Azure sends it today, per the REST reference's error schema
        {
            "error": {
                "inner_error": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_results": _RESULTS,
                },
                "code": "content_filter",
                "message": _FILTERED,
                "param": "prompt",
                "type": None,
            }
        },
        # the older shape
        {
            "error": {
                "message": _FILTERED,
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": _RESULTS,
                },
            }
        },
        # the content-filter documentation's minimal body
        {
            "error": {
                "message": "The response was filtered",
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
            }
        },
    ],
)
def test_the_content_filter_is_a_content_policy_error(body: Any) -> None:
    error = _error(400, body)
    assert type(error) is ContentPolicyError
    assert error.openai_code == "content_policy_violation"
    assert error.param == "prompt"


@pytest.mark.parametrize(
    "body",
    [
        {"statusCode": 401, "message": _DENIED},
        {"error": {"code": "401", "message": _DENIED}},
        {"error": {"code": "Unauthorized", "message": _DENIED}},
    ],
)
def test_every_shape_of_401_is_an_authentication_error(body: Any) -> None:
    error = _error(401, body)
    assert type(error) is AuthenticationError
    assert _DENIED in error.message


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            404,
            {"error": {"code": "DeploymentNotFound", "message": "The API deployment ..."}},
            UpstreamNotFoundError,
        ),
        (404, {"error": {"code": "404", "message": "Resource not found"}}, UpstreamNotFoundError),
        (
            400,
            {"error": {"code": "BadRequest", "message": "API version not supported"}},
            BadRequestError,
        ),
        (
            400,
            {
                "error": {
                    "message": "This model's maximum context length is 128000 tokens.",
                    "type": "invalid_request_error",
                    "param": "messages",
                    "code": "context_length_exceeded",
                }
            },
            ContextWindowExceededError,
        ),
        (403, {"error": {"code": "PermissionDenied", "message": "no"}}, PermissionDeniedError),
        (500, {"error": {"code": "InternalServerError", "message": "oops"}}, ServerError),
        (503, {"error": {"code": "ServiceUnavailable", "message": "later"}}, ServerError),
        (502, b"<html>Bad Gateway</html>", ServerError),
    ],
)
def test_errors_are_classified(status: int, body: Any, kind: type[ProviderError]) -> None:
    assert type(_error(status, body)) is kind


_THROTTLED = {
    "error": {
        "code": "429",
        "message": "Requests to the ChatCompletions_Create Operation under Azure OpenAI API "
        "version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing "
        "tier. Please retry after 37 seconds.",
    }
}


@pytest.mark.parametrize(
    ("headers", "wait"),
    [
        ({"retry-after-ms": "1500", "retry-after": "2"}, 1.5),
        ({"retry-after": "2"}, 2.0),
        ({"x-ratelimit-reset-tokens": "12", "x-ratelimit-reset-requests": "3"}, 12.0),
        ({"x-ratelimit-reset-tokens": "0"}, 37.0),  # then the message's own advice
        ({}, 37.0),
    ],
)
def test_429_says_when_to_retry(headers: dict[str, str], wait: float) -> None:
    error = _error(429, _THROTTLED, **headers)
    assert type(error) is RateLimitError
    assert error.retry_after == wait


def test_429_without_any_advice() -> None:
    error = _error(429, {"error": {"code": "429", "message": "Rate limit is exceeded."}})
    assert error.retry_after is None


def test_keys_never_reach_messages() -> None:
    deployment = _deployment(api_version="2024-06-01", params={"azure_ad_token": "tok-secret"})
    with pytest.raises(InvalidRequestError) as caught:
        _adapter().build(deployment, _request(parallel_tool_calls=False))
    assert KEY not in caught.value.message
    assert "tok-secret" not in caught.value.message


# --- capabilities ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "tools", "vision", "embeddings"),
    [
        ("gpt-4o-mini", True, True, False),
        ("gpt-4.1-nano", True, True, False),
        ("o3-mini", True, False, False),
        ("o1-mini", False, False, False),
        ("text-embedding-3-small", False, False, True),
        ("my-custom-deployment", True, False, False),
    ],
)
def test_capabilities_by_model_family(
    model: str, tools: bool, vision: bool, embeddings: bool
) -> None:
    capabilities = _adapter().capabilities(model)
    assert (capabilities.tools, capabilities.vision, capabilities.embeddings) == (
        tools,
        vision,
        embeddings,
    )
