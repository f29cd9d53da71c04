"""The OpenAI-compatible adapter: requests out, answers, chunks and errors back.

Most tests call the adapter directly; those marked "through its provider" run it inside
`HttpProvider` on a `MockTransport`, as the router calls it, with no socket.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from turnout import Deployment, Request, Secret
from turnout.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ContentPolicyError,
    ContextWindowExceededError,
    PermissionDeniedError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UpstreamNotFoundError,
    UpstreamTimeoutError,
)
from turnout.providers.headers import openai_rate_limits as rate_limit_hints
from turnout.providers.headers import parse_duration
from turnout.providers.headers import retry_after as retry_after_at
from turnout.providers.http import HttpProvider
from turnout.providers.openai import OpenAICompatibleAdapter
from turnout.testing import MockStream, MockTransport
from turnout.upstream import UpstreamReply
from turnout.wire import Operation

DEPLOYMENT = Deployment(
    model_name="chat",
    provider="groq",
    model="llama-3.1-8b-instant",
    api_key=Secret("gsk_secret"),
    params={"temperature": 0.1, "extra_headers": {"x-team": "a"}},
)


def _request(**body: Any) -> Request:
    return Request(model="chat", body={"model": "chat", "messages": [], **body})


def test_build_replaces_the_model_and_keeps_everything_else() -> None:
    adapter = OpenAICompatibleAdapter("groq", environ={})
    call = adapter.build(DEPLOYMENT, _request(temperature=0.9, unknown_field=[1], tags=["eu"]))
    body = msgspec.json.decode(call.body)
    assert call.url == "https://api.groq.com/openai/v1/chat/completions"
    assert body["model"] == "llama-3.1-8b-instant"
    assert body["temperature"] == 0.9  # the caller wins over the deployment's default
    assert body["unknown_field"] == [1]
    assert "tags" not in body  # turnout's own field is not forwarded
    assert call.headers["authorization"] == "Bearer gsk_secret"
    assert call.headers["x-team"] == "a"


def test_deployment_defaults_fill_what_the_caller_left_out() -> None:
    call = OpenAICompatibleAdapter("groq", environ={}).build(DEPLOYMENT, _request())
    assert msgspec.json.decode(call.body)["temperature"] == 0.1


def test_streams_ask_the_upstream_for_usage() -> None:
    adapter = OpenAICompatibleAdapter("openai", environ={"OPENAI_API_KEY": "sk-env"})
    deployment = Deployment(model_name="chat", model="gpt-4o-mini")
    call = adapter.build(deployment, _request(stream=True))
    body = msgspec.json.decode(call.body)
    assert body["stream_options"] == {"include_usage": True}
    assert call.headers["authorization"] == "Bearer sk-env"
    embedding = Request(model="e", body={"input": "x"}, operation=Operation.EMBEDDING)
    assert adapter.build(deployment, embedding).url.endswith("/v1/embeddings")


def test_providers_without_a_default_url_need_one() -> None:
    with pytest.raises(ConfigError, match="needs a base_url"):
        OpenAICompatibleAdapter("vllm", environ={}).build(
            Deployment(model_name="c", model="m", provider="vllm"), _request()
        )


async def test_parse_keeps_the_bytes_and_reads_only_usage() -> None:
    # Through its provider: what it sends, and the reply's very bytes back.
    raw = b'{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4}}'
    transport = MockTransport(lambda call: UpstreamReply(200, {}, raw))
    provider = HttpProvider(OpenAICompatibleAdapter("groq", environ={}), transport)
    answer = await provider.complete(DEPLOYMENT, _request())
    [sent] = transport.requests
    assert sent.url == "https://api.groq.com/openai/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer gsk_secret"
    assert answer.raw is raw
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (3, 4)
    assert answer.body["id"] == "x"


def _error(status: int, body: dict[str, Any] | bytes, **headers: str) -> ProviderError:
    raw = body if isinstance(body, bytes) else msgspec.json.encode(body)
    return OpenAICompatibleAdapter("openai", environ={}).error(status, raw, headers)


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (
            400,
            {"error": {"message": "bad", "code": "context_length_exceeded"}},
            ContextWindowExceededError,
        ),
        (
            400,
            {"error": {"message": "This model's maximum context length is 8192 tokens"}},
            ContextWindowExceededError,
        ),
        (400, {"error": {"message": "x", "code": "content_policy_violation"}}, ContentPolicyError),
        (
            400,
            {"error": {"message": "temperature too high", "param": "temperature"}},
            BadRequestError,
        ),
        (401, {"error": {"message": "Incorrect API key"}}, AuthenticationError),
        (403, {"error": {"message": "no"}}, PermissionDeniedError),
        (404, {"error": {"message": "no model"}}, UpstreamNotFoundError),
        (429, {"error": {"message": "slow"}}, RateLimitError),
        (500, {"error": {"message": "oops"}}, ServerError),
        (503, {"detail": "overloaded"}, ServerError),
        (529, b"<html>overloaded</html>", ServerError),
        (504, {"message": "gateway timeout"}, UpstreamTimeoutError),
    ],
)
def test_errors_are_classified(status: int, body: Any, kind: type[ProviderError]) -> None:
    error = _error(status, body)
    assert type(error) is kind
    assert error.upstream_status == status


def test_error_param_and_message_are_kept() -> None:
    error = _error(400, {"error": {"message": "temperature too high", "param": "temperature"}})
    assert error.param == "temperature"
    assert "temperature too high" in error.message


def test_retry_after_comes_from_headers_in_every_form() -> None:
    assert _error(429, {}, **{"retry-after": "3"}).retry_after == 3.0
    assert _error(429, {}, **{"retry-after-ms": "1500"}).retry_after == 1.5
    assert retry_after_at({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, lambda: 2e9) == 0.0
    assert retry_after_at({}, lambda: 0.0) is None


def test_reset_durations_and_rate_limit_hints() -> None:
    assert parse_duration("6m0s") == 360.0
    assert parse_duration("20ms") == pytest.approx(0.02)
    assert parse_duration("1h2m3.5s") == pytest.approx(3723.5)
    hints = rate_limit_hints(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-remaining-tokens": "1000",
        }
    )
    assert hints is not None
    assert (hints.limit_requests, hints.remaining_requests, hints.reset_requests) == (60, 59, 1.0)
    assert hints.remaining_tokens == 1000
    assert rate_limit_hints({}) is None


def _chunk(content: str | None = None, finish: str | None = None, index: int = 0) -> bytes:
    delta = {"content": content} if content is not None else {}
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return (
        b"data: " + msgspec.json.encode({"id": "c", "choices": [choice], "usage": None}) + b"\n\n"
    )


_USAGE = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":2,"completion_tokens":3}}\n\n'


def test_usage_the_caller_did_not_ask_for_rides_on_the_finish_chunk() -> None:
    translator = OpenAICompatibleAdapter("openai", environ={}).translator(
        DEPLOYMENT, _request(stream=True)
    )
    chunks = translator.feed(_chunk("hi") + _chunk(finish="stop"))
    assert [c.finish_reason for c in chunks] == [None]  # the finish chunk waits for usage
    chunks = translator.feed(_USAGE)
    assert [(c.finish_reason, c.usage) for c in chunks] == [("stop", chunks[0].usage)]
    assert chunks[0].usage is not None
    assert chunks[0].usage.completion_tokens == 3
    assert translator.done  # complete without waiting for [DONE]


def test_usage_the_caller_asked_for_is_forwarded() -> None:
    translator = OpenAICompatibleAdapter("openai", environ={}).translator(
        DEPLOYMENT, _request(stream=True, stream_options={"include_usage": True})
    )
    chunks = translator.feed(_chunk("hi") + _chunk(finish="stop") + _USAGE + b"data: [DONE]\n\n")
    assert [c.finish_reason for c in chunks] == [None, "stop", None]
    assert chunks[-1].usage is not None


def test_all_choices_must_finish_before_the_answer_is_complete() -> None:
    translator = OpenAICompatibleAdapter("mistral", environ={}).translator(
        DEPLOYMENT, _request(stream=True)
    )
    translator.feed(_chunk("a", index=0) + _chunk("b", index=1) + _chunk(finish="stop", index=0))
    assert not translator.done
    translator.feed(_chunk(finish="stop", index=1))
    assert translator.done


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        (b"data: {not json\n\n", StreamInterruptedError),
        (b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n', ServerError),
        (b'data: {"error": {"message": "slow", "type": "rate_limit_error"}}\n\n', RateLimitError),
    ],
)
async def test_a_bad_event_is_raised_after_the_good_chunks_before_it(
    bad: bytes, error: type[ProviderError]
) -> None:
    # Through its provider, the body arriving in pieces that split the events.
    body = _chunk("one") + _chunk("two") + bad + _chunk("three")
    pieces = [body[start : start + 7] for start in range(0, len(body), 7)]
    transport = MockTransport(lambda call: MockStream(pieces))
    provider = HttpProvider(OpenAICompatibleAdapter("openai", environ={}), transport)
    chunks = []
    with pytest.raises(error):
        async for chunk in provider.stream(DEPLOYMENT, _request(stream=True)):
            chunks.append(chunk)
    assert [chunk.data["choices"][0]["delta"]["content"] for chunk in chunks] == ["one", "two"]
    assert transport.open_streams == 0  # the provider let the stream go


def test_capabilities_by_model_family() -> None:
    adapter = OpenAICompatibleAdapter("openai", environ={})
    assert adapter.capabilities("gpt-4o-mini-2024-07-18").vision
    assert not adapter.capabilities("gpt-3.5-turbo").vision
    assert adapter.capabilities("text-embedding-3-small").embeddings
    assert not adapter.capabilities("text-embedding-3-small").tools
    assert not adapter.capabilities("gpt-4o").assistant_prefill
    assert adapter.capabilities("some-local-model").tools


def test_every_choice_keeps_its_finish_chunk_when_usage_is_folded_in() -> None:
    translator = OpenAICompatibleAdapter("openai", environ={}).translator(
        DEPLOYMENT, _request(stream=True, n=2)
    )
    chunks = translator.feed(
        _chunk("a", index=0)
        + _chunk("b", index=1)
        + _chunk(finish="stop", index=0)
        + _chunk(finish="length", index=1)
        + _USAGE
    )
    finishes = [c.finish_reason for c in chunks if c.finish_reason is not None]
    assert finishes == ["stop", "length"]
    assert chunks[-1].usage is not None  # the usage rides on the last one
    assert translator.done
