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
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import anthropic
import openai
import pytest
from fault_rig import (
    ANSWER,
    CLAUDE,
    GPT,
    QUESTION,
    SDK_TIMEOUT,
    SHAPES,
    Rig,
    Shape,
    chats,
    rig,
    sdk_client,
    within,
)

from fakes import fake_anthropic
from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_openai import FakeOpenAI, Fault
from gateway_harness import running_gateway
from turnout.config.load import parse_config

Route = Literal["messages", "responses"]
ROUTES: tuple[Route, ...] = ("messages", "responses")
#: Every scenario runs on both routes.
on_both_routes = pytest.mark.parametrize("route", ROUTES)
#: The rig's scenarios run in both its shapes.
in_both_shapes = pytest.mark.parametrize("shape", SHAPES)

#: Seconds within which any scenario here must end: the faults are all quick to see.
BOUND = 10.0
#: Seconds from the first model call to the last when the gateway moves on at once (no backoff,
#: no timeout waited out), as the chat suite bounds it. Measured at the fakes: the SDK's first
#: parse of the Responses API's event types alone can take seconds on a loaded machine.
AT_ONCE = 2.0
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
    #: On Responses: the response as the last event that carried it said.
    final: Any = None
    tools: list[str] = field(default_factory=list)

    @property
    def tail(self) -> str:
        return self.events[-1] if self.events else ""


async def _read_messages(url: str, tools: bool, headers: dict[str, str]) -> Read:
    fields: dict[str, Any] = {"model": "chat", "max_tokens": 256, "messages": QUESTION}
    if tools:
        fields["tools"] = [{"name": LOOKUP["name"], "input_schema": LOOKUP["parameters"]}]
    started = time.monotonic()
    client = anthropic.AsyncAnthropic(base_url=url, api_key="sk-anything", timeout=SDK_TIMEOUT)
    async with client:
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
                elif event.type == "message_delta":
                    read.ending = event.delta.stop_reason
                    read.usage = event.usage
        except anthropic.APIStatusError as error:
            # The SDK raises an ``error`` event: it is the stream's last.
            read.events.append("error")
            read.error = error.body
    read.elapsed = time.monotonic() - started
    return read


async def _read_responses(url: str, tools: bool, headers: dict[str, str]) -> Read:
    fields: dict[str, Any] = {"model": "chat", "input": QUESTION[0]["content"]}
    if tools:
        fields["tools"] = [{"type": "function", **LOOKUP}]
    started = time.monotonic()
    async with sdk_client(url) as client:
        create: Any = client.responses.with_raw_response.create
        raw = await create(stream=True, extra_headers=headers, **fields)
        read = Read([], "", set(), None, raw.headers["x-turnout-deployment"], 0.0)
        events = [event async for event in raw.parse()]
    numbers: list[int] = []
    for event in events:
        read.events.append(event.type)
        numbers.append(event.sequence_number)
        response = getattr(event, "response", None)
        if response is not None:
            read.ids.add(response.id)
            read.ending = response.status
            read.usage = response.usage
            read.error = response.error
            read.final = response
        if event.type == "response.output_text.delta":
            read.text += event.delta
        elif event.type == "response.output_item.added" and event.item.type == "function_call":
            read.tools.append(event.item.name)
    assert numbers == list(range(len(numbers))), numbers
    read.elapsed = time.monotonic() - started
    return read


async def read_stream(
    at: Rig | str, route: Route, *, tools: bool = False, headers: dict[str, str] | None = None
) -> Read:
    """The question streamed on `route` of the rig's gateway (or the one at a URL), read to its
    end; a hang fails the scenario."""
    url = at if isinstance(at, str) else at.gateway.url
    reader = _read_messages if route == "messages" else _read_responses
    return await within(BOUND, reader(url, tools, headers or {}), f"a {route} stream")


def moved_on(r: Rig) -> float:
    """Seconds from the first model call any fake received to the last one."""
    arrived = [call.received_at for fake in r.fakes.values() for call in chats(fake)]
    return max(arrived) - min(arrived)


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
        # What docs/responses-api.md promises: ``response.failed``, its error saying why and
        # its output holding what was sent.
        assert read.tail == "response.failed", read.events
        assert "response.completed" not in read.events
        assert read.ending == "failed"
        assert read.error is not None and read.error.message
        sent = "".join(
            part.text
            for item in read.final.output
            if item.type == "message"
            for part in item.content
            if part.type == "output_text"
        )
        assert sent == read.text
    assert "sk-fake" not in str(read.error)


@pytest.mark.parametrize("fault", BROKEN, ids=lambda fault: fault.kind)
@in_both_shapes
@on_both_routes
async def test_a_broken_stream_continues_as_one_stream(
    shape: Shape, route: Route, tmp_path: Path, fault: Fault
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(fault)
        read = await read_stream(r, route)
        assert_one_whole_answer(read, route)
        assert moved_on(r) < AT_ONCE
        assert len(chats(r.primary)) == 1
        [continuation] = chats(r.spare)
        messages = continuation.json["messages"]
        assert messages[0] == QUESTION[0]
        # The continuation was asked to go on from what the client had already received.
        assert messages[1]["role"] == "assistant"
        assert ANSWER.startswith(messages[1]["content"].strip())
        await r.healthy(stream=True)


@in_both_shapes
@on_both_routes
async def test_a_stream_stalled_midway_is_left_and_continued(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault("stall", after_chunks=3))
        read = await read_stream(r, route, headers={"x-turnout-idle-timeout-ms": "400"})
        assert_one_whole_answer(read, route)
        assert len(chats(r.primary)) == 1
        assert len(chats(r.spare)) == 1


@in_both_shapes
@on_both_routes
async def test_a_stream_without_done_but_finished_is_complete(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault("no_done"))
        read = await read_stream(r, route)
        assert_one_whole_answer(read, route)
        assert chats(r.spare) == []


@in_both_shapes
@on_both_routes
async def test_when_nothing_can_continue_the_client_gets_an_error_event(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault("cut", after_chunks=3))
        r.spare.set_default(Fault.server_error())
        read = await read_stream(r, route)
        assert read.text and ANSWER.startswith(read.text) and read.text != ANSWER
        assert_ends_in_error(read, route)
        assert moved_on(r) < 3.0  # the spare's own retries included, as on the chat route
        assert len(chats(r.primary)) == 1
        r.spare.set_default(None)
        await r.healthy(stream=True)


@pytest.mark.parametrize("fault", BROKEN, ids=lambda fault: fault.kind)
@in_both_shapes
@on_both_routes
async def test_with_nothing_to_continue_on_a_broken_stream_ends_in_an_error_event(
    shape: Shape, route: Route, tmp_path: Path, fault: Fault
) -> None:
    async with rig(shape, tmp_path, alone=True) as r:
        r.primary.enqueue(fault)
        read = await read_stream(r, route)
        assert read.text and ANSWER.startswith(read.text)
        assert_ends_in_error(read, route)
        assert len(chats(r.primary)) == 1  # nothing retried blindly
        assert chats(r.spare) == []
        await r.healthy(stream=True)


@in_both_shapes
@on_both_routes
async def test_usage_and_spend_after_a_continuation_are_accounted(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault("cut", after_chunks=4))
        read = await read_stream(r, route)
        assert_one_whole_answer(read, route)
        body, _ = r.gateway.gateway.metrics.render()
        metrics = body.decode()
    assert 'turnout_stream_failovers_total{error="stream_interrupted"' in metrics
    assert 'turnout_tokens_total{deployment="spare",kind="completion"' in metrics


@in_both_shapes
@on_both_routes
async def test_a_tool_call_cut_halfway_ends_in_an_error_event(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault("cut", after_chunks=2))
        read = await read_stream(r, route, tools=True)
        assert read.tools == ["lookup"]
        assert_ends_in_error(read, route)
        assert chats(r.spare) == []  # a half-sent call is never restarted blindly
        assert len(chats(r.primary)) == 1
        await r.healthy()


@in_both_shapes
@on_both_routes
async def test_a_broken_stream_continues_on_claude_by_prefill(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path, claude_spare=True) as r:
        r.primary.enqueue(Fault("cut", after_chunks=3))
        read = await read_stream(r, route)
        assert_one_whole_answer(read, route)
        [continuation] = chats(r.claude)
        assert continuation.json["messages"][-1]["role"] == "assistant"  # Claude goes on


@in_both_shapes
@on_both_routes
async def test_claude_refusing_the_prefill_is_asked_by_instruction(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path, claude_spare=True) as r:
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
@in_both_shapes
@on_both_routes
async def test_a_fault_before_the_first_byte_goes_elsewhere_unseen(
    shape: Shape, route: Route, tmp_path: Path, fault: Fault
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(fault)
        read = await read_stream(r, route)
        assert_one_whole_answer(read, route)
        assert moved_on(r) < AT_ONCE
        # Answered by the other deployment, or (one deployment per model, a fault the router
        # retries in place) by the same one again: two calls in all, as on the chat route.
        assert read.deployment in ("chat", "spare")
        assert len(chats(r.primary)) + len(chats(r.spare)) == 2
        assert len(chats(r.primary)) == (2 if read.deployment == "chat" else 1)
        await r.healthy(stream=True)


@in_both_shapes
@on_both_routes
async def test_a_slow_first_token_is_left_before_anything_is_sent(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault("slow_first_token", seconds=20))
        read = await read_stream(r, route, headers={"x-turnout-first-token-timeout-ms": "400"})
        assert_one_whole_answer(read, route)
        assert read.deployment == "spare"
        assert (len(chats(r.primary)), len(chats(r.spare))) == (1, 1)


@in_both_shapes
@on_both_routes
async def test_context_window_exceeded_on_a_stream_goes_to_its_fallback(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault.context_length_exceeded())
        read = await read_stream(r, route)
        assert_one_whole_answer(read, route)
        assert read.deployment == "long"
        assert len(chats(r.primary)) == 1
        assert chats(r.spare) == []


# ---- native deployments: Anthropic's own Messages stream, OpenAI's own Responses stream -------


@dataclass
class Native:
    """A LiteLLM config of one deployment per model: ``chat``, served natively on `route`
    (Anthropic for Messages, OpenAI with ``native_responses`` for Responses), falling back to
    ``spare`` (an OpenAI-compatible server, translated) unless it is ``alone``."""

    url: str
    native: FakeAnthropic | FakeOpenAI
    spare: FakeOpenAI
    #: The path the native deployment is called at.
    path: str

    def calls(self) -> tuple[int, int]:
        native = [r for r in self.native.requests if r.path == self.path]
        return len(native), len(chats(self.spare))


@asynccontextmanager
async def native(route: Route, *, alone: bool = False) -> AsyncIterator[Native]:
    async with AsyncExitStack() as stack:
        spare = await stack.enter_async_context(FakeOpenAI(chunk_delay=0.005))
        first: FakeAnthropic | FakeOpenAI
        if route == "messages":
            first = await stack.enter_async_context(FakeAnthropic(chunk_delay=0.005))
            params: dict[str, Any] = {"model": f"anthropic/{CLAUDE}", "api_key": "sk-ant-fake"}
        else:
            first = await stack.enter_async_context(FakeOpenAI(chunk_delay=0.005))
            params = {"model": f"openai/{GPT}", "api_key": "sk-fake", "native_responses": True}
        model_list = [
            {
                "model_name": "chat",
                "litellm_params": {**params, "api_base": first.url},
                "model_info": {"id": "chat"},
            },
            {
                "model_name": "spare",
                "litellm_params": {
                    "model": f"openai/{GPT}",
                    "api_base": spare.url,
                    "api_key": "sk-fake",
                },
                "model_info": {"id": "spare"},
            },
        ]
        settings: dict[str, Any] = {"num_retries": 2, "timeout": 30}
        if not alone:
            settings["fallbacks"] = [{"chat": ["spare"]}]
        config = parse_config({"model_list": model_list, "router_settings": settings})
        gateway = await stack.enter_async_context(running_gateway(config))
        path = "/v1/messages" if route == "messages" else "/v1/responses"
        yield Native(gateway.url, first, spare, path)


def _native_fault(route: Route, kind: str, after: int, **options: Any) -> Any:
    """`kind` after `after` events of the native stream (Anthropic's count message_start and
    ping; OpenAI's, response.created and response.in_progress)."""
    if route == "messages":
        return fake_anthropic.Fault(kind, after_chunks=after, **options)  # type: ignore[arg-type]
    return Fault(kind, after_chunks=after, path="/v1/responses", **options)  # type: ignore[arg-type]


#: Events each native fake sends before its first text: Anthropic's message_start,
#: content_block_start and ping; OpenAI's created, in_progress, output_item.added and
#: content_part.added. A fault after them and one or two words has sent some of the answer.
OPENING = {"messages": 3, "responses": 4}


@pytest.mark.parametrize("kind", ["cut", "error_event"])
@on_both_routes
async def test_a_native_stream_broken_after_some_text_is_continued_as_one_stream(
    route: Route, kind: str
) -> None:
    async with native(route) as n:
        n.native.enqueue(_native_fault(route, kind, OPENING[route] + 2))
        read = await read_stream(n.url, route)
        assert_one_whole_answer(read, route)
        assert n.calls() == (1, 1)


@pytest.mark.parametrize("kind", ["cut", "error_event"])
@on_both_routes
async def test_a_native_stream_broken_before_any_text_is_answered_unseen(
    route: Route, kind: str
) -> None:
    """Only the stream's opening events came (no content): another attempt's answer is the
    whole answer, in the one message or response the client reads (on /v1/messages the
    opening events are held until content, so the break is a failure to open: retried)."""
    async with native(route) as n:
        n.native.enqueue(_native_fault(route, kind, 1))
        read = await read_stream(n.url, route)
        assert_one_whole_answer(read, route)
        assert n.calls() in ((2, 0), (1, 1))  # retried, or fallen back: either way unseen


@on_both_routes
async def test_a_native_stream_nothing_can_continue_ends_in_an_error_event(route: Route) -> None:
    async with native(route, alone=True) as n:
        n.native.enqueue(_native_fault(route, "cut", OPENING[route] + 2))
        read = await read_stream(n.url, route)
        assert read.text and ANSWER.startswith(read.text) and read.text != ANSWER
        assert_ends_in_error(read, route)
        assert n.calls() == (1, 0)


@in_both_shapes
async def test_a_continued_response_is_stored_whole_for_the_next_turn(
    shape: Shape, tmp_path: Path
) -> None:
    """The stored conversation holds the answer the client saw, not the broken attempt's part
    of it: the follow-up turn sends the whole of it back upstream."""
    async with rig(shape, tmp_path) as r:
        r.primary.enqueue(Fault("cut", after_chunks=3))
        read = await read_stream(r, "responses")
        assert_one_whole_answer(read, "responses")
        [response_id] = read.ids
        stored = await r.client.responses.retrieve(response_id)
        assert (stored.status, stored.output_text) == ("completed", ANSWER)
        follow_up = await r.client.responses.create(
            model="chat", input="And then?", previous_response_id=response_id
        )
        assert follow_up.output_text == "Fake answer to: And then?"
        last = max([*chats(r.primary), *chats(r.spare)], key=lambda call: call.received_at)
        assert last.json["messages"] == [
            QUESTION[0],
            {"role": "assistant", "content": ANSWER},
            {"role": "user", "content": "And then?"},
        ]


@in_both_shapes
@on_both_routes
async def test_429_on_a_deployment_alone_is_a_clean_bounded_429(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    """Both SDKs at their default retries: the gateway's ``x-should-retry: false`` keeps them
    from repeating a wait past the caller's deadline."""
    async with rig(shape, tmp_path, alone=True) as r:
        r.primary.set_default(Fault.rate_limited(retry_after=45))
        started = time.monotonic()
        with pytest.raises((anthropic.RateLimitError, openai.RateLimitError)) as caught:
            await read_stream(r, route)
        assert time.monotonic() - started < 5.0  # 45 s is not waited out
        error: Any = caught.value  # either SDK's RateLimitError
        assert error.status_code == 429
        assert error.response.headers["x-should-retry"] == "false"
        body = error.body
        if route == "messages":
            assert body["type"] == "error"
            assert body["error"]["type"] == "rate_limit_error"
        else:
            assert body["code"] == "rate_limit_exceeded"
        assert len(chats(r.primary)) == 1  # never hammered
        assert chats(r.spare) == []


@in_both_shapes
@on_both_routes
async def test_429_on_a_stream_with_nothing_else_up_waits_only_as_asked(
    shape: Shape, route: Route, tmp_path: Path
) -> None:
    """A wait that ends well before the answer must begin is still worth it on a stream."""
    async with rig(shape, tmp_path) as r:
        await r.gateway.gateway.router.cool_down("spare", 60)
        r.primary.enqueue(Fault.rate_limited(retry_after=1))
        read = await read_stream(r, route)
        assert_one_whole_answer(read, route)
        assert read.deployment == "chat"
        assert 0.95 <= moved_on(r) < 2.0  # the provider's 1 s, not the 5 s default
        assert chats(r.spare) == []
