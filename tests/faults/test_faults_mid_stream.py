"""Faults after the upstream started answering, in both shapes (see `fault_rig`).

A stream that breaks after content reached the client is continued on another deployment of
the group (``group``) or on the fallback model (``litellm``) as one uninterrupted stream; what
cannot be continued ends with a clean error, never an answer that looks complete.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai
import pytest
from fault_rig import ANSWER, LEAVE_WITHIN, QUESTION, SHAPES, Shape, chats, rig, within

from fakes import fake_anthropic
from fakes.fake_openai import Fault

pytestmark = pytest.mark.parametrize("shape", SHAPES)

BROKEN = [
    Fault("cut", after_chunks=3),
    Fault("malformed", after_chunks=3),
    Fault("error_event", after_chunks=3),
    Fault("no_finish"),
]


@pytest.mark.parametrize("fault", BROKEN, ids=lambda fault: fault.kind)
async def test_a_broken_stream_continues_as_one_stream(
    shape: Shape, tmp_path: Path, fault: Fault
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(fault)
        streamed = await r.stream(stream_options={"include_usage": True})
        assert streamed.text == ANSWER  # once, whole, no seam
        assert len(streamed.ids) == 1  # one stream id
        assert streamed.finish == "stop"
        assert streamed.usage is not None
        assert streamed.usage.completion_tokens >= len(ANSWER.split())
        assert streamed.elapsed < 2.0
        assert len(chats(r.primary)) == 1
        [continuation] = chats(r.spare)
        messages = continuation.json["messages"]
        assert messages[0] == QUESTION[0]
        # The continuation was asked to go on from what the client had already received.
        assert messages[1]["role"] == "assistant"
        assert ANSWER.startswith(messages[1]["content"].strip())
        await r.healthy(stream=True)


async def test_a_stream_stalled_midway_is_left_and_continued(shape: Shape, tmp_path: Path) -> None:
    async with rig(shape, tmp_path) as r:
        await r.warm_up(stream=True)
        r.primary.enqueue(Fault("stall", after_chunks=3))
        started = time.monotonic()
        streamed = await within(LEAVE_WITHIN, r.stream(), "a stalled stream")
        assert streamed.text == ANSWER
        assert len(streamed.ids) == 1
        assert len(chats(r.primary)) == 1  # a stalled deployment is not asked again
        [continuation] = chats(r.spare)
        assert continuation.received_at - started < LEAVE_WITHIN
        await r.healthy(stream=True)


async def test_a_stream_without_done_but_finished_is_complete(shape: Shape, tmp_path: Path) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault("no_done"))
        streamed = await r.stream()
        assert (streamed.text, streamed.finish) == (ANSWER, "stop")
        assert chats(r.spare) == []


async def test_when_nothing_can_continue_the_client_gets_a_clean_error(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault("cut", after_chunks=3))
        r.spare.set_default(Fault.server_error())
        failed = await r.fails(stream=True)
        message = str(failed.error)
        assert "broke" in message or "stream" in message
        assert "continuing on another deployment failed too" in message
        assert failed.elapsed < 3.0
        assert len(chats(r.primary)) == 1  # the SDK does not repeat a stream that began
        r.spare.set_default(None)
        await r.healthy(stream=True)


async def test_with_nothing_to_continue_on_a_broken_stream_fails_cleanly(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path, alone=True) as r:
        r.primary.enqueue(Fault("cut", after_chunks=4))
        failed = await r.fails(stream=True)
        assert "stream" in str(failed.error)
        assert len(chats(r.primary)) == 1  # nothing retried blindly
        assert chats(r.spare) == []
        await r.healthy(stream=True)


async def test_a_tool_call_cut_halfway_fails_cleanly(shape: Shape, tmp_path: Path) -> None:
    tools: Any = [
        {
            "type": "function",
            "function": {
                "name": "lookup",
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}},
                    "required": ["query"],
                },
            },
        }
    ]
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault("cut", after_chunks=2))
        with pytest.raises(openai.APIError):
            stream = await r.client.chat.completions.create(
                model="chat", messages=QUESTION, tools=tools, stream=True
            )
            async for _ in stream:
                pass
        assert chats(r.spare) == []  # a half-sent call is never restarted blindly
        assert len(chats(r.primary)) == 1
        await r.healthy()


async def test_usage_and_spend_after_a_continuation_are_accounted(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault("cut", after_chunks=4))
        streamed = await r.stream(stream_options={"include_usage": True})
        assert streamed.text == ANSWER
        assert streamed.usage.prompt_tokens > 0
        body, _ = r.gateway.gateway.metrics.render()
        metrics = body.decode()
    assert 'outcome="stream_interrupted"' in metrics
    assert 'turnout_stream_failovers_total{error="stream_interrupted"' in metrics
    assert 'turnout_tokens_total{deployment="spare",kind="completion"' in metrics


async def test_a_broken_stream_continues_on_claude_by_prefill(shape: Shape, tmp_path: Path) -> None:
    async with rig(shape, tmp_path, claude_spare=True) as r:
        r.primary.enqueue(Fault("cut", after_chunks=3))
        streamed = await r.stream()
        assert streamed.text == ANSWER
        assert len(streamed.ids) == 1
        [continuation] = chats(r.claude)
        assert continuation.json["messages"][-1]["role"] == "assistant"  # Claude goes on


async def test_claude_refusing_the_prefill_is_asked_by_instruction(
    shape: Shape, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path, claude_spare=True) as r:
        r.primary.enqueue(Fault("cut", after_chunks=3))
        r.claude.enqueue(
            fake_anthropic.Fault.http_error(
                400, "invalid_request_error", "This model does not support assistant prefill."
            )
        )
        streamed = await r.stream()
        assert streamed.text == ANSWER
        assert len(streamed.ids) == 1
        refused, accepted = chats(r.claude)
        assert refused.json["messages"][-1]["role"] == "assistant"
        assert accepted.json["messages"][-1]["role"] == "user"  # the instruction to go on
        await r.healthy(stream=True)
