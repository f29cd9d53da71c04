"""The Anthropic adapter: requests out, answers back (errors and rate limits:
test_anthropic_errors; streams: test_anthropic_stream)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from turnout import Deployment, Request, Secret
from turnout.errors import (
    ContentPolicyError,
    InvalidRequestError,
    ServerError,
    UnsupportedParameterError,
)
from turnout.providers.anthropic.adapter import AnthropicAdapter, create_adapter
from turnout.providers.http import HttpProvider
from turnout.providers.registry import native_adapter
from turnout.testing import ManualClock, MockTransport
from turnout.upstream import UpstreamReply
from turnout.wire import Operation

CLOCK = ManualClock(epoch=1_750_000_000.0)
DEPLOYMENT = Deployment(
    model_name="chat",
    provider="anthropic",
    model="claude-sonnet-4-5",
    api_key=Secret("sk-ant-secret"),
)
PIXEL = "iVBORw0KGgo="
WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def _adapter(environ: dict[str, str] | None = None) -> AnthropicAdapter:
    return create_adapter("anthropic", environ or {}, CLOCK)


def _native(deployment: Deployment = DEPLOYMENT, **body: Any) -> dict[str, Any]:
    body.setdefault("messages", [{"role": "user", "content": "Hi"}])
    call = _adapter().build(deployment, Request(model="chat", body={"model": "chat", **body}))
    decoded: dict[str, Any] = msgspec.json.decode(call.body)
    return decoded


def _with(**changes: Any) -> Deployment:
    return msgspec.structs.replace(DEPLOYMENT, **changes)


# -- building the request -------------------------------------------------------------------


def test_build_posts_to_messages_with_the_documented_headers() -> None:
    adapter = _adapter()
    call = adapter.build(
        DEPLOYMENT, Request(model="chat", body={"messages": [{"role": "user", "content": "Hi"}]})
    )
    assert call.url == "https://api.anthropic.com/v1/messages"
    assert call.method == "POST"
    assert call.headers["x-api-key"] == "sk-ant-secret"
    assert call.headers["anthropic-version"] == "2023-06-01"
    assert call.headers["content-type"] == "application/json"
    assert msgspec.json.decode(call.body) == {
        "model": "claude-sonnet-4-5",
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 4096,
    }


@pytest.mark.parametrize(
    ("base_url", "url"),
    [
        ("http://127.0.0.1:9/", "http://127.0.0.1:9/v1/messages"),
        ("https://proxy.example/anthropic/v1", "https://proxy.example/anthropic/v1/messages"),
        ("https://proxy.example/v1/messages", "https://proxy.example/v1/messages"),
    ],
)
def test_base_urls_with_or_without_the_version_path(base_url: str, url: str) -> None:
    assert _adapter().url(_with(base_url=base_url)) == url


def test_key_from_the_environment_version_and_extras_from_the_deployment() -> None:
    deployment = Deployment(
        model_name="chat",
        provider="anthropic",
        model="claude-opus-4-1",
        api_version="2024-01-01",
        params={
            "extra_headers": {"anthropic-beta": "prompt-caching-2024-07-31"},
            "extra_body": {"container": "c1"},
            "temperature": 0.2,
        },
    )
    adapter = _adapter({"ANTHROPIC_API_KEY": "sk-ant-env"})
    call = adapter.build(
        deployment, Request(model="chat", body={"messages": [{"role": "user", "content": "x"}]})
    )
    body = msgspec.json.decode(call.body)
    assert call.headers["x-api-key"] == "sk-ant-env"
    assert call.headers["anthropic-version"] == "2024-01-01"
    assert call.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert body["container"] == "c1"
    assert body["temperature"] == 0.2  # a deployment default
    assert "extra_headers" not in body and "extra_body" not in body
    assert _native(deployment, temperature=0.7)["temperature"] == 0.7  # the caller wins


def test_system_and_developer_messages_become_the_top_level_system() -> None:
    one = _native(
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    )
    assert one["system"] == "Be brief."
    assert one["messages"] == [{"role": "user", "content": "Hi"}]
    cached = {"type": "text", "text": "Long rules", "cache_control": {"type": "ephemeral"}}
    several = _native(
        messages=[
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "developer", "content": [cached]},
        ]
    )
    assert several["system"] == [{"type": "text", "text": "Be brief."}, cached]


def test_consecutive_turns_merge_and_tool_results_form_one_user_turn() -> None:
    body = _native(
        messages=[
            {"role": "user", "content": "Weather in Paris"},
            {"role": "user", "content": "and Oslo?"},
            {
                "role": "assistant",
                "content": "Checking.",
                "tool_calls": [
                    {
                        "id": "t1",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                    },
                    {
                        "id": "t2",
                        "type": "function",
                        "function": {"name": "get_weather", "arguments": ""},
                    },
                ],
            },
            {"role": "tool", "tool_call_id": "t1", "content": "Sunny"},
            {"role": "tool", "tool_call_id": "t2", "content": [{"type": "text", "text": "Rain"}]},
            {"role": "user", "content": "Thanks, and tomorrow?"},
            {"role": "assistant", "content": ""},
        ],
        tools=[WEATHER],
    )
    assert body["messages"] == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Weather in Paris"},
                {"type": "text", "text": "and Oslo?"},
            ],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Checking."},
                {"type": "tool_use", "id": "t1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "t2", "name": "get_weather", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": "Sunny"},
                {
                    "type": "tool_result",
                    "tool_use_id": "t2",
                    "content": [{"type": "text", "text": "Rain"}],
                },
                {"type": "text", "text": "Thanks, and tomorrow?"},
            ],
        },
    ]


def test_tool_results_go_before_text_in_their_user_turn() -> None:
    body = _native(
        messages=[
            {"role": "user", "content": "Go"},
            {
                "role": "assistant",
                "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
                ],
            },
            {"role": "user", "content": "(note)"},
            {"role": "tool", "tool_call_id": "t1", "content": "done"},
        ]
    )
    assert [block["type"] for block in body["messages"][2]["content"]] == ["tool_result", "text"]


def test_a_final_assistant_message_is_sent_as_a_prefill() -> None:
    body = _native(
        messages=[
            {"role": "user", "content": "Pick A or B"},
            {"role": "assistant", "content": "The answer is ("},
        ]
    )
    assert body["messages"][-1] == {"role": "assistant", "content": "The answer is ("}


def test_images_by_data_url_and_by_url_and_pdfs_by_data_url() -> None:
    parts = [
        {"type": "text", "text": "Compare"},
        {
            "type": "image_url",
            "image_url": {"url": f"data:image/png;base64,{PIXEL}", "detail": "low"},
        },
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg"}},
        {
            "type": "file",
            "file": {"file_data": "data:application/pdf;base64,JVBERi0=", "filename": "a.pdf"},
        },
    ]
    content = _native(messages=[{"role": "user", "content": parts}])["messages"][0]["content"]
    assert content[1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PIXEL}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}},
        {
            "type": "document",
            "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0="},
        },
    ]


@pytest.mark.parametrize(
    "part",
    [
        {"type": "image_url", "image_url": {"url": "data:image/png,not-base64"}},
        {"type": "image_url", "image_url": {"url": "ftp://example.com/cat.png"}},
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
        {"type": "file", "file": {"file_id": "file-abc"}},
    ],
)
def test_content_anthropic_cannot_take_is_refused(part: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequestError) as caught:
        _native(messages=[{"role": "user", "content": [part]}])
    assert caught.value.param == "messages"
    assert caught.value.message.startswith("anthropic: ")


def test_tools_and_each_tool_choice() -> None:
    body = _native(tools=[WEATHER])
    assert body["tools"] == [
        {
            "name": "get_weather",
            "input_schema": WEATHER["function"]["parameters"],
            "description": "The weather in a city",
        }
    ]
    assert "tool_choice" not in body
    choices = {
        "auto": {"type": "auto"},
        "required": {"type": "any"},
        "none": {"type": "none"},
    }
    for openai_choice, native in choices.items():
        assert _native(tools=[WEATHER], tool_choice=openai_choice)["tool_choice"] == native
    named = {"type": "function", "function": {"name": "get_weather"}}
    assert _native(tools=[WEATHER], tool_choice=named)["tool_choice"] == {
        "type": "tool",
        "name": "get_weather",
    }
    serial = _native(tools=[WEATHER], parallel_tool_calls=False)
    assert serial["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    bare = {"type": "function", "function": {"name": "now"}}
    assert _native(tools=[bare])["tools"][0]["input_schema"] == {"type": "object", "properties": {}}


def test_sampling_limits_stops_user_and_stream() -> None:
    body = _native(
        max_completion_tokens=50,
        max_tokens=999,
        temperature=0.3,
        top_p=0.9,
        stop="END",
        user="user-42",
        stream=True,
        stream_options={"include_usage": True},
        top_k=5,
        tags=["eu"],
    )
    assert body["max_tokens"] == 50
    assert (body["temperature"], body["top_p"], body["top_k"]) == (0.3, 0.9, 5)
    assert body["stop_sequences"] == ["END"]
    assert body["metadata"] == {"user_id": "user-42"}
    assert body["stream"] is True
    assert "stream_options" not in body and "tags" not in body
    assert _native(max_tokens=10, stop=["a", "b"])["max_tokens"] == 10
    assert _native(stop=["a", "b"])["stop_sequences"] == ["a", "b"]


@pytest.mark.parametrize(
    ("param", "value"),
    [
        ("n", 2),
        ("seed", 7),
        ("logprobs", True),
        ("presence_penalty", 0.5),
        ("metadata", {"user_id": "u1", "team": "a"}),
        ("functions", [{"name": "f"}]),
    ],
)
def test_parameters_anthropic_lacks_are_refused_unless_dropped(param: str, value: Any) -> None:
    # Refused as unsupported (not as the caller's error), so the router tries elsewhere.
    with pytest.raises(UnsupportedParameterError) as caught:
        _native(**{param: value})
    assert caught.value.param == param
    assert caught.value.message.startswith("anthropic: ")
    assert "sk-ant-secret" not in caught.value.message
    body = _native(_with(drop_params=True), **{param: value})
    assert param not in body


def test_neutral_values_of_missing_parameters_pass() -> None:
    body = _native(
        n=1,
        presence_penalty=0,
        frequency_penalty=0.0,
        logprobs=False,
        seed=None,
        response_format={"type": "text"},
    )
    assert set(body) == {"model", "messages", "max_tokens"}


def test_tool_call_arguments_must_be_a_json_object() -> None:
    call = {"id": "t1", "type": "function", "function": {"name": "f", "arguments": "[1, 2]"}}
    with pytest.raises(InvalidRequestError, match="not a JSON object"):
        _native(
            messages=[{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [call]}]
        )


def test_embeddings_and_text_completions_are_refused_naming_the_model() -> None:
    for operation in (Operation.EMBEDDING, Operation.COMPLETION):
        request = Request(model="e", body={"input": "x", "prompt": "x"}, operation=operation)
        with pytest.raises(InvalidRequestError) as caught:
            _adapter().build(DEPLOYMENT, request)
        assert caught.value.param == "model"


def test_the_registry_builds_it_and_capabilities_follow_the_model() -> None:
    adapter = native_adapter("anthropic", environ={}, clock=CLOCK)
    assert isinstance(adapter, AnthropicAdapter)
    claude_4 = adapter.capabilities("claude-sonnet-4-5-20250929")
    assert (claude_4.tools, claude_4.vision, claude_4.assistant_prefill) == (True, True, True)
    # JSON mode through a forced tool (`anthropic_json_mode`).
    assert (claude_4.embeddings, claude_4.json_mode) == (False, True)
    assert adapter.capabilities("claude-3-5-haiku-20241022").vision
    assert not adapter.capabilities("claude-2.1").tools


# -- parsing answers ------------------------------------------------------------------------


def _parse(message: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
    body = msgspec.json.encode(message)
    request = Request(model="chat", body={})
    return _adapter().parse(DEPLOYMENT, request, body, headers or {})


def _message(
    content: list[dict[str, Any]], stop_reason: str = "end_turn", **extra: Any
) -> dict[str, Any]:
    # The shape of the Messages API reference's example answer.
    return {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {"input_tokens": 2095, "output_tokens": 503},
        **extra,
    }


async def test_parse_a_text_answer() -> None:
    # Through its provider on a `MockTransport`: the call sent and the answer read back.
    message = _message([{"type": "text", "text": "Hi! "}, {"type": "text", "text": "I'm Claude."}])
    headers = {"anthropic-ratelimit-requests-remaining": "49"}
    transport = MockTransport(
        lambda call: UpstreamReply(200, headers, msgspec.json.encode(message))
    )
    request = Request(model="chat", body={"messages": [{"role": "user", "content": "Hi"}]})
    answer = await HttpProvider(_adapter(), transport).complete(DEPLOYMENT, request)
    [sent] = transport.requests
    assert sent.url == "https://api.anthropic.com/v1/messages"
    assert sent.headers["x-api-key"] == "sk-ant-secret"
    assert answer.rate_limits is not None
    assert answer.rate_limits.remaining_requests == 49
    assert answer.body == {
        "id": "msg_013Zva2CMHLNnXjNJJKqJ2EF",
        "object": "chat.completion",
        "created": int(CLOCK.wall()),
        "model": "claude-sonnet-4-5",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hi! I'm Claude.", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598},
    }
    assert (answer.usage.prompt_tokens, answer.usage.completion_tokens) == (2095, 503)


def test_parse_tool_use_blocks_into_tool_calls() -> None:
    blocks: list[dict[str, Any]] = [
        {"type": "thinking", "thinking": "hmm", "signature": "s"},
        {"type": "tool_use", "id": "toolu_01A", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    message = _parse(_message(blocks, "tool_use")).body["choices"][0]
    assert message["finish_reason"] == "tool_calls"
    assert message["message"]["content"] is None
    [call] = message["message"]["tool_calls"]
    assert call == {
        "id": "toolu_01A",
        "type": "function",
        "function": {"name": "get_weather", "arguments": '{"city":"Paris"}'},
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("model_context_window_exceeded", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("something_new", "stop"),
    ],
)
def test_each_stop_reason(stop_reason: str, finish_reason: str) -> None:
    answer = _parse(_message([{"type": "text", "text": "Hello.."}], stop_reason))
    assert answer.body["choices"][0]["finish_reason"] == finish_reason


def test_cache_reads_are_cached_prompt_tokens_and_cache_writes_prompt_tokens() -> None:
    usage = {
        "input_tokens": 10,
        "cache_creation_input_tokens": 200,
        "cache_read_input_tokens": 1000,
        "output_tokens": 5,
    }
    answer = _parse(_message([{"type": "text", "text": "ok"}], usage=usage))
    assert (answer.usage.prompt_tokens, answer.usage.cached_tokens) == (1210, 1000)
    assert answer.body["usage"]["prompt_tokens_details"] == {"cached_tokens": 1000}


def test_a_refusal_with_nothing_said_is_a_content_policy_error() -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "Declined: cyber harm."}
    with pytest.raises(ContentPolicyError) as caught:
        _parse(_message([], "refusal", stop_details=details))
    assert (
        caught.value.message
        == "anthropic: the model refused to answer (stop_reason `refusal`): Declined: cyber harm."
    )
    assert caught.value.status == 400 and caught.value.openai_code == "content_policy_violation"


def test_an_answer_that_is_not_a_message_is_a_server_error() -> None:
    with pytest.raises(ServerError, match=r"^anthropic: "):
        _adapter().parse(DEPLOYMENT, Request(model="c", body={}), b"<html>", {})
