"""The simulated provider: OpenAI's shapes, virtual time, scripted failures, determinism."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest

import turnout.testing
from turnout.config.router import Deployment
from turnout.errors import (
    AuthenticationError,
    BadRequestError,
    ContentPolicyError,
    ContextWindowExceededError,
    ProviderError,
    RateLimitError,
    ServerError,
    StreamInterruptedError,
    UpstreamConnectionError,
    UpstreamNotFoundError,
    UpstreamTimeoutError,
)
from turnout.providers.simulated import STALL_SECONDS
from turnout.testing import Behaviour, Call, ManualClock, SimulatedProvider
from turnout.wire import Operation, RateLimitHints, Request, StreamChunk, Usage

EPOCH = 1_800_000_000.0
ALPHA = Deployment(id="alpha", model_name="group", model="sim-large", provider="simulated")
BETA = Deployment(id="beta", model_name="group", model="sim-small", provider="simulated")


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(epoch=EPOCH)


def chat(content: str = "Hello there", **extra: Any) -> Request:
    body = {"model": "group", "messages": [{"role": "user", "content": content}], **extra}
    return Request(model="group", body=body)


def completion(prompt: str = "Once upon a time", **extra: Any) -> Request:
    body = {"model": "group", "prompt": prompt, **extra}
    return Request(model="group", body=body, operation=Operation.COMPLETION)


def embedding(value: Any) -> Request:
    body = {"model": "group", "input": value}
    return Request(model="group", body=body, operation=Operation.EMBEDDING)


def provider(
    clock: ManualClock, behaviour: Behaviour | None = None, seed: int = 0
) -> SimulatedProvider:
    behaviours = {ALPHA.id: behaviour} if behaviour is not None else None
    return SimulatedProvider(clock, seed=seed, behaviours=behaviours)


async def drain(stream: AsyncIterator[StreamChunk], into: list[StreamChunk]) -> None:
    """Collect chunks into a list the caller keeps, so chunks before a failure stay visible."""
    async for chunk in stream:
        into.append(chunk)


# Healthy answers


async def test_chat_answer_has_openai_shape(clock: ManualClock) -> None:
    sim = SimulatedProvider(clock, default=Behaviour(output_tokens=3))
    request = chat()

    response = await sim.complete(ALPHA, request)

    prompt_tokens = request.prompt_tokens
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": 3,
        "total_tokens": prompt_tokens + 3,
    }
    assert response.body == {
        "id": "chatcmpl-sim-1",
        "object": "chat.completion",
        "created": int(EPOCH),
        "model": "sim-large",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Simulated answer from sim-large: lorem ipsum dolor",
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage,
    }
    assert response.usage == Usage(prompt_tokens=request.prompt_tokens, completion_tokens=3)
    assert request.prompt_tokens > 0
    assert response.rate_limits is None


@pytest.mark.parametrize("n", [2, 3])
async def test_n_choices_are_distinct_whole_and_streamed(clock: ManualClock, n: int) -> None:
    sim = SimulatedProvider(clock, default=Behaviour(output_tokens=2))
    whole = await sim.complete(ALPHA, chat(n=n))
    choices = whole.body["choices"]
    assert [c["index"] for c in choices] == list(range(n))
    texts = [c["message"]["content"] for c in choices]
    assert len(set(texts)) == n
    assert whole.usage.completion_tokens == 2 * n
    chunks: list[StreamChunk] = []
    await drain(sim.stream(ALPHA, chat(n=n, stream=True)), chunks)
    # As OpenAI streams them: one choice per chunk, each choice finished on its own.
    assert all(len(chunk.data["choices"]) == 1 for chunk in chunks)
    streamed = [""] * n
    for chunk in chunks:
        choice = chunk.data["choices"][0]
        streamed[choice["index"]] += choice["delta"].get("content") or ""
    assert streamed == texts
    assert sum(chunk.finish_reason == "stop" for chunk in chunks) == n
    for bad in (0, 129, True, "2"):
        with pytest.raises(BadRequestError) as refused:
            await sim.complete(ALPHA, chat(n=bad))
        assert refused.value.param == "n"


async def test_completion_answer_has_text_completion_shape(clock: ManualClock) -> None:
    sim = SimulatedProvider(clock, default=Behaviour(output_tokens=2))
    clock.advance(90)
    request = completion()

    response = await sim.complete(BETA, request)

    assert response.body == {
        "id": "cmpl-sim-1",
        "object": "text_completion",
        "created": int(EPOCH) + 90,
        "model": "sim-small",
        "choices": [
            {
                "index": 0,
                "text": "Simulated answer from sim-small: lorem ipsum",
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": Usage(request.prompt_tokens, 2).to_openai(),
    }


async def test_default_answer_is_sixteen_tokens_and_ids_count_calls(clock: ManualClock) -> None:
    sim = SimulatedProvider(clock)

    first = await sim.complete(ALPHA, chat())
    second = await sim.complete(BETA, chat())

    assert first.usage.completion_tokens == 16
    assert len(first.body["choices"][0]["message"]["content"].split(":")[1].split()) == 16
    assert (first.body["id"], second.body["id"]) == ("chatcmpl-sim-1", "chatcmpl-sim-2")


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_max_tokens_caps_the_answer_with_length(clock: ManualClock, field: str) -> None:
    sim = SimulatedProvider(clock, default=Behaviour(output_tokens=10))
    request = chat()
    request.body[field] = 4

    response = await sim.complete(ALPHA, request)

    choice = response.body["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == "Simulated answer from sim-large: lorem ipsum dolor sit"
    assert response.usage.completion_tokens == 4
    assert response.body["usage"]["completion_tokens"] == 4


async def test_max_tokens_above_the_answer_stops_normally(clock: ManualClock) -> None:
    sim = SimulatedProvider(clock, default=Behaviour(output_tokens=5))

    response = await sim.complete(ALPHA, chat(max_tokens=5))

    assert response.body["choices"][0]["finish_reason"] == "stop"
    assert response.usage.completion_tokens == 5


# Time


async def test_latency_is_taken_on_the_clock_without_sleeping(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(latency=42.5))
    started = time.monotonic()

    response = await sim.complete(ALPHA, chat())

    assert clock.now() == 42.5
    assert response.body["created"] == int(EPOCH + 42.5)
    assert time.monotonic() - started < 1.0


async def test_jitter_stays_within_its_range_and_varies(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(latency=1.0, jitter=2.0))
    durations = []
    for _ in range(20):
        before = clock.now()
        await sim.complete(ALPHA, chat())
        durations.append(clock.now() - before)

    assert all(1.0 <= duration <= 3.0 for duration in durations)
    assert len(set(durations)) > 1


@pytest.mark.parametrize(("probability", "expected"), [(1.0, 11.0), (0.0, 1.0)])
async def test_tail_latency_is_added_with_its_probability(
    clock: ManualClock, probability: float, expected: float
) -> None:
    sim = provider(clock, Behaviour(latency=1.0, tail_probability=probability, tail_latency=10))

    await sim.complete(ALPHA, chat())

    assert clock.now() == expected


async def test_an_unconfigured_deployment_answers_at_once(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(latency=5))

    await sim.complete(BETA, chat())

    assert clock.now() == 0


# Errors


@pytest.mark.parametrize(
    ("kind", "error_class", "status"),
    [
        ("rate_limited", RateLimitError, 429),
        ("server_error", ServerError, 500),
        ("overloaded", ServerError, 529),
        ("connection", UpstreamConnectionError, None),
        ("authentication", AuthenticationError, 401),
        ("not_found", UpstreamNotFoundError, 404),
    ],
)
async def test_each_error_kind_raises_its_error_after_the_latency(
    clock: ManualClock, kind: Any, error_class: type[ProviderError], status: int | None
) -> None:
    sim = provider(clock, Behaviour(latency=2, error_rate=1, errors={kind: 1}))

    with pytest.raises(error_class) as caught:
        await sim.complete(ALPHA, chat())

    assert type(caught.value) is error_class
    assert caught.value.upstream_status == status
    assert caught.value.deployment_id == "alpha"
    assert clock.now() == 2
    assert sim.calls("alpha") == [Call(Operation.CHAT, False, 0.0, kind)]


async def test_simulated_429_carries_retry_after(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(error_rate=1, errors={"rate_limited": 1}, retry_after=7))

    with pytest.raises(RateLimitError) as caught:
        await sim.complete(ALPHA, chat())

    assert caught.value.retry_after == 7
    assert caught.value.client_wait() == 7


async def test_timeout_waits_timeout_after_before_raising(clock: ManualClock) -> None:
    behaviour = Behaviour(latency=1, error_rate=1, errors={"timeout": 1}, timeout_after=12)
    sim = provider(clock, behaviour)

    with pytest.raises(UpstreamTimeoutError):
        await sim.complete(ALPHA, chat())

    assert clock.now() == 12


async def test_timeout_is_overtaken_by_a_deadline(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(error_rate=1, errors={"timeout": 1}))

    with pytest.raises(TimeoutError):
        async with clock.timeout_at(clock.now() + 5):
            await sim.complete(ALPHA, chat())

    assert clock.now() == 5


async def test_error_kinds_follow_their_weights(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(error_rate=1, errors={"rate_limited": 1, "server_error": 3}))
    for _ in range(400):
        with pytest.raises(ProviderError):
            await sim.complete(ALPHA, chat())

    outcomes = [call.outcome for call in sim.calls("alpha")]
    assert set(outcomes) == {"rate_limited", "server_error"}
    assert 0.15 < outcomes.count("rate_limited") / 400 < 0.35


async def test_same_seed_gives_the_same_outcomes(clock: ManualClock) -> None:
    async def outcomes(seed: int, behaviour: Behaviour) -> list[str]:
        sim = provider(ManualClock(), behaviour, seed=seed)
        for _ in range(60):
            with contextlib.suppress(ProviderError):
                await sim.complete(ALPHA, chat())
        return [call.outcome for call in sim.calls("alpha")]

    flaky = Behaviour(error_rate=0.5, errors={"server_error": 1, "connection": 1})
    first = await outcomes(7, flaky)

    assert first == await outcomes(7, flaky)
    assert {"ok", "server_error", "connection"} <= set(first)
    assert first != await outcomes(8, flaky)
    # Latency draws never shift the error draws: the n-th call's fate depends on n alone.
    assert first == await outcomes(
        7,
        Behaviour(error_rate=0.5, latency=3, jitter=2, errors={"server_error": 1, "connection": 1}),
    )


# Admission: quota, context window, content filter


async def test_rpm_limit_refuses_past_the_quota_until_the_next_minute(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(rpm_limit=3, latency=1))
    clock.advance(20)

    hints = []
    for _ in range(3):
        hints.append((await sim.complete(ALPHA, chat())).rate_limits)
    assert clock.now() == 23
    assert hints == [
        RateLimitHints(remaining_requests=2, limit_requests=3, reset_requests=40),
        RateLimitHints(remaining_requests=1, limit_requests=3, reset_requests=39),
        RateLimitHints(remaining_requests=0, limit_requests=3, reset_requests=38),
    ]
    with pytest.raises(RateLimitError) as caught:
        await sim.complete(ALPHA, chat())
    assert caught.value.retry_after == 37
    assert clock.now() == 23, "a refused call answers at once"
    await sim.complete(BETA, chat())  # another deployment has its own quota

    clock.advance(37)
    recovered = await sim.complete(ALPHA, chat())
    assert recovered.rate_limits == RateLimitHints(
        remaining_requests=2, limit_requests=3, reset_requests=60
    )
    assert [call.outcome for call in sim.calls("alpha")] == ["ok"] * 3 + ["rate_limited", "ok"]


async def test_context_window_refuses_long_prompts(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(context_window=20, latency=3))

    with pytest.raises(ContextWindowExceededError) as caught:
        await sim.complete(ALPHA, chat("word " * 40))
    assert caught.value.param == "messages"
    assert clock.now() == 0
    await sim.complete(ALPHA, chat("short"))
    assert [call.outcome for call in sim.calls("alpha")] == ["context_window", "ok"]


async def test_blocked_phrase_is_refused_by_the_content_filter(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(blocked_phrase="forbidden fruit"))
    multipart = {"role": "user", "content": [{"type": "text", "text": "Any FORBIDDEN fruit?"}]}

    with pytest.raises(ContentPolicyError):
        await sim.complete(ALPHA, chat("tell me about forbidden fruit"))
    with pytest.raises(ContentPolicyError):
        await sim.complete(ALPHA, Request(model="group", body={"messages": [multipart]}))
    with pytest.raises(ContentPolicyError):
        await sim.complete(ALPHA, completion("forbidden fruit salad"))
    await sim.complete(ALPHA, chat("tell me about apples"))


# Streams


async def test_stream_has_openai_chunk_shape(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(output_tokens=2))
    request = chat(stream=True)
    chunks: list[StreamChunk] = []

    await drain(sim.stream(ALPHA, request), chunks)

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {
            "id": "chatcmpl-sim-1",
            "object": "chat.completion.chunk",
            "created": int(EPOCH),
            "model": "sim-large",
            "choices": [choice],
        }

    assert [c.data for c in chunks] == [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Simulated answer from sim-large: lorem"}),
        chunk({"content": " ipsum"}),
        chunk({}, "stop"),
    ]
    assert [c.finish_reason for c in chunks] == [None, None, None, "stop"]
    assert [c.usage for c in chunks] == [None, None, None, Usage(request.prompt_tokens, 2)]
    assert all(c.rate_limits is None for c in chunks)
    assert sim.calls("alpha") == [Call(Operation.CHAT, True, 0.0, "ok")]


async def test_stream_with_include_usage_ends_with_a_usage_chunk(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(output_tokens=3))
    request = chat(stream=True, stream_options={"include_usage": True}, max_tokens=2)
    chunks: list[StreamChunk] = []

    await drain(sim.stream(ALPHA, request), chunks)

    usage = Usage(request.prompt_tokens, 2)
    assert len(chunks) == 5
    assert all(c.data["usage"] is None for c in chunks[:-1])
    assert chunks[-2].data["choices"][0]["finish_reason"] == "length"
    assert chunks[-2].finish_reason == "length"
    assert chunks[-1].data == {
        "id": "chatcmpl-sim-1",
        "object": "chat.completion.chunk",
        "created": int(EPOCH),
        "model": "sim-large",
        "choices": [],
        "usage": usage.to_openai(),
    }
    assert [c.usage for c in chunks] == [None] * 4 + [usage]


async def test_completion_stream_uses_text_completion_chunks(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(output_tokens=2))
    chunks: list[StreamChunk] = []

    await drain(sim.stream(ALPHA, completion(stream=True)), chunks)

    assert {c.data["object"] for c in chunks} == {"text_completion"}
    assert {c.data["id"] for c in chunks} == {"cmpl-sim-1"}
    texts = [c.data["choices"][0]["text"] for c in chunks]
    assert "".join(texts) == "Simulated answer from sim-large: lorem ipsum"
    assert chunks[-1].data["choices"][0] == {
        "index": 0,
        "text": "",
        "logprobs": None,
        "finish_reason": "stop",
    }


async def test_stream_timing_follows_ttft_and_chunk_interval(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(latency=9, ttft=1.5, chunk_interval=0.25, output_tokens=3))
    times = []

    async for _ in sim.stream(ALPHA, chat(stream=True)):
        times.append(clock.now())

    assert times == [1.5, 1.75, 2.0, 2.25, 2.25]


async def test_stream_ttft_defaults_to_latency(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(latency=4, output_tokens=1))

    async for _ in sim.stream(ALPHA, chat(stream=True)):
        assert clock.now() == 4


async def test_stream_reports_rate_limits_on_the_first_chunk(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(rpm_limit=10, output_tokens=1))
    chunks: list[StreamChunk] = []

    await drain(sim.stream(ALPHA, chat(stream=True)), chunks)

    assert chunks[0].rate_limits == RateLimitHints(
        remaining_requests=9, limit_requests=10, reset_requests=60
    )
    assert all(c.rate_limits is None for c in chunks[1:])


async def test_stream_errors_come_before_the_first_chunk(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(ttft=2, error_rate=1, errors={"overloaded": 1}))
    chunks: list[StreamChunk] = []

    with pytest.raises(ServerError) as caught:
        await drain(sim.stream(ALPHA, chat(stream=True)), chunks)

    assert chunks == []
    assert caught.value.upstream_status == 529
    assert clock.now() == 2


async def test_stream_cut_raises_after_some_content(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(stream_failure="cut", fail_after_chunks=2))
    chunks: list[StreamChunk] = []

    with pytest.raises(StreamInterruptedError):
        await drain(sim.stream(ALPHA, chat(stream=True)), chunks)

    assert len(chunks) == 3
    assert [c.data["choices"][0]["delta"] for c in chunks[1:]] == [
        {"content": "Simulated answer from sim-large: lorem"},
        {"content": " ipsum"},
    ]
    assert all(c.finish_reason is None and c.usage is None for c in chunks)
    assert sim.calls("alpha")[0].outcome == "cut"


async def test_stream_cut_past_the_content_still_withholds_the_finish(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(stream_failure="cut", fail_after_chunks=50, output_tokens=2))
    chunks: list[StreamChunk] = []

    with pytest.raises(StreamInterruptedError):
        await drain(sim.stream(ALPHA, chat(stream=True)), chunks)

    assert len(chunks) == 3


async def test_stream_stall_goes_silent_until_a_deadline(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(stream_failure="stall", fail_after_chunks=1))
    chunks: list[StreamChunk] = []

    with pytest.raises(TimeoutError):
        async with clock.timeout_at(clock.now() + 5):
            await drain(sim.stream(ALPHA, chat(stream=True)), chunks)

    assert len(chunks) == 2
    assert clock.now() == 5


async def test_stream_stall_without_a_deadline_breaks_much_later(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(stream_failure="stall"))
    chunks: list[StreamChunk] = []

    with pytest.raises(StreamInterruptedError):
        await drain(sim.stream(ALPHA, chat(stream=True)), chunks)

    assert len(chunks) == 1
    assert clock.now() == STALL_SECONDS


async def test_stream_no_finish_ends_without_a_finish_reason(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(stream_failure="no_finish", output_tokens=3))
    request = chat(stream=True, stream_options={"include_usage": True})
    chunks: list[StreamChunk] = []

    await drain(sim.stream(ALPHA, request), chunks)

    assert len(chunks) == 4
    assert all(c.data["choices"][0]["finish_reason"] is None for c in chunks)
    assert all(c.finish_reason is None for c in chunks)
    assert chunks[-1].usage == Usage(request.prompt_tokens, 3)
    assert sim.calls("alpha")[0].outcome == "no_finish"


async def test_non_streamed_calls_ignore_stream_failures(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(stream_failure="cut"))

    response = await sim.complete(ALPHA, chat())

    assert response.body["choices"][0]["finish_reason"] == "stop"
    assert sim.calls("alpha")[0].outcome == "ok"


# Embeddings


async def test_embeddings_have_openai_shape_and_unit_length(clock: ManualClock) -> None:
    sim = provider(clock, Behaviour(embedding_dimensions=12))
    request = embedding(["first text", "second text"])

    response = await sim.embed(ALPHA, request)

    body = response.body
    assert body["object"] == "list"
    assert body["model"] == "sim-large"
    assert body["usage"] == {
        "prompt_tokens": request.prompt_tokens,
        "total_tokens": request.prompt_tokens,
    }
    assert response.usage == Usage(prompt_tokens=request.prompt_tokens)
    assert [(item["object"], item["index"]) for item in body["data"]] == [
        ("embedding", 0),
        ("embedding", 1),
    ]
    for item in body["data"]:
        vector = item["embedding"]
        assert len(vector) == 12
        assert math.isclose(math.fsum(value * value for value in vector), 1.0)
    assert body["data"][0]["embedding"] != body["data"][1]["embedding"]


async def test_embeddings_are_deterministic_per_text(clock: ManualClock) -> None:
    first = await provider(clock, seed=1).embed(ALPHA, embedding("same text"))
    second = await provider(clock, seed=2).embed(BETA, embedding(["other", "same text"]))

    assert first.body["data"][0]["embedding"] == second.body["data"][1]["embedding"]
    assert len(first.body["data"][0]["embedding"]) == 8


@pytest.mark.parametrize("value", [None, [], [-1, 2], ["text", 4], [[1], "text"], [[]]])
async def test_embeddings_reject_inputs_that_are_not_text(clock: ManualClock, value: Any) -> None:
    with pytest.raises(BadRequestError):
        await provider(clock).embed(ALPHA, embedding(value))


async def test_methods_refuse_the_wrong_operation(clock: ManualClock) -> None:
    sim = provider(clock)
    with pytest.raises(BadRequestError):
        await sim.complete(ALPHA, embedding("text"))
    with pytest.raises(BadRequestError):
        await sim.embed(ALPHA, chat())
    with pytest.raises(BadRequestError):
        await drain(sim.stream(ALPHA, embedding("text")), [])
    assert sim.calls("alpha") == []


# Behaviour lookup and the call log


async def test_behaviour_is_found_by_id_then_model_then_default(clock: ManualClock) -> None:
    by_id, by_model, default = Behaviour(latency=1), Behaviour(latency=2), Behaviour(latency=3)
    sim = SimulatedProvider(
        clock, behaviours={"alpha": by_id, "sim-large": by_model}, default=default
    )
    same_model = Deployment(id="gamma", model_name="group", model="sim-large")

    assert sim.behaviour_for(ALPHA) is by_id
    assert sim.behaviour_for(same_model) is by_model
    assert sim.behaviour_for(BETA) is default


async def test_set_behaviour_makes_a_deployment_flap(clock: ManualClock) -> None:
    sim = provider(clock)
    await sim.complete(ALPHA, chat())
    sim.set_behaviour("alpha", Behaviour(error_rate=1))
    with pytest.raises(ServerError):
        await sim.complete(ALPHA, chat())
    sim.set_behaviour("alpha", None)
    clock.advance(1)
    await drain(sim.stream(ALPHA, chat(stream=True)), [])
    await sim.embed(ALPHA, embedding("x"))

    assert sim.calls("alpha") == [
        Call(Operation.CHAT, False, 0.0, "ok"),
        Call(Operation.CHAT, False, 0.0, "server_error"),
        Call(Operation.CHAT, True, 1.0, "ok"),
        Call(Operation.EMBEDDING, False, 1.0, "ok"),
    ]
    assert sim.calls("beta") == []
    sim.reset_calls()
    assert sim.calls("alpha") == []


# Validation


@pytest.mark.parametrize(
    "data",
    [
        {"latency": -1},
        {"error_rate": 1.5},
        {"tail_probability": -0.1},
        {"output_tokens": -3},
        {"errors": {"meteor_strike": 1}},
        {"errors": {"server_error": -1}},
        {"error_rate": 0.5, "errors": {"server_error": 0}},
        {"stream_failure": "explode"},
        {"rpm_limit": 0},
        {"blocked_phrase": ""},
        {"latencyy": 1},
    ],
)
def test_behaviour_validation_rejects_bad_values(data: dict[str, Any]) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(data, Behaviour, strict=False)


def test_behaviour_converts_from_plain_data() -> None:
    data = {"latency": "0.5", "error_rate": 0.1, "errors": {"overloaded": 2, "timeout": 1}}

    behaviour = msgspec.convert(data, Behaviour, strict=False)

    assert behaviour == Behaviour(
        latency=0.5, error_rate=0.1, errors={"overloaded": 2.0, "timeout": 1.0}
    )
    assert msgspec.convert({}, Behaviour) == Behaviour()


def test_testing_package_exports_its_public_names() -> None:
    assert sorted(turnout.testing.__all__) == [
        "Behaviour",
        "Call",
        "ManualClock",
        "MockStream",
        "MockTransport",
        "SimulatedProvider",
    ]
    for name in turnout.testing.__all__:
        assert getattr(turnout.testing, name).__name__ == name
