"""The chat route's stream faults (`test_faults_mid_stream`, `test_faults_before_headers`), on
``/v1/messages`` streams read by the official `anthropic` SDK and ``/v1/responses`` streams read
by the official `openai` SDK, in both rig shapes (see `fault_rig`; ``litellm`` is the one
deployment per model plus ``fallbacks`` most users run).

A stream broken after it began is continued elsewhere as one uninterrupted answer in the
route's own events; what cannot be continued ends with the route's error (an Anthropic
``error`` event; ``response.failed``), never a silent end that looks complete, and never a hang.
A fault before the first byte is retried or falls back unseen.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anthropic
import pytest
from fault_rig import ANSWER, QUESTION, SDK_TIMEOUT, SHAPES, Rig, Shape, chats, rig, within

from fakes import fake_anthropic
from fakes.fake_openai import Fault

Route = Literal["messages", "responses"]
ROUTES: tuple[Route, ...] = ("messages", "responses")
pytestmark = [pytest.mark.parametrize("shape", SHAPES), pytest.mark.parametrize("route", ROUTES)]

#: Seconds within which any scenario here must end: the faults are all quick to see.
BOUND = 10.0
#: Seconds an answer rescued without waiting takes at most: no backoff, no timeout waited out
#: (the SDK's first parse of the Responses API's event types alone takes a good part of one).
QUICK = 4.0
BROKEN = [
    Fault("cut", after_chunks=3),
    Fault("malformed", after_chunks=3),
    Fault("error_event", after_chunks=3),
    Fault("no_finish"),
]
LOOKUP: Any = {
    "name": "lookup",
    "description": "Look something up",
    "parameters": {
        "type": "object",
        "properties": {"query": {"type": "string"}},
        "required": ["query"],
    },
}


@dataclass
class Read:
    """A stream on either route as the client read it, to its end or its error."""

    #: Event types in order (Anthropic's ``ping`` left out).
    events: list[str]
    text: str
    #: The answer's ids: message ids (``message_start``), or response ids (every event that
    #: carries the response).
    ids: set[str]
    #: ``end_turn`` / ``completed``..., or None when the stream ended without saying.
    ending: str | None
    deployment: str
    elapsed: float
    #: The error the stream ended with (an ``error`` event's, or ``response.failed``'s).
    error: Any = None
    usage: Any = None
    tool_arguments: str = ""
    tools: list[str] = field(default_factory=list)

    @property
    def tail(self) -> str:
        return self.events[-1] if self.events else ""


def _anthropic_client(r: Rig) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(
        base_url=r.gateway.url, api_key="sk-anything", timeout=SDK_TIMEOUT
    )


async def _read_messages(r: Rig, tools: bool, headers: dict[str, str]) -> Read:
    fields: dict[str, Any] = {"model": "chat", "max_tokens": 256, "messages": QUESTION}
    if tools:
        fields["tools"] = [{"name": LOOKUP["name"], "input_schema": LOOKUP["parameters"]}]
    started = time.monotonic()
    async with _anthropic_client(r) as client:
        create: Any = client.messages.with_raw_response.create
        raw = await create(stream=True, extra_headers=headers, **fields)
        read = Read([], "", set(), None, raw.headers["x-turnout-deployment"], 0.0)
        try:
            async for event in await raw.parse():
                if event.type == "ping":
                    continue
                read.events.append(event.type)
                if event.type == "message_start":
                    read.ids.add(event.message.id)
                elif event.type == "content_block_start" and event.content_block.type == "tool_use":
                    read.tools.append(event.content_block.name)
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    read.text += event.delta.text
                elif event.type == "content_block_delta" and event.delta.type == "input_json_delta":
                    read.tool_arguments += event.delta.partial_json
                elif event.type == "message_delta":
                    read.ending = event.delta.stop_reason
                    read.usage = event.usage
        except anthropic.APIStatusError as error:
            # The SDK raises an ``error`` event: it is the stream's last.
            read.events.append("error")
            read.error = error.body
    read.elapsed = time.monotonic() - started
    return read


async def _read_responses(r: Rig, tools: bool, headers: dict[str, str]) -> Read:
    fields: dict[str, Any] = {"model": "chat", "input": QUESTION[0]["content"]}
    if tools:
        fields["tools"] = [{"type": "function", **LOOKUP}]
    started = time.monotonic()
    create: Any = r.client.responses.with_raw_response.create
    raw = await create(stream=True, extra_headers=headers, **fields)
    read = Read([], "", set(), None, raw.headers["x-turnout-deployment"], 0.0)
    numbers: list[int] = []
    async for event in raw.parse():
        read.events.append(event.type)
        numbers.append(event.sequence_number)
        response = getattr(event, "response", None)
        if response is not None:
            read.ids.add(response.id)
            read.ending = response.status
            read.usage = response.usage
            read.error = response.error
        if event.type == "response.output_text.delta":
            read.text += event.delta
        elif event.type == "response.output_item.added" and event.item.type == "function_call":
            read.tools.append(event.item.name)
        elif event.type == "response.function_call_arguments.delta":
            read.tool_arguments += event.delta
        elif event.type == "error":
            read.error = event
    assert numbers == list(range(len(numbers))), numbers
    read.elapsed = time.monotonic() - started
    return read


async def read_stream(
    r: Rig, route: Route, *, tools: bool = False, headers: dict[str, str] | None = None
) -> Read:
    """The question streamed on `route`, read to its end; a hang fails the scenario."""
    reader = _read_messages if route == "messages" else _read_responses
    return await within(BOUND, reader(r, tools, headers or {}), f"a {route} stream")


def assert_one_whole_answer(read: Read, route: Route) -> None:
    """One uninterrupted answer in the route's events: begun once, ended once, complete."""
    assert read.text == ANSWER  # once, whole, no seam
    assert len(read.ids) == 1
    if route == "messages":
        assert read.events.count("message_start") == 1
        assert read.events[-2:] == ["message_delta", "message_stop"]
        assert "error" not in read.events
        assert read.ending == "end_turn"
        assert read.usage.output_tokens > 0
    else:
        assert read.events.count("response.created") == 1
        assert read.tail == "response.completed"
        assert "response.failed" not in read.events and "error" not in read.events
        assert read.ending == "completed"
        assert read.usage.output_tokens > 0


def assert_ends_in_error(read: Read, route: Route) -> None:
    """Some text reached the client, then the route's error, and nothing that looks complete."""
    if route == "messages":
        assert read.tail == "error", read.events
        assert "message_stop" not in read.events and "message_delta" not in read.events
        assert read.error["type"] == "error"
        assert read.error["error"]["type"] in ("api_error", "overloaded_error")
        assert read.error["error"]["message"]
    else:
        assert read.tail in ("response.failed", "error"), read.events
        assert "response.completed" not in read.events
        if read.tail == "response.failed":
            assert read.ending == "failed"
            assert read.error is not None and read.error.message
    assert "sk-fake" not in str(read.error)


@asynccontextmanager
async def rig_for(shape: Shape, tmp_path: Path, **options: Any) -> AsyncIterator[Rig]:
    async with rig(shape, tmp_path, **options) as r:
        yield r


@pytest.mark.parametrize("fault", BROKEN, ids=lambda fault: fault.kind)
async def test_a_broken_stream_continues_as_one_stream(
    shape: Shape, route: Route, tmp_path: Path, fault: Fault
) -> None:
    async with rig_for(shape, tmp_path) as r:
        r.primary.enqueue(fault)
        read = await read_stream(r, route)
        assert_one_whole_answer(read, route)
        assert read.elapsed < QUICK
        assert len(chats(r.primary)) == 1
        [continuation] = chats(r.spare)
        messages = continuation.json["messages"]
        assert messages[0] == QUESTION[0]
        # The continuation was asked to go on from what the client had already received.
        assert messages[1]["role"] == "assistant"
        assert ANSWER.startswith(messages[1]["content"].strip())
        await r.healthy(stream=True)


async def test_a_stream_stalled_midway_is_left_and_continued(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig_for(shape, tmp_path) as r:
        r.primary.enqueue(Fault("stall", after_chunks=3))
        read = await read_stream(r, route, headers={"x-turnout-idle-timeout-ms": "400"})
        assert_one_whole_answer(read, route)
        assert len(chats(r.primary)) == 1
        assert len(chats(r.spare)) == 1


async def test_a_stream_without_done_but_finished_is_complete(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig_for(shape, tmp_path) as r:
        r.primary.enqueue(Fault("no_done"))
        read = await read_stream(r, route)
        assert_one_whole_answer(read, route)
        assert chats(r.spare) == []


async def test_when_nothing_can_continue_the_client_gets_an_error_event(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig_for(shape, tmp_path) as r:
        r.primary.enqueue(Fault("cut", after_chunks=3))
        r.spare.set_default(Fault.server_error())
        read = await read_stream(r, route)
        assert read.text and ANSWER.startswith(read.text) and read.text != ANSWER
        assert_ends_in_error(read, route)
        assert read.elapsed < QUICK
        assert len(chats(r.primary)) == 1
        r.spare.set_default(None)
        await r.healthy(stream=True)


async def test_with_nothing_to_continue_on_a_broken_stream_ends_in_an_error_event(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig_for(shape, tmp_path, alone=True) as r:
        r.primary.enqueue(Fault("cut", after_chunks=4))
        read = await read_stream(r, route)
        assert read.text and ANSWER.startswith(read.text)
        assert_ends_in_error(read, route)
        assert len(chats(r.primary)) == 1  # nothing retried blindly
        assert chats(r.spare) == []
        await r.healthy(stream=True)


async def test_a_tool_call_cut_halfway_ends_in_an_error_event(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig_for(shape, tmp_path) as r:
        r.primary.enqueue(Fault("cut", after_chunks=2))
        read = await read_stream(r, route, tools=True)
        assert read.tools == ["lookup"]
        assert_ends_in_error(read, route)
        assert chats(r.spare) == []  # a half-sent call is never restarted blindly
        assert len(chats(r.primary)) == 1
        await r.healthy()


async def test_a_broken_stream_continues_on_claude_by_prefill(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig_for(shape, tmp_path, claude_spare=True) as r:
        r.primary.enqueue(Fault("cut", after_chunks=3))
        read = await read_stream(r, route)
        assert_one_whole_answer(read, route)
        [continuation] = chats(r.claude)
        assert continuation.json["messages"][-1]["role"] == "assistant"  # Claude goes on


async def test_claude_refusing_the_prefill_is_asked_by_instruction(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig_for(shape, tmp_path, claude_spare=True) as r:
        r.primary.enqueue(Fault("cut", after_chunks=3))
        r.claude.enqueue(
            fake_anthropic.Fault.http_error(
                400, "invalid_request_error", "This model does not support assistant prefill."
            )
        )
        read = await read_stream(r, route)
        assert_one_whole_answer(read, route)
        refused, accepted = chats(r.claude)
        assert refused.json["messages"][-1]["role"] == "assistant"
        assert accepted.json["messages"][-1]["role"] == "user"  # the instruction to go on


BEFORE_HEADERS = [
    Fault.rate_limited(retry_after=2),
    Fault.rate_limited(),
    Fault.server_error(),
    Fault.unavailable(),
    Fault("reset"),
]


@pytest.mark.parametrize(
    "fault", BEFORE_HEADERS, ids=["429-retry-after", "429", "500", "503", "reset"]
)
async def test_a_fault_before_the_first_byte_goes_elsewhere_unseen(
    shape: Shape, route: Route, tmp_path: Path, fault: Fault
) -> None:
    async with rig_for(shape, tmp_path) as r:
        r.primary.enqueue(fault)
        read = await read_stream(r, route)
        assert_one_whole_answer(read, route)
        assert read.elapsed < QUICK
        # Answered by the other deployment, or (one deployment per model, a fault the router
        # retries in place) by the same one again: two calls in all, as on the chat route.
        assert read.deployment in ("chat", "spare")
        assert len(chats(r.primary)) + len(chats(r.spare)) == 2
        assert len(chats(r.primary)) == (2 if read.deployment == "chat" else 1)
        await r.healthy(stream=True)


async def test_a_slow_first_token_is_left_before_anything_is_sent(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig_for(shape, tmp_path) as r:
        r.primary.enqueue(Fault("slow_first_token", seconds=20))
        read = await read_stream(r, route, headers={"x-turnout-first-token-timeout-ms": "400"})
        assert_one_whole_answer(read, route)
        assert read.deployment == "spare"
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)


async def test_context_window_exceeded_on_a_stream_goes_to_its_fallback(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig_for(shape, tmp_path) as r:
        r.primary.enqueue(Fault.context_length_exceeded())
        read = await read_stream(r, route)
        assert_one_whole_answer(read, route)
        assert read.deployment == "long"
        assert len(chats(r.primary)) == 1
        assert chats(r.spare) == []
