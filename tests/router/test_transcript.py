"""What a stream keeps for a continuation: the text it sent, compact, never the chunks."""

from __future__ import annotations

import gc
import random
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

import msgspec
import pytest

from harness import chat, dep
from turnout import Deployment, Request, Router, RouterConfig, clock
from turnout.router.transcript import Transcript, TranscriptBuilder
from turnout.wire import ProviderResponse, StreamChunk, Usage


def _event(choices: list[dict[str, Any]], **envelope: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 100,
        "model": "m-1",
        **envelope,
        "choices": choices,
    }


def _delta(index: int = 0, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    return {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}


def _as_bytes(data: dict[str, Any]) -> StreamChunk:
    """A chunk as the OpenAI family relays it: the upstream's own bytes, undecoded."""
    return StreamChunk(raw=msgspec.json.encode(data))


def _as_object(data: dict[str, Any]) -> StreamChunk:
    """A chunk as translated providers and continuations build it."""
    return StreamChunk(data=data)


_TOOL = [{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{"}}]

_STREAMS: dict[str, tuple[list[dict[str, Any]], Transcript]] = {
    "text": (
        [
            _event([_delta(role="assistant", content="")]),
            _event([_delta(content="Hello")]),
            _event([_delta(content=" world")]),
            _event([_delta(finish="stop")]),
            _event([], usage={"prompt_tokens": 3, "completion_tokens": 2}),
        ],
        Transcript("Hello world", 2, "chatcmpl-1", "m-1", 100, False, False),
    ),
    "tool call under way": (
        [_event([_delta(role="assistant", content=None, tool_calls=_TOOL)])],
        Transcript("", 0, "chatcmpl-1", "m-1", 100, True, False),
    ),
    "tool call finished": (
        [_event([_delta(tool_calls=_TOOL)]), _event([_delta(finish="tool_calls")])],
        Transcript("", 0, "chatcmpl-1", "m-1", 100, False, False),
    ),
    "empty tool calls": (
        [_event([_delta(content="a", tool_calls=[])])],
        Transcript("a", 1, "chatcmpl-1", "m-1", 100, False, False),
    ),
    "several choices": (
        [_event([_delta(content="a")]), _event([_delta(index=1, content="b")])],
        Transcript("ab", 2, "chatcmpl-1", "m-1", 100, False, True),
    ),
    "legacy completion": (
        [
            _event([{"index": 0, "text": "Once"}], object="text_completion"),
            _event([{"index": 0, "text": " upon", "finish_reason": None}]),
        ],
        Transcript("Once upon", 2, "chatcmpl-1", "m-1", 100, False, False),
    ),
    "odd shapes": (
        [
            {"choices": [_delta(content=7)]},  # not text: not counted as text
            {"id": None, "choices": None},
            _event([_delta(content="ok")], id=["odd"], created="later"),
            {"choices": ["not a choice", {"delta": "not a delta"}]},
        ],
        Transcript("ok", 1, ["odd"], "m-1", "later", False, False),  # type: ignore[arg-type]
    ),
}


@pytest.mark.parametrize("name", list(_STREAMS))
@pytest.mark.parametrize("form", [_as_bytes, _as_object], ids=["bytes", "objects"])
def test_the_transcript_is_the_same_from_bytes_and_from_objects(
    name: str, form: Callable[[dict[str, Any]], StreamChunk]
) -> None:
    events, expected = _STREAMS[name]
    assert Transcript.of(form(event) for event in events) == expected


def test_a_snapshot_leaves_the_builder_going() -> None:
    builder = TranscriptBuilder()
    pieces = [f"{n} " for n in range(1000)]
    for piece in pieces[:600]:
        builder.feed(_as_bytes(_event([_delta(content=piece)])))
    assert builder.transcript().text == "".join(pieces[:600])
    for piece in pieces[600:]:
        builder.feed(_as_object(_event([_delta(content=piece)])))
    whole = builder.transcript()
    assert whole.text == "".join(pieces)
    assert whole.content_chunks == 1000


# ---- what a relayed stream retains ----------------------------------------------------------

#: Content chunks of the long answer, and characters of text each.
_CHUNKS = 40_000
_TOKEN = 40
#: Chunks relayed before memory is measured: fixed costs (the loop's deadline heap reaches its
#: steady size) are behind by then, and what grows after is what the stream retains.
_WARM_UP = 10_000


class _LongAnswer:
    """A provider streaming one long answer, each chunk made when asked for and not kept."""

    def __init__(self, form: Callable[[dict[str, Any]], StreamChunk]) -> None:
        self._form = form

    async def stream(self, deployment: Deployment, request: Request) -> AsyncIterator[StreamChunk]:
        rng = random.Random(5)
        form = self._form
        yield form(_event([_delta(role="assistant", content="")]))
        for _ in range(_CHUNKS):
            token = "".join(rng.choices("abcdefghij ", k=_TOKEN))
            yield form(_event([_delta(content=token)]))
        finish = form(_event([_delta(finish="stop")]))
        finish.finish_reason = "stop"
        yield finish
        yield StreamChunk(data=_event([]), usage=Usage(5, _CHUNKS))

    async def complete(self, deployment: Deployment, request: Request) -> ProviderResponse:
        raise NotImplementedError

    embed = complete


def _snapshot() -> tracemalloc.Snapshot:
    """Memory allocated, but for the event loop's deadline heap: it is shared by every wait of
    every request and compacted every few thousand entries, a fixed cost that is nobody's."""
    ignored = tracemalloc.Filter(False, clock.__file__)
    return tracemalloc.take_snapshot().filter_traces([ignored])


@pytest.mark.parametrize("form", [_as_bytes, _as_object], ids=["bytes", "objects"])
async def test_a_relayed_stream_retains_a_small_multiple_of_its_text(
    form: Callable[[dict[str, Any]], StreamChunk],
) -> None:
    """With failover on, what the stream holds while relaying grows with the text it sent, not
    with the chunks: their bytes and objects weigh tens of times more."""
    # The system clock: a manual one keeps a timer per wait until time moves.
    router = Router(RouterConfig(model_list=(dep("long"),)), {"sim": _LongAnswer(form)})
    stream = await router.stream(chat())
    chunks = aiter(stream)
    for _ in range(_WARM_UP):
        await anext(chunks)
    gc.collect()
    tracemalloc.start()
    try:
        before = _snapshot()
        for _ in range(_CHUNKS - _WARM_UP + 1):
            await anext(chunks)  # the chunk is dropped at once, as the gateway drops it
        after = _snapshot()
    finally:
        tracemalloc.stop()
    retained = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    text_bytes = (_CHUNKS - _WARM_UP) * _TOKEN
    assert retained <= 2 * text_bytes, (retained, text_bytes)
    rest = [chunk async for chunk in chunks]
    assert rest[0].finish_reason == "stop"
