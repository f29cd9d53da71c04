"""The Gemini stream translator: ``streamGenerateContent?alt=sse`` events (each a whole
``GenerateContentResponse``) into OpenAI ``chat.completion.chunk`` events, with usage placed by
OpenAI's rule."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from turnout import Deployment, Request, Secret
from turnout.errors import ContentPolicyError, ServerError, StreamInterruptedError
from turnout.providers.gemini.adapter import GeminiAdapter
from turnout.testing import ManualClock
from turnout.wire import StreamChunk

DEPLOYMENT = Deployment(
    model_name="chat", provider="gemini", model="gemini-2.0-flash", api_key=Secret("k")
)


def _adapter() -> GeminiAdapter:
    return GeminiAdapter("gemini", {}, ManualClock())


def _chat(**body: Any) -> Request:
    return Request(model="chat", body={"messages": [{"role": "user", "content": "Hi"}], **body})


def _encode(value: Any) -> bytes:
    return msgspec.json.encode(value)


def _event(*candidates: dict[str, Any], usage: dict[str, Any] | None = None) -> bytes:
    body: dict[str, Any] = {"candidates": list(candidates), "responseId": "resp9"}
    if usage is not None:
        body["usageMetadata"] = usage
    return b"data: " + _encode(body) + b"\r\n\r\n"


def _piece(text: str, finish: str | None = None, index: int = 0) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}}
    if finish:
        candidate["finishReason"] = finish
    return {**candidate, "index": index}


USAGE = {"promptTokenCount": 4, "candidatesTokenCount": 2, "totalTokenCount": 6}


def _run(request: Request, *pieces: bytes) -> tuple[list[StreamChunk], Any]:
    translator = _adapter().translator(DEPLOYMENT, request)
    chunks: list[StreamChunk] = []
    for piece in pieces:
        chunks.extend(translator.feed(piece))
        translator.check()
    chunks.extend(translator.finish())
    translator.check()
    return chunks, translator


def test_a_text_stream_with_usage_on_the_finish_chunk() -> None:
    stream = _event(_piece("Hello")) + _event(_piece(" there", "STOP"), usage=USAGE)
    # Split mid-event: the translator must wait for whole events.
    chunks, translator = _run(_chat(stream=True), stream[:17], stream[17:])
    assert translator.done
    deltas = [c.data["choices"][0]["delta"] for c in chunks]
    assert deltas == [{"role": "assistant", "content": "Hello"}, {"content": " there"}, {}]
    assert {c.data["id"] for c in chunks} == {"chatcmpl-resp9"}
    assert all(c.data["object"] == "chat.completion.chunk" for c in chunks)
    assert all(c.data["model"] == "gemini-2.0-flash" for c in chunks)
    finish = chunks[-1]
    assert finish.finish_reason == "stop"
    assert finish.data["choices"][0]["finish_reason"] == "stop"
    assert finish.usage is not None
    assert (finish.usage.prompt_tokens, finish.usage.completion_tokens) == (4, 2)
    assert all(c.usage is None for c in chunks[:-1])


def test_include_usage_adds_a_choiceless_usage_chunk() -> None:
    request = _chat(stream=True, stream_options={"include_usage": True})
    chunks, _ = _run(request, _event(_piece("Hi", "STOP"), usage=USAGE))
    *_, finish, usage = chunks
    assert finish.finish_reason == "stop"
    assert finish.usage is None
    assert usage.data["choices"] == []
    assert usage.data["usage"] == {"prompt_tokens": 4, "completion_tokens": 2, "total_tokens": 6}
    assert usage.usage is not None
    assert usage.usage.total_tokens == 6


def test_a_function_call_streams_as_an_opening_delta_then_its_arguments() -> None:
    call = {"functionCall": {"name": "get_weather", "args": {"city": "Oslo"}}}
    candidate = {"content": {"parts": [call], "role": "model"}, "finishReason": "STOP", "index": 0}
    chunks, _ = _run(_chat(stream=True), _event(candidate, usage=USAGE))
    opening = chunks[0].data["choices"][0]["delta"]
    assert opening["role"] == "assistant"
    [start] = opening["tool_calls"]
    assert start["index"] == 0
    assert start["id"].startswith("call_")
    assert start["type"] == "function"
    assert start["function"] == {"name": "get_weather", "arguments": ""}
    [rest] = chunks[1].data["choices"][0]["delta"]["tool_calls"]
    assert rest == {"index": 0, "function": {"arguments": '{"city":"Oslo"}'}}
    assert chunks[-1].finish_reason == "tool_calls"


def test_several_candidates_finish_together() -> None:
    chunks, translator = _run(
        _chat(stream=True, n=2),
        _event(_piece("a", "STOP", 0), _piece("b", None, 1)),
        _event(_piece("c", "MAX_TOKENS", 1), usage=USAGE),
    )
    finishes = [c for c in chunks if c.finish_reason]
    assert [(c.data["choices"][0]["index"], c.finish_reason) for c in finishes] == [
        (0, "stop"),
        (1, "length"),
    ]
    assert chunks[-1] is finishes[-1]
    assert finishes[-1].usage is not None
    assert translator.done


def test_a_stream_without_a_finish_reason_never_finishes() -> None:
    chunks, translator = _run(_chat(stream=True), _event(_piece("Hel")), _event(_piece("lo")))
    assert not translator.done
    assert all(c.finish_reason is None for c in chunks)


def test_a_malformed_event_fails_after_the_chunks_before_it() -> None:
    translator = _adapter().translator(DEPLOYMENT, _chat(stream=True))
    chunks = translator.feed(_event(_piece("Hi")) + b"data: {not json\r\n\r\n")
    assert [c.data["choices"][0]["delta"].get("content") for c in chunks] == ["Hi"]
    with pytest.raises(StreamInterruptedError, match=r"^gemini: "):
        translator.check()
    assert translator.done


def test_an_error_event_is_classified() -> None:
    error = {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}
    translator = _adapter().translator(DEPLOYMENT, _chat(stream=True))
    translator.feed(b"data: " + _encode(error) + b"\r\n\r\n")
    with pytest.raises(ServerError, match="overloaded"):
        translator.check()


def test_a_blocked_or_filtered_stream_is_a_content_policy_error() -> None:
    blocked = _encode({"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}})
    translator = _adapter().translator(DEPLOYMENT, _chat(stream=True))
    assert translator.feed(b"data: " + blocked + b"\r\n\r\n") == []
    with pytest.raises(ContentPolicyError, match="PROHIBITED_CONTENT"):
        translator.check()
    translator = _adapter().translator(DEPLOYMENT, _chat(stream=True))
    translator.feed(_event({"finishReason": "SAFETY", "index": 0}))
    with pytest.raises(ContentPolicyError, match="withheld"):
        translator.check()


def test_a_filter_after_some_text_finishes_with_content_filter() -> None:
    chunks, _ = _run(_chat(stream=True), _event(_piece("Once")), _event(_piece("", "SAFETY")))
    assert chunks[-1].finish_reason == "content_filter"
