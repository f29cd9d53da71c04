"""Streams: invisible failover before the first chunk, loud failure after it."""

from __future__ import annotations

import pytest

from harness import Harness, chat, dep
from turnout import RetryConfig, RoutingConfig, Timeouts
from turnout.config.router import FallbackConfig
from turnout.errors import (
    DeadlineExceededError,
    ServerError,
    StreamInterruptedError,
)
from turnout.observe.events import AttemptFinished, StreamFailover
from turnout.testing import Behaviour
from turnout.wire import StreamChunk


async def _drain(stream: object) -> list[StreamChunk]:
    return [chunk async for chunk in stream]  # type: ignore[attr-defined]


async def test_a_stream_relays_every_chunk_and_accounts_usage(h: Harness) -> None:
    h.sim.set_behaviour("a", Behaviour(ttft=0.2, chunk_interval=0.01, output_tokens=5))
    router = h.router(dep("a", input_cost_per_token=1e-6, output_cost_per_token=1e-6))
    stream = await router.stream(chat(stream_options={"include_usage": True}))
    assert stream.deployment.id == "a"
    assert stream.ttft == pytest.approx(0.2)
    chunks = await _drain(stream)
    assert [c.finish_reason for c in chunks].count("stop") == 1
    assert chunks[-1].data["choices"] == []
    assert stream.usage is not None
    assert stream.usage.completion_tokens == 5
    assert stream.cost == pytest.approx(stream.usage.total_tokens * 1e-6)
    finished = h.recorder.of(AttemptFinished)
    assert [(f.error, f.ttft, f.stream) for f in finished] == [(None, pytest.approx(0.2), True)]
    [health] = await router.health()
    assert health.ttft == pytest.approx(0.2)
    assert health.in_flight == 0


async def test_failure_before_the_first_chunk_fails_over_invisibly(h: Harness) -> None:
    router = h.router(dep("a"), dep("b", priority=1), routing=RoutingConfig(strategy="priority"))
    h.scripted.fail("a", ServerError("down", status=503))
    stream = await router.stream(chat())
    assert stream.deployment.id == "b"
    assert [a.deployment_id for a in stream.attempts] == ["a"]
    chunks = await _drain(stream)
    assert chunks[-1].finish_reason == "stop"
    assert [a.deployment_id for a in stream.attempts] == ["a", "b"]


async def test_first_token_timeout_fails_over(h: Harness) -> None:
    h.sim.set_behaviour("slow", Behaviour(ttft=10))
    router = h.router(
        dep("slow", timeouts=Timeouts(first_token=1)),
        dep("fast", priority=1),
        routing=RoutingConfig(strategy="priority"),
    )
    stream = await router.stream(chat())
    assert stream.deployment.id == "fast"
    assert h.clock.now() == pytest.approx(1.0)
    await _drain(stream)


@pytest.mark.parametrize(
    ("failure", "message"),
    [("cut", "Simulated stream cut"), ("no_finish", "without a finish reason")],
)
async def test_a_broken_stream_raises_and_never_looks_complete(
    h: Harness, failure: str, message: str
) -> None:
    h.sim.set_behaviour("a", Behaviour(stream_failure=failure, fail_after_chunks=3))  # type: ignore[arg-type]
    router = h.router(dep("a"))
    stream = await router.stream(chat())
    received: list[StreamChunk] = []
    with pytest.raises(StreamInterruptedError, match=message) as caught:
        async for chunk in stream:
            received.append(chunk)
    assert received  # content had reached the caller
    assert all(c.finish_reason is None for c in received)
    assert caught.value.deployment_id == "a"
    assert [a.error.value if a.error else None for a in caught.value.attempts] == [
        "stream_interrupted"
    ]
    [health] = await router.health()
    assert health.in_flight == 0
    assert health.reliability < 1.0


async def test_a_stalled_stream_is_cut_by_the_idle_limit(h: Harness) -> None:
    h.sim.set_behaviour("a", Behaviour(stream_failure="stall", fail_after_chunks=2))
    router = h.router(dep("a", timeouts=Timeouts(idle=3)))
    stream = await router.stream(chat())
    with pytest.raises(StreamInterruptedError, match="stalled: no chunk for 3s"):
        await _drain(stream)
    assert h.clock.now() == pytest.approx(3.0)


async def test_a_stream_never_outlives_the_request_deadline(h: Harness) -> None:
    h.sim.set_behaviour("a", Behaviour(stream_failure="stall", fail_after_chunks=2))
    router = h.router(dep("a"))
    request = chat()
    request.timeout = 7
    stream = await router.stream(request)
    with pytest.raises(DeadlineExceededError):
        await _drain(stream)
    assert h.clock.now() == pytest.approx(7.0)
    [health] = await router.health()
    assert health.in_flight == 0
    assert health.reliability == 1.0  # the caller's deadline is no verdict on the deployment


async def test_a_consumer_that_stops_early_frees_the_deployment(h: Harness) -> None:
    router = h.router(dep("a"))
    stream = await router.stream(chat())
    async for _ in stream:
        break
    await stream.aclose()
    [health] = await router.health()
    assert health.in_flight == 0
    assert health.reliability == 1.0
    finished = h.recorder.of(AttemptFinished)
    assert [f.error.value if f.error else None for f in finished] == ["cancelled"]


async def test_an_unread_stream_can_be_closed(h: Harness) -> None:
    router = h.router(dep("a"))
    stream = await router.stream(chat())
    await stream.aclose()
    [health] = await router.health()
    assert health.in_flight == 0


async def test_a_stream_is_iterated_once(h: Harness) -> None:
    router = h.router(dep("a"))
    stream = await router.stream(chat())
    await _drain(stream)
    with pytest.raises(RuntimeError, match="only once"):
        await _drain(stream)


async def test_everything_failing_before_the_first_chunk_is_an_ordinary_error(
    h: Harness,
) -> None:
    router = h.router(dep("a"), retries=RetryConfig(num_retries=1))
    h.scripted.fail("a", ServerError("down", status=500), ServerError("still down", status=500))
    with pytest.raises(ServerError) as caught:
        await router.stream(chat())
    assert len(caught.value.attempts) == 2


async def test_a_stream_used_as_a_context_manager_is_always_closed(h: Harness) -> None:
    router = h.router(dep("a"))
    async with await router.stream(chat()) as stream:
        async for _ in stream:
            break
    [health] = await router.health()
    assert health.in_flight == 0
    async with await router.stream(chat()) as stream:
        await _drain(stream)
    assert stream.usage is not None  # a finished stream keeps its verdict


async def _texts_of(stream: object) -> str:
    text = ""
    async for chunk in stream:  # type: ignore[attr-defined]
        if chunk.data["choices"]:
            text += chunk.data["choices"][0]["delta"].get("content") or ""
    return text


async def test_a_broken_stream_continues_on_the_fallback_group(h: Harness) -> None:
    # One deployment per model plus fallbacks: nothing else in the group can continue.
    h.sim.set_behaviour("a", Behaviour(stream_failure="cut", fail_after_chunks=3))
    router = h.router(
        dep("a"), dep("b", group="backup"), fallbacks=FallbackConfig(general={"chat": ["backup"]})
    )
    stream = await router.stream(chat())
    text = await _texts_of(stream)
    assert text
    assert stream.deployment.id == "b"
    [failover] = h.recorder.of(StreamFailover)
    assert (failover.model_group, failover.failed) == ("backup", "a")
    assert h.stats.stream_failovers == 1


async def test_continuation_walks_the_fallback_chain_in_order_and_depth(h: Harness) -> None:
    h.sim.set_behaviour("a", Behaviour(stream_failure="cut", fail_after_chunks=3))
    h.sim.set_behaviour("b", Behaviour(error_rate=1.0))
    router = h.router(
        dep("a"),
        dep("b", group="second"),
        dep("c", group="third"),
        dep("d", group="beyond"),
        fallbacks=FallbackConfig(
            general={"chat": ["second", "third"], "third": ["beyond"]}, max_depth=1
        ),
    )
    stream = await router.stream(chat())
    await _texts_of(stream)
    assert stream.deployment.id == "c"
    assert [f.model_group for f in h.recorder.of(StreamFailover)] == ["second", "third"]
