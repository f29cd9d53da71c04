"""`n`, `stop`, `logprobs`, `seed`, max tokens, stream usage and embedding `dimensions`, as
the official `openai` SDK sees the demo honour them, whole and streamed."""

from __future__ import annotations

import math
from typing import Any

import openai
import pytest
from demo_rig import demo_client

ASK: Any = [{"role": "user", "content": "Say something"}]
#: The demo's group of one deployment: answers that name their model compare equal.
MODEL = "gpt-4o"


async def _streamed(client: openai.AsyncOpenAI, **options: Any) -> tuple[dict[int, str], Any]:
    """Each choice's streamed text by index, and the chunks."""
    stream = await client.chat.completions.create(model=MODEL, messages=ASK, stream=True, **options)
    chunks = [chunk async for chunk in stream]
    texts: dict[int, str] = {}
    for chunk in chunks:
        for choice in chunk.choices:
            texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
    return texts, chunks


async def test_n_gives_distinct_choices_whole_and_streamed() -> None:
    async with demo_client() as client:
        whole = await client.chat.completions.create(model=MODEL, messages=ASK, n=3)
        texts, chunks = await _streamed(client, n=3)
    assert [c.index for c in whole.choices] == [0, 1, 2]
    assert len({c.message.content for c in whole.choices}) == 3
    assert len(set(texts.values())) == 3 and sorted(texts) == [0, 1, 2]
    finished = [c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason]
    assert sorted(finished) == [0, 1, 2]
    assert whole.usage and whole.usage.completion_tokens == 3 * 32


async def test_stop_cuts_the_answer_before_the_stop_sequence() -> None:
    async with demo_client() as client:
        whole = await client.chat.completions.create(
            model=MODEL, messages=ASK, stop=["dolor", "never there"]
        )
        texts, chunks = await _streamed(client, stop="sit")
    content = whole.choices[0].message.content or ""
    assert content.endswith("lorem ipsum ") and "dolor" not in content
    assert whole.choices[0].finish_reason == "stop"
    assert texts[0].endswith("ipsum dolor ") and "sit" not in texts[0]
    assert chunks[-1].choices[0].finish_reason == "stop"


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_cuts_with_length(field: str) -> None:
    async with demo_client() as client:
        capped: Any = {field: 3}
        whole = await client.chat.completions.create(model=MODEL, messages=ASK, **capped)
        _, chunks = await _streamed(client, **{field: 3})
    assert whole.choices[0].finish_reason == "length"
    assert whole.usage and whole.usage.completion_tokens == 3
    assert chunks[-1].choices[0].finish_reason == "length"
    assert sum(bool(c.choices and c.choices[0].delta.content) for c in chunks) == 3


async def test_logprobs_come_per_token_whole_and_streamed() -> None:
    async with demo_client() as client:
        whole = await client.chat.completions.create(
            model=MODEL, messages=ASK, logprobs=True, top_logprobs=3
        )
        _, chunks = await _streamed(client, logprobs=True, top_logprobs=3)
        plain = await client.chat.completions.create(model=MODEL, messages=ASK)
    choice = whole.choices[0]
    entries = choice.logprobs.content if choice.logprobs else None
    assert entries and "".join(e.token for e in entries) == choice.message.content
    for entry in entries:
        assert entry.logprob <= 0 and entry.bytes == list(entry.token.encode())
        assert len(entry.top_logprobs) == 3
        assert entry.top_logprobs[0].token == entry.token
        ranked = [top.logprob for top in entry.top_logprobs]
        assert ranked == sorted(ranked, reverse=True) and len(set(ranked)) == 3
    streamed = [
        e
        for c in chunks
        if c.choices and c.choices[0].logprobs
        for e in c.choices[0].logprobs.content or []
    ]
    assert [e.model_dump() for e in streamed] == [e.model_dump() for e in entries]
    assert plain.choices[0].logprobs is None


async def test_a_seed_repeats_its_answer_and_another_seed_changes_it() -> None:
    async with demo_client() as client:
        answers = [
            (await client.chat.completions.create(model=MODEL, messages=ASK, seed=seed))
            .choices[0]
            .message.content
            for seed in (7, 7, 8)
        ]
    assert answers[0] == answers[1] != answers[2]


async def test_stream_usage_comes_last_when_asked() -> None:
    async with demo_client() as client:
        _, chunks = await _streamed(client, stream_options={"include_usage": True})
    *content, last = chunks
    assert last.choices == [] and last.usage and last.usage.completion_tokens == 32
    assert all(chunk.usage is None for chunk in content)


@pytest.mark.parametrize(
    ("given", "count"),
    [("hello", 1), (["one", "two", "three"], 3), ([1, 2, 3], 1), ([[1, 2], [3]], 2)],
)
async def test_embeddings_accept_every_input_and_honour_dimensions(given: Any, count: int) -> None:
    async with demo_client() as client:
        native = await client.embeddings.create(model="text-embedding-3-small", input=given)
        short = await client.embeddings.create(
            model="text-embedding-3-small", input=given, dimensions=256
        )
    assert [len(item.embedding) for item in native.data] == [1536] * count
    assert [len(item.embedding) for item in short.data] == [256] * count
    for item in [*native.data, *short.data]:
        assert math.isclose(math.fsum(v * v for v in item.embedding), 1.0, rel_tol=1e-6)
    if count > 1:
        assert short.data[0].embedding != short.data[1].embedding


async def test_text_completions_honour_n_stop_and_logprobs() -> None:
    async with demo_client() as client:
        whole = await client.completions.create(
            model=MODEL, prompt="Once upon a time", n=2, stop=["amet"], logprobs=2
        )
        stream = await client.completions.create(
            model=MODEL, prompt="Once upon a time", logprobs=2, stream=True
        )
        pieces = [chunk.choices[0] async for chunk in stream if chunk.choices]
    assert len({choice.text for choice in whole.choices}) == 2
    for choice in whole.choices:
        assert "amet" not in choice.text and choice.finish_reason == "stop"
        logprobs = choice.logprobs
        assert logprobs and "".join(logprobs.tokens or []) == choice.text
        assert all(len(top) == 2 for top in logprobs.top_logprobs or [])
    streamed = [
        token for piece in pieces if piece.logprobs for token in piece.logprobs.tokens or []
    ]
    assert "".join(streamed) == "".join(piece.text for piece in pieces)
    assert pieces[-1].finish_reason == "stop"
