"""The Anthropic adapter's stream translation, fed the event sequences of Anthropic's docs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from turnout import Deployment, Request, Secret
from turnout.errors import (
    ContentPolicyError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from turnout.providers.anthropic.adapter import create_adapter
from turnout.providers.anthropic.stream import AnthropicStreamTranslator
from turnout.testing import ManualClock
from turnout.wire import StreamChunk

DEPLOYMENT = Deployment(
    model_name="chat", provider="anthropic", model="claude-sonnet-4-5", api_key=Secret("k")
)
START = {
    "type": "message_start",
    "message": {
        "id": "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY",
        "type": "message",
        "role": "assistant",
        "content": [],
        "model": "claude-sonnet-4-5-20250929",
        "stop_reason": None,
        "stop_sequence": None,
        "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1},
    },
}


def _sse(*events: dict[str, Any]) -> bytes:
    return b"".join(
        f"event: {event['type']}\ndata: {json.dumps(event)}\n\n".encode() for event in events
    )


def _text_block(index: int, *pieces: str) -> list[dict[str, Any]]:
    return [
        {
            "type": "content_block_start",
            "index": index,
            "content_block": {"type": "text", "text": ""},
        },
        {"type": "ping"},
        *(
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "text_delta", "text": p},
            }
            for p in pieces
        ),
        {"type": "content_block_stop", "index": index},
    ]


def _tool_block(index: int, call_id: str, *fragments: str) -> list[dict[str, Any]]:
    block = {"type": "tool_use", "id": call_id, "name": "get_weather", "input": {}}
    return [
        {"type": "content_block_start", "index": index, "content_block": block},
        *(
            {
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "input_json_delta", "partial_json": f},
            }
            for f in ("", *fragments)
        ),
        {"type": "content_block_stop", "index": index},
    ]


def _end(
    stop_reason: str = "end_turn", output_tokens: int = 15, **delta: Any
) -> list[dict[str, Any]]:
    return [
        {
            "type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": None, **delta},
            "usage": {"output_tokens": output_tokens},
        },
        {"type": "message_stop"},
    ]


def _translator(**body: Any) -> AnthropicStreamTranslator:
    adapter = create_adapter("anthropic", {}, ManualClock(epoch=1_750_000_000.0))
    return adapter.translator(DEPLOYMENT, Request(model="chat", body={"stream": True, **body}))


def _run(translator: AnthropicStreamTranslator, data: bytes, *, step: int = 0) -> list[StreamChunk]:
    pieces = [data[i : i + step] for i in range(0, len(data), step)] if step else [data]
    chunks: list[StreamChunk] = []
    for piece in pieces:
        chunks.extend(translator.feed(piece))
        translator.check()
    chunks.extend(translator.finish())
    translator.check()
    return chunks


def _deltas(chunks: list[StreamChunk]) -> list[dict[str, Any]]:
    return [chunk.data["choices"][0]["delta"] for chunk in chunks if chunk.data["choices"]]


@pytest.mark.parametrize("step", [0, 1, 7])
def test_a_text_stream(step: int) -> None:
    translator = _translator()
    data = _sse(START, *_text_block(0, "Hello", "!"), *_end())
    chunks = _run(translator, data, step=step)
    assert translator.done
    assert _deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": "!"},
        {},
    ]
    assert {chunk.data["id"] for chunk in chunks} == {"msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY"}
    assert {chunk.data["object"] for chunk in chunks} == {"chat.completion.chunk"}
    assert {chunk.data["model"] for chunk in chunks} == {"claude-sonnet-4-5"}
    assert {chunk.data["created"] for chunk in chunks} == {1_750_000_000}
    finish = chunks[-1]
    assert finish.finish_reason == "stop"
    assert finish.data["choices"][0]["finish_reason"] == "stop"
    # Not asked for a usage chunk: the usage rides on the finish chunk, not in its data.
    assert finish.usage is not None
    assert (finish.usage.prompt_tokens, finish.usage.completion_tokens) == (30, 15)
    assert finish.usage.cached_tokens == 5
    assert "usage" not in finish.data
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_usage_chunk_when_the_caller_asked() -> None:
    translator = _translator(stream_options={"include_usage": True})
    chunks = _run(translator, _sse(START, *_text_block(0, "Hi"), *_end(output_tokens=3)))
    finish, usage = chunks[-2:]
    assert finish.finish_reason == "stop" and finish.usage is None
    assert usage.data["choices"] == []
    assert usage.data["usage"] == {
        "prompt_tokens": 30,
        "completion_tokens": 3,
        "total_tokens": 33,
        "prompt_tokens_details": {"cached_tokens": 5},
    }
    assert usage.usage is not None and usage.usage.total_tokens == 33
    assert usage.data["id"] == finish.data["id"]


def test_tool_calls_are_indexed_over_calls_and_their_arguments_arrive_in_fragments() -> None:
    data = _sse(
        START,
        *_text_block(0, "Let me check."),
        *_tool_block(1, "toolu_01", '{"city":', ' "Paris"}'),
        *_tool_block(2, "toolu_02", '{"city": "Oslo"}'),
        *_end("tool_use"),
    )
    chunks = _run(_translator(), data)
    calls = [call for delta in _deltas(chunks) for call in delta.get("tool_calls", [])]
    assert calls[0] == {
        "index": 0,
        "id": "toolu_01",
        "type": "function",
        "function": {"name": "get_weather", "arguments": ""},
    }
    assert calls[1:3] == [
        {"index": 0, "function": {"arguments": '{"city":'}},
        {"index": 0, "function": {"arguments": ' "Paris"}'}},
    ]
    assert calls[3]["index"] == 1 and calls[3]["id"] == "toolu_02"
    assert chunks[-1].finish_reason == "tool_calls"


def test_a_tool_call_first_opens_with_the_role_and_no_content() -> None:
    chunks = _run(_translator(), _sse(START, *_tool_block(0, "toolu_01", "{}"), *_end("tool_use")))
    first = _deltas(chunks)[0]
    assert first["role"] == "assistant" and first["content"] is None
    assert first["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ""}


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [("max_tokens", "length"), ("stop_sequence", "stop"), ("refusal", "content_filter")],
)
def test_finish_reasons(stop_reason: str, finish_reason: str) -> None:
    chunks = _run(_translator(), _sse(START, *_text_block(0, "Hello.."), *_end(stop_reason)))
    assert chunks[-1].finish_reason == finish_reason


def test_a_refusal_before_any_content_fails_the_attempt() -> None:
    details = {"type": "refusal", "category": "cyber", "explanation": "Declined."}
    translator = _translator()
    assert (
        translator.feed(_sse(START, {"type": "ping"}, *_end("refusal", stop_details=details))) == []
    )
    with pytest.raises(ContentPolicyError, match=r"^anthropic: the model refused to answer"):
        translator.check()
    assert translator.done


@pytest.mark.parametrize(
    ("error_type", "expected", "status"),
    [
        ("overloaded_error", ServerError, 529),
        ("api_error", ServerError, 500),
        ("rate_limit_error", RateLimitError, 429),
        ("mystery_error", StreamInterruptedError, None),
    ],
)
def test_an_error_event_ends_the_stream_after_the_chunks_before_it(
    error_type: str, expected: type[ProviderError], status: int | None
) -> None:
    translator = _translator()
    error = {"type": "error", "error": {"type": error_type, "message": "Overloaded"}}
    chunks = translator.feed(_sse(START, *_text_block(0, "Hel"), error, *_end()))
    assert _deltas(chunks) == [{"role": "assistant", "content": ""}, {"content": "Hel"}]
    with pytest.raises(expected) as caught:
        translator.check()
    assert caught.value.message == "anthropic: Overloaded"
    assert caught.value.upstream_status == status
    assert translator.done


def test_a_malformed_event_is_an_interruption() -> None:
    translator = _translator()
    data = _sse(START, *_text_block(0, "Hi")) + b"event: content_block_delta\ndata: {not json\n\n"
    chunks = translator.feed(data + _sse(*_end()))
    assert len(chunks) == 2
    with pytest.raises(StreamInterruptedError, match=r"^anthropic: "):
        translator.check()


def test_thinking_blocks_and_unknown_events_are_skipped() -> None:
    thinking = [
        {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "thinking", "thinking": ""},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Hmm"},
        },
        {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "signature_delta", "signature": "s"},
        },
        {"type": "content_block_stop", "index": 0},
        {"type": "brand_new_event", "whatever": 1},
    ]
    chunks = _run(_translator(), _sse(START, *thinking, *_text_block(1, "Yes"), *_end()))
    assert _deltas(chunks) == [{"role": "assistant", "content": ""}, {"content": "Yes"}, {}]


def test_later_usage_counts_override_earlier_ones_but_nulls_do_not() -> None:
    end = {
        "type": "message_delta",
        "delta": {"stop_reason": "end_turn"},
        "usage": {"input_tokens": None, "cache_read_input_tokens": 7, "output_tokens": 9},
    }
    chunks = _run(_translator(), _sse(START, *_text_block(0, "x"), end, {"type": "message_stop"}))
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.cached_tokens, usage.completion_tokens) == (32, 7, 9)


def test_a_body_that_ends_without_message_stop_is_not_done() -> None:
    translator = _translator()
    chunks = _run(translator, _sse(START, *_text_block(0, "Hi")))
    assert not translator.done
    assert all(chunk.finish_reason is None for chunk in chunks)
