"""Rebuilding what the caller saw, asking for the rest, and stitching it on seamlessly."""

from __future__ import annotations

from typing import Any

from turnout.router.continuation import (
    CONTINUE_INSTRUCTION,
    Rewriter,
    Transcript,
    added_prompt_tokens,
    continuation_request,
)
from turnout.wire import Request, StreamChunk, Usage


def _chunk(
    content: str | None = None,
    *,
    role: bool = False,
    finish: str | None = None,
    tool: bool = False,
    index: int = 0,
    chunk_id: str = "chatcmpl-1",
) -> StreamChunk:
    delta: dict[str, Any] = {}
    if role:
        delta["role"] = "assistant"
    if content is not None:
        delta["content"] = content
    if tool:
        delta["tool_calls"] = [{"index": 0, "function": {"arguments": "{"}}]
    data = {
        "id": chunk_id,
        "object": "chat.completion.chunk",
        "created": 100,
        "model": "m-1",
        "choices": [{"index": index, "delta": delta, "finish_reason": finish}],
    }
    return StreamChunk(data=data, finish_reason=finish)


def _texts(chunks: list[StreamChunk]) -> str:
    return "".join(
        c.data["choices"][0]["delta"].get("content") or "" for c in chunks if c.data["choices"]
    )


def test_the_transcript_is_what_the_caller_received() -> None:
    transcript = Transcript.of([_chunk("", role=True), _chunk("Hello"), _chunk(" world")])
    assert transcript.text == "Hello world"
    assert transcript.content_chunks == 2
    assert (transcript.stream_id, transcript.model, transcript.created) == (
        "chatcmpl-1",
        "m-1",
        100,
    )
    assert not transcript.in_tool_call
    assert Transcript.of([_chunk(role=True), _chunk(tool=True)]).in_tool_call
    assert Transcript.of([_chunk("a"), _chunk("b", index=1)]).several_choices


def test_continuation_requests_by_prefill_and_by_instruction() -> None:
    original = Request(model="chat", body={"messages": [{"role": "user", "content": "Hi"}]})
    prefilled = continuation_request(original, "Hello there ", prefill=True)
    assert prefilled.body["messages"][-1] == {"role": "assistant", "content": "Hello there"}
    assert prefilled.body["stream"] is True
    assert prefilled.body["stream_options"] == {"include_usage": True}
    assert prefilled.request_id == original.request_id
    instructed = continuation_request(original, "Hello there ", prefill=False)
    assert instructed.body["messages"][-2] == {"role": "assistant", "content": "Hello there "}
    assert instructed.body["messages"][-1] == {"role": "user", "content": CONTINUE_INSTRUCTION}
    assert original.body["messages"] == [{"role": "user", "content": "Hi"}]  # untouched
    assert added_prompt_tokens(original, instructed) > added_prompt_tokens(original, prefilled)


def _rewriter(sent: str, *, prefill: bool, added: int = 0) -> Rewriter:
    transcript = Transcript.of([_chunk(role=True), _chunk(sent)])
    return Rewriter(transcript, prefill=prefill, added_prompt=added)


def test_continuation_chunks_take_the_original_identity_without_a_second_role() -> None:
    rewriter = _rewriter("The answer", prefill=True)
    out = rewriter.feed(_chunk("", role=True, chunk_id="other"))
    out += rewriter.feed(_chunk(" is 42", chunk_id="other"))
    out += rewriter.feed(_chunk(finish="stop", chunk_id="other"))
    assert [c.data["id"] for c in out] == ["chatcmpl-1", "chatcmpl-1"]
    assert all(c.data["model"] == "m-1" and c.data["created"] == 100 for c in out)
    assert all("role" not in c.data["choices"][0]["delta"] for c in out)
    assert _texts(out) == " is 42"
    assert out[-1].finish_reason == "stop"


def test_a_restarted_answer_is_trimmed_to_what_is_new() -> None:
    rewriter = _rewriter("Paris is the capital of France", prefill=False)
    out: list[StreamChunk] = []
    for piece in ["Paris is ", "the capital ", "of France", " and its largest city."]:
        out += rewriter.feed(_chunk(piece))
    out += rewriter.feed(_chunk(finish="stop"))
    assert _texts(out) == " and its largest city."


def test_an_overlap_with_the_end_of_what_was_sent_is_trimmed() -> None:
    rewriter = _rewriter("A long preamble, then the key point is", prefill=False)
    out = rewriter.feed(_chunk("then the key point is that it works."))
    out += rewriter.finish()
    assert _texts(out) == " that it works."


def test_short_coincidences_are_not_mistaken_for_overlap() -> None:
    rewriter = _rewriter("He said the", prefill=False)
    out = rewriter.feed(_chunk("the end."))
    out += rewriter.feed(_chunk(finish="stop"))
    assert _texts(out) == "the end."


def test_a_prefill_loses_only_repeated_white_space() -> None:
    rewriter = _rewriter("Hello ", prefill=True)
    out = rewriter.feed(_chunk(" world"))
    assert _texts(out) == "world"


def test_usage_covers_the_whole_answer() -> None:
    rewriter = _rewriter("one two three", prefill=True, added=4)
    usage_chunk = StreamChunk(
        data={"id": "x", "choices": [], "usage": {"prompt_tokens": 14, "completion_tokens": 5}},
        usage=Usage(14, 5),
    )
    [out] = rewriter.feed(usage_chunk)
    assert out.usage == Usage(10, 6)  # prompt without the prefill; both parts of the answer
    assert out.data["usage"]["total_tokens"] == 16
    assert rewriter.usage == Usage(10, 6)
