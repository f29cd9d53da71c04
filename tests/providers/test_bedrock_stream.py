"""ConverseStream's binary event stream into OpenAI chunks: text, tool calls, usage, failures.

Frames are written by the fake's encoder (prelude, headers, JSON payload, CRCs) and read by the
adapter through botocore's decoder, so these tests also check that the two agree.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakes.fake_bedrock.eventstream import corrupt, event, exception, frame
from turnout import Deployment, Request
from turnout.errors import (
    BadRequestError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
)
from turnout.providers.bedrock.adapter import create_adapter
from turnout.providers.bedrock.stream import ConverseStreamTranslator
from turnout.testing import ManualClock
from turnout.wire import StreamChunk

DEPLOYMENT = Deployment(
    model_name="chat", provider="bedrock", model="anthropic.claude-3-haiku-20240307-v1:0"
)
USAGE = {"inputTokens": 7, "outputTokens": 3, "totalTokens": 12, "cacheReadInputTokens": 2}


def _translator(include_usage: bool = False) -> ConverseStreamTranslator:
    body: dict[str, Any] = {"model": "chat", "messages": [], "stream": True}
    if include_usage:
        body["stream_options"] = {"include_usage": True}
    adapter = create_adapter("bedrock", {}, ManualClock())
    translator = adapter.translator(DEPLOYMENT, Request(model="chat", body=body))
    assert isinstance(translator, ConverseStreamTranslator)
    return translator


def _text_stream(*words: str, stop: str = "end_turn") -> bytes:
    frames = [event("messageStart", {"role": "assistant", "p": "abc"})]
    frames += [
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": word}, "p": "x"})
        for word in words
    ]
    frames += [
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("messageStop", {"stopReason": stop}),
        event("metadata", {"usage": USAGE, "metrics": {"latencyMs": 100}}),
    ]
    return b"".join(frames)


def _run(translator: ConverseStreamTranslator, pieces: list[bytes]) -> list[StreamChunk]:
    chunks: list[StreamChunk] = []
    for piece in pieces:
        chunks += translator.feed(piece)
        translator.check()
        if translator.done:
            return chunks
    return chunks + translator.finish()


def _deltas(chunks: list[StreamChunk]) -> list[dict[str, Any]]:
    return [chunk.data["choices"][0]["delta"] for chunk in chunks if chunk.data["choices"]]


def test_a_text_stream_without_include_usage_puts_usage_on_the_finish_chunk() -> None:
    translator = _translator()
    chunks = _run(translator, [_text_stream("Hello", " there")])
    assert translator.done
    assert _deltas(chunks) == [
        {"role": "assistant", "content": ""},
        {"content": "Hello"},
        {"content": " there"},
        {},
    ]
    assert {chunk.data["id"] for chunk in chunks} == {chunks[0].data["id"]}
    assert all(chunk.data["object"] == "chat.completion.chunk" for chunk in chunks)
    assert all(chunk.data["model"] == DEPLOYMENT.model for chunk in chunks)
    finish = chunks[-1]
    assert finish.finish_reason == "stop"
    assert finish.data["choices"][0]["finish_reason"] == "stop"
    assert finish.usage is not None
    assert (finish.usage.prompt_tokens, finish.usage.completion_tokens) == (9, 3)
    assert finish.usage.cached_tokens == 2
    assert "usage" not in finish.data
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_with_include_usage_a_choices_less_chunk_carries_it() -> None:
    chunks = _run(_translator(include_usage=True), [_text_stream("Hi")])
    finish, usage = chunks[-2], chunks[-1]
    assert finish.finish_reason == "stop"
    assert finish.usage is None
    assert usage.data["choices"] == []
    assert usage.data["usage"] == {
        "prompt_tokens": 9,
        "completion_tokens": 3,
        "total_tokens": 12,
        "prompt_tokens_details": {"cached_tokens": 2},
    }
    assert usage.usage is not None
    assert usage.usage.total_tokens == 12


@given(st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=30))
def test_frames_split_anywhere_give_the_same_chunks(cuts: list[int]) -> None:
    body = _text_stream("one", " two", " three")
    pieces, start = [], 0
    for size in cuts:
        pieces.append(body[start : start + size])
        start += size
    pieces.append(body[start:])
    whole = [chunk.data["choices"] for chunk in _run(_translator(), [body])]
    split = [chunk.data["choices"] for chunk in _run(_translator(), pieces)]
    assert split == whole


def test_a_tool_call_streams_its_name_once_and_its_arguments_in_fragments() -> None:
    start = {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather"}}
    frames = [
        event("messageStart", {"role": "assistant"}),
        event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Checking."}}),
        event("contentBlockStop", {"contentBlockIndex": 0}),
        event("contentBlockStart", {"contentBlockIndex": 1, "start": start}),
        event(
            "contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": '{"ci'}}}
        ),
        event(
            "contentBlockDelta",
            {"contentBlockIndex": 1, "delta": {"toolUse": {"input": 'ty":"Oslo"}'}}},
        ),
        event("contentBlockStop", {"contentBlockIndex": 1}),
        event("messageStop", {"stopReason": "tool_use"}),
        event("metadata", {"usage": USAGE, "metrics": {"latencyMs": 1}}),
    ]
    chunks = _run(_translator(), [b"".join(frames)])
    deltas = _deltas(chunks)
    assert deltas[2] == {
        "tool_calls": [
            {
                "index": 0,
                "id": "tooluse_1",
                "type": "function",
                "function": {"name": "get_weather", "arguments": ""},
            }
        ]
    }
    assert deltas[3] == {"tool_calls": [{"index": 0, "function": {"arguments": '{"ci'}}]}
    arguments = "".join(
        call["function"]["arguments"] for delta in deltas for call in delta.get("tool_calls", [])
    )
    assert arguments == '{"city":"Oslo"}'
    assert chunks[-1].finish_reason == "tool_calls"


def test_an_exception_frame_fails_the_stream_after_the_chunks_before_it() -> None:
    translator = _translator()
    body = _text_stream("Hello")
    cut = body.index(event("contentBlockStop", {"contentBlockIndex": 0}))
    chunks = translator.feed(body[:cut] + exception("throttlingException", "Too many requests"))
    assert _deltas(chunks) == [{"role": "assistant", "content": ""}, {"content": "Hello"}]
    with pytest.raises(RateLimitError, match="bedrock: throttlingException: Too many requests"):
        translator.check()
    assert translator.done


@pytest.mark.parametrize(
    ("member", "expected"),
    [
        ("modelStreamErrorException", ServerError),
        ("internalServerException", ServerError),
        ("serviceUnavailableException", ServerError),
        ("validationException", BadRequestError),
        ("throttlingException", RateLimitError),
    ],
)
def test_each_stream_exception_is_classified(member: str, expected: type[ProviderError]) -> None:
    translator = _translator()
    translator.feed(exception(member, "failed"))
    with pytest.raises(expected, match=f"{member}: failed"):
        translator.check()


def test_a_frame_that_fails_its_checksum_interrupts_the_stream() -> None:
    translator = _translator()
    good = event("messageStart", {"role": "assistant"})
    chunks = translator.feed(good + corrupt(event("contentBlockDelta", {"delta": {"text": "x"}})))
    assert len(chunks) == 1
    with pytest.raises(StreamInterruptedError, match="malformed event-stream frame"):
        translator.check()


def test_error_frames_and_undecodable_payloads_fail_too() -> None:
    translator = _translator()
    headers = {
        ":message-type": "error",
        ":error-code": "ThrottlingException",
        ":error-message": "no",
    }
    translator.feed(frame(headers, b""))
    with pytest.raises(RateLimitError):
        translator.check()
    broken = _translator()
    broken.feed(frame({":message-type": "event", ":event-type": "messageStop"}, b"{not json"))
    with pytest.raises(StreamInterruptedError, match="malformed stream event"):
        broken.check()


def test_tool_input_for_a_block_that_never_started_is_malformed() -> None:
    translator = _translator()
    translator.feed(
        event("contentBlockDelta", {"contentBlockIndex": 3, "delta": {"toolUse": {"input": "{"}}})
    )
    with pytest.raises(StreamInterruptedError, match="no tool call"):
        translator.check()


def test_a_guardrail_at_the_end_of_a_stream_is_a_content_filter_finish() -> None:
    chunks = _run(_translator(), [_text_stream("Sorry.", stop="guardrail_intervened")])
    assert chunks[-1].finish_reason == "content_filter"


def test_malformed_output_at_the_end_of_a_stream_interrupts_it() -> None:
    translator = _translator()
    translator.feed(_text_stream("{", stop="malformed_tool_use"))
    with pytest.raises(StreamInterruptedError, match="malformed_tool_use"):
        translator.check()


def test_a_body_that_ends_before_metadata_hands_over_the_held_finish_chunk() -> None:
    body = _text_stream("Hi")
    translator = _translator()
    chunks = translator.feed(
        body[: body.index(event("metadata", {"usage": USAGE, "metrics": {"latencyMs": 100}}))]
    )
    assert not translator.done
    assert chunks[-1].data["choices"][0]["delta"] == {"content": "Hi"}
    [finish] = translator.finish()
    assert finish.finish_reason == "stop"
    assert finish.usage is None


def test_unknown_events_are_ignored_and_nothing_is_read_past_the_end() -> None:
    translator = _translator()
    extra = event("somethingNew", {"x": 1})
    chunks = translator.feed(
        extra + _text_stream("Hi") + event("messageStart", {"role": "assistant"})
    )
    assert translator.done
    assert len(chunks) == 3
    assert translator.feed(_text_stream("again")) == []


def test_parallel_tool_calls_get_consecutive_indexes() -> None:
    frames = [event("messageStart", {"role": "assistant"})]
    for block, name in enumerate(["first", "second"]):
        start = {"toolUse": {"toolUseId": f"tooluse_{block}", "name": name}}
        delta = {"toolUse": {"input": "{}"}}
        frames += [
            event("contentBlockStart", {"contentBlockIndex": block, "start": start}),
            event("contentBlockDelta", {"contentBlockIndex": block, "delta": delta}),
            event("contentBlockStop", {"contentBlockIndex": block}),
        ]
    frames.append(event("messageStop", {"stopReason": "tool_use"}))
    calls = [
        call
        for delta in _deltas(_run(_translator(), [b"".join(frames)]))
        for call in delta.get("tool_calls", [])
    ]
    assert [(call["index"], call.get("id")) for call in calls] == [
        (0, "tooluse_0"),
        (0, None),
        (1, "tooluse_1"),
        (1, None),
    ]
