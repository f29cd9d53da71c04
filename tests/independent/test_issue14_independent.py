"""Issue 14, "Drop-in for every client", checked from the issue's text and the official APIs
alone: the Responses API and Anthropic's Messages API through the official SDKs, against a real
`turnout serve` of a LiteLLM config in front of the provider fakes, and against the demo;
``GET /v1/models/{id}``; LiteLLM configs that load as written, and `turnout check-config`.

Each API is tried through a provider that speaks it natively and one the gateway translates to
(``gpt``: the OpenAI fake, ``claude``: the Anthropic fake). The fakes answer "Fake answer to:
<the last user text>", and a call of the first tool when tools are offered to a user turn.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import openai
import pytest
import pytest_asyncio
from issue14_rig import (
    ANTHROPIC_KEY,
    MASTER,
    ROUTES,
    SECRETS,
    WRONG_KEY,
    Served,
    error_json,
    model_entry,
    raw_events,
    served_demo,
    served_fakes,
    turnout,
    write_config,
)
from issue14_rig_checks import (
    DEMO_MODEL,
    GROUPS,
    LITELLM_DOCS_CONFIG,
    LITELLM_DOCS_ENV,
    PERSON,
    PNG_BASE64,
    RESPONSE_TEXT_EVENTS,
    WEATHER,
    WEATHER_ANTHROPIC,
    assert_message_event_order,
    assert_person,
    break_group,
    demo_anthropic,
    demo_openai,
    expected_text,
    stream_outcome,
    stream_request,
    text_of,
    upstream_text,
    with_unsupported,
)

from fakes.fake_anthropic import FakeAnthropic
from fakes.fake_anthropic import Fault as AnthropicFault
from fakes.fake_openai import FakeOpenAI
from fakes.fake_openai import Fault as OpenAIFault
from serve_process import serving

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Served]:
    async with served_fakes(tmp_path_factory.mktemp("issue14")) as served:
        yield served


@pytest_asyncio.fixture(loop_scope="module")
async def served(gateway: Served) -> AsyncIterator[Served]:
    """The module's gateway, its fakes cleared of requests and faults for each test; no secret
    may have reached its log by the end of it."""
    gateway.fakes.reset()
    yield gateway
    gateway.fakes.reset()
    log = "".join(gateway.log)
    leaked = [secret for secret in SECRETS if secret in log]
    assert not leaked, f"secrets {leaked} appear in the gateway's log"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def demo() -> AsyncIterator[str]:
    async with served_demo() as (url, _):
        yield url


# ---- Responses API ---------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
async def test_responses_create_whole(served: Served, group: str) -> None:
    async with served.openai() as client:
        reply = await client.responses.create(
            model=group, input="Hello there", instructions="Answer in French."
        )
    assert reply.object == "response" and reply.status == "completed", reply
    assert reply.id.startswith("resp_"), f"a Responses id starts with resp_: {reply.id!r}"
    assert reply.output_text == expected_text("Hello there"), reply.output_text
    message = reply.output[0]
    assert message.type == "message" and message.role == "assistant", reply.output
    assert reply.usage is not None and reply.usage.input_tokens > 0, reply.usage
    assert reply.usage.output_tokens > 0 and reply.usage.total_tokens == (
        reply.usage.input_tokens + reply.usage.output_tokens
    ), reply.usage
    upstream = served.fakes.gpt if group == "gpt" else served.fakes.claude
    assert "Answer in French." in upstream_text(upstream.requests[-1].json), (
        f"instructions did not reach the upstream: {upstream.requests[-1].json}"
    )


@pytest.mark.parametrize("group", GROUPS)
async def test_responses_streamed_events_are_typed_numbered_and_terminated(
    served: Served, group: str
) -> None:
    async with served.openai() as client:
        stream = await client.responses.create(model=group, input="Stream me", stream=True)
        events: list[Any] = [event async for event in stream]
    types = [event.type for event in events]
    numbers = [event.sequence_number for event in events]
    assert numbers == list(range(len(events))), f"sequence numbers {numbers} for {types}"
    deduplicated = [kind for index, kind in enumerate(types) if kind not in types[:index]]
    assert deduplicated == RESPONSE_TEXT_EVENTS, f"events out of the documented order: {types}"
    assert types[-1] == "response.completed", types
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    final = events[-1].response
    assert deltas == final.output_text == expected_text("Stream me"), (deltas, final.output_text)
    assert final.usage is not None and final.usage.output_tokens > 0, final.usage
    assert all(event.response.id == final.id for event in events if hasattr(event, "response"))
    assert events[0].response.status == "in_progress", events[0]
    item = final.output[0]
    for event in events:
        if event.type.startswith("response.output_text") or "content_part" in event.type:
            assert (event.item_id, event.output_index, event.content_index) == (item.id, 0, 0), (
                event
            )


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_responses_tool_call_then_function_call_output(
    served: Served, group: str, stream: bool
) -> None:
    async with served.openai() as client:
        ask: Any = {"model": group, "input": "Weather in Paris?", "tools": [WEATHER]}
        first: Any
        if stream:
            async with client.responses.stream(**ask) as events:
                kinds = [event.type async for event in events]
                first = await events.get_final_response()
            for kind in ("arguments.delta", "arguments.done"):
                assert f"response.function_call_{kind}" in kinds, kinds
        else:
            first = await client.responses.create(**ask)
        calls = [item for item in first.output if item.type == "function_call"]
        assert len(calls) == 1, f"expected one function_call item: {first.output}"
        call = calls[0]
        assert call.name == "get_weather" and call.call_id, call
        assert isinstance(json.loads(call.arguments), dict), call.arguments
        result: Any = {
            "type": "function_call_output",
            "call_id": call.call_id,
            "output": "sunny, 21C",
        }
        second = await client.responses.create(
            model=group, input=[*first.output, result], tools=[WEATHER], store=False
        )
    assert second.output_text, f"no answer after the tool result: {second.output}"
    upstream = served.fakes.gpt if group == "gpt" else served.fakes.claude
    sent = upstream_text(upstream.requests[-1].json)
    assert "sunny, 21C" in sent and call.call_id in sent, f"tool result not sent upstream: {sent}"


@pytest.mark.parametrize("group", GROUPS)
async def test_responses_multimodal_input(served: Served, group: str) -> None:
    image = f"data:image/png;base64,{PNG_BASE64}"
    content: Any = [
        {"type": "input_text", "text": "What is in this picture?"},
        {"type": "input_image", "image_url": image, "detail": "low"},
    ]
    async with served.openai() as client:
        reply = await client.responses.create(
            model=group, input=[{"role": "user", "content": content}]
        )
    assert reply.output_text == expected_text("What is in this picture?"), reply.output_text
    upstream = served.fakes.gpt if group == "gpt" else served.fakes.claude
    sent = upstream_text(upstream.requests[-1].json)
    assert image.split(",", 1)[1] in sent, f"the image did not reach the upstream: {sent}"


async def test_responses_structured_output(served: Served) -> None:
    text_format: Any = {
        "format": {"type": "json_schema", "name": "person", "schema": PERSON, "strict": True}
    }
    async with served.openai() as client:
        await client.responses.create(model="gpt", input="Who?", text=text_format)
        native = served.fakes.gpt.requests[-1].json
        answer = await client.responses.create(model="claude", input="Who?", text=text_format)
    assert native.get("response_format", {}).get("type") == "json_schema", native
    assert native["response_format"]["json_schema"]["schema"] == PERSON, native
    person = json.loads(answer.output_text)
    assert isinstance(person.get("name"), str) and isinstance(person.get("age"), int), person


@pytest.mark.parametrize("group", GROUPS)
async def test_responses_previous_response_id_over_three_turns(served: Served, group: str) -> None:
    upstream = served.fakes.gpt if group == "gpt" else served.fakes.claude
    async with served.openai() as client:
        first = await client.responses.create(
            model=group, input="My name is Ada.", instructions="Be kind."
        )
        second = await client.responses.create(
            model=group, input="I live in Lyon.", previous_response_id=first.id
        )
        third = await client.responses.create(
            model=group, input="Where do I live?", previous_response_id=second.id
        )
    assert third.previous_response_id == second.id, third.previous_response_id
    sent = upstream_text(upstream.requests[-1].json)
    for earlier in ("My name is Ada.", first.output_text, "I live in Lyon.", second.output_text):
        assert earlier in sent, f"turn 3 lost {earlier!r} of the conversation: {sent}"


async def test_responses_retrieve_delete_and_store_false(served: Served) -> None:
    async with served.openai(max_retries=0) as client:
        kept = await client.responses.create(model="gpt", input="Keep me")
        again = await client.responses.retrieve(kept.id)
        assert again.id == kept.id and again.output_text == kept.output_text, again
        events: list[Any] = [
            e
            async for e in await client.responses.create(
                model="claude", input="Me too", stream=True
            )
        ]
        streamed = await client.responses.retrieve(events[-1].response.id)
        assert streamed.output_text == expected_text("Me too"), streamed
        deleted = await client.delete(f"/responses/{kept.id}", cast_to=object)
        assert isinstance(deleted, dict) and deleted.get("deleted") is True, deleted
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(kept.id)
        unstored = await client.responses.create(model="gpt", input="Forget me", store=False)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(unstored.id)
        with pytest.raises(openai.APIStatusError) as refused:
            await client.responses.create(
                model="gpt", input="And then?", previous_response_id=unstored.id
            )
    assert refused.value.status_code in (400, 404), refused.value
    assert unstored.id in refused.value.message, refused.value.message


@pytest.mark.parametrize(
    ("key", "options", "status", "param"),
    [
        (MASTER, {"model": "no-such-model", "input": "Hi"}, 404, None),
        (WRONG_KEY, {"model": "gpt", "input": "Hi"}, 401, None),
        (MASTER, {"model": "gpt"}, 400, "input"),
    ],
    ids=["unknown-model", "wrong-key", "no-input"],
)
async def test_responses_errors_in_openai_shape(
    served: Served, key: str, options: dict[str, Any], status: int, param: str | None
) -> None:
    async with served.openai(key, max_retries=0) as client:
        with pytest.raises(openai.APIStatusError) as raised:
            await client.post("/responses", body=options, cast_to=object)
    body = error_json(raised.value)
    assert raised.value.status_code == status, body
    error = body.get("error") if isinstance(body, dict) else None
    assert isinstance(error, dict) and {"message", "type", "param", "code"} <= error.keys(), body
    if param is not None:
        assert error["param"] == param or param in error["message"], body
    assert not any(secret in json.dumps(body) for secret in SECRETS), body
    assert not served.fakes.gpt.requests, "a refused request reached the upstream"


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_responses_cut_by_max_output_tokens_is_incomplete(
    served: Served, group: str, stream: bool
) -> None:
    ask: Any = {"model": group, "input": "Say many words for me now", "max_output_tokens": 3}
    reply: Any
    async with served.openai() as client:
        if stream:
            events = [event async for event in await client.responses.create(**ask, stream=True)]
            assert events[-1].type == "response.incomplete", [e.type for e in events]
            reply = events[-1].response
        else:
            reply = await client.responses.create(**ask)
    assert reply.status == "incomplete", reply
    assert reply.incomplete_details.reason == "max_output_tokens", reply.incomplete_details
    assert reply.output_text == "Fake answer to:", reply.output_text


async def test_responses_reasoning_and_tool_choice_reach_the_upstream(served: Served) -> None:
    bash: Any = {**WEATHER, "name": "run_bash", "description": "Run a command"}
    async with served.openai() as client:
        reply = await client.responses.create(
            model="gpt",
            input="Weather in Paris?",
            reasoning={"effort": "low"},
            tools=[WEATHER, bash],
            tool_choice={"type": "function", "name": "run_bash"},
        )
    sent = served.fakes.gpt.requests[-1].json
    assert sent.get("reasoning_effort") == "low", sent
    assert sent.get("tool_choice") == {"type": "function", "function": {"name": "run_bash"}}, sent
    calls = [item for item in reply.output if item.type == "function_call"]
    assert [call.name for call in calls] == ["run_bash"], reply.output


# ---- Messages API ----------------------------------------------------------------------------


@pytest.mark.parametrize("group", GROUPS)
async def test_messages_create_whole(served: Served, group: str) -> None:
    async with served.anthropic() as client:
        message = await client.messages.create(
            model=group,
            max_tokens=64,
            system="You are terse.",
            messages=[{"role": "user", "content": "Hello there"}],
        )
    assert message.type == "message" and message.role == "assistant", message
    assert message.id.startswith("msg_"), message.id
    assert [block.type for block in message.content] == ["text"], message.content
    assert text_of(message) == expected_text("Hello there"), message.content
    assert message.stop_reason == "end_turn", message.stop_reason
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0, message.usage
    upstream = served.fakes.gpt if group == "gpt" else served.fakes.claude
    assert "You are terse." in upstream_text(upstream.requests[-1].json)


@pytest.mark.parametrize("group", GROUPS)
@pytest.mark.parametrize("tools", [False, True], ids=["text", "tool_use"])
async def test_messages_streamed_exact_event_order(served: Served, group: str, tools: bool) -> None:
    body: dict[str, Any] = {
        "model": group,
        "max_tokens": 64,
        "stream": True,
        "messages": [{"role": "user", "content": "Weather in Paris?"}],
    }
    if tools:
        body["tools"] = [WEATHER_ANTHROPIC]
    headers = {"x-api-key": MASTER, "anthropic-version": "2023-06-01"}
    status, events, ending = await raw_events(f"{served.url}/v1/messages", body, headers)
    assert status == 200 and ending == "clean", (status, ending, events)
    assert_message_event_order(events)
    start = events[0].data["message"]
    assert start["role"] == "assistant" and start["content"] == [], start
    assert start["id"].startswith("msg_") and start["usage"]["input_tokens"] > 0, start
    delta = next(e.data for e in events if e.name == "message_delta")
    assert delta["delta"]["stop_reason"] == ("tool_use" if tools else "end_turn"), delta
    assert delta["usage"]["output_tokens"] > 0, delta
    pieces = [e.data["delta"] for e in events if e.name == "content_block_delta"]
    if tools:
        assert {piece["type"] for piece in pieces} == {"input_json_delta"}, pieces
        arguments = json.loads("".join(piece["partial_json"] for piece in pieces))
        assert isinstance(arguments, dict), arguments
    else:
        text = "".join(piece["text"] for piece in pieces)
        assert text == expected_text("Weather in Paris?"), text


@pytest.mark.parametrize("group", GROUPS)
async def test_messages_tool_use_over_two_turns_streamed(served: Served, group: str) -> None:
    """As Claude Code does: system prompt, tools, a streamed turn ending in tool_use, then the
    tool's result sent back."""
    history: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    ask: Any = {"model": group, "max_tokens": 256, "system": "You are a coding agent."}
    async with served.anthropic() as client:
        async with client.messages.stream(
            **ask, tools=[WEATHER_ANTHROPIC], messages=history
        ) as stream:
            first = await stream.get_final_message()
        assert first.stop_reason == "tool_use", first
        uses = [block for block in first.content if block.type == "tool_use"]
        assert len(uses) == 1 and uses[0].name == "get_weather", first.content
        assert uses[0].id and isinstance(uses[0].input, dict), uses[0]
        history += [
            {"role": "assistant", "content": [block.model_dump() for block in first.content]},
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": uses[0].id, "content": "sunny, 21C"}
                ],
            },
        ]
        second = await client.messages.create(**ask, tools=[WEATHER_ANTHROPIC], messages=history)
    assert second.stop_reason == "end_turn" and second.content[0].type == "text", second
    upstream = served.fakes.gpt if group == "gpt" else served.fakes.claude
    sent = upstream_text(upstream.requests[-1].json)
    assert "sunny, 21C" in sent and uses[0].id in sent, sent


@pytest.mark.parametrize("group", GROUPS)
async def test_claude_code_style_session_over_the_beta_route(served: Served, group: str) -> None:
    """What Claude Code sends: ``client.beta.messages`` (``/v1/messages?beta=true``) with
    ``anthropic-beta`` flags, a system prompt of text blocks with ``cache_control``,
    ``metadata.user_id``, tools, streaming, and tool results over several turns; and
    ``count_tokens`` on the same route."""
    system: Any = [
        {"type": "text", "text": "You are Claude Code.", "cache_control": {"type": "ephemeral"}},
        {"type": "text", "text": "Work in the repository."},
    ]
    bash: Any = {
        "name": "Bash",
        "description": "Run a shell command",
        "input_schema": {
            "type": "object",
            "properties": {"command": {"type": "string"}},
            "required": ["command"],
        },
    }
    ask: Any = {
        "model": group,
        "max_tokens": 512,
        "system": system,
        "tools": [bash, WEATHER_ANTHROPIC],
        "metadata": {"user_id": "user_issue14"},
        "betas": ["claude-code-20250219", "fine-grained-tool-streaming-2025-05-14"],
    }
    history: list[Any] = [{"role": "user", "content": "List the files."}]
    async with served.anthropic() as client:
        for turn in range(2):
            async with client.beta.messages.stream(**ask, messages=history) as stream:
                message = await stream.get_final_message()
            assert message.stop_reason == "tool_use", f"turn {turn}: {message}"
            use = next(block for block in message.content if block.type == "tool_use")
            assert use.name == "Bash" and isinstance(use.input, dict), use
            result = {"type": "tool_result", "tool_use_id": use.id, "content": f"file{turn}"}
            history += [
                {"role": "assistant", "content": [b.model_dump() for b in message.content]},
                {"role": "user", "content": [result]},
            ]
            async with client.beta.messages.stream(**ask, messages=history) as stream:
                answer = await stream.get_final_message()
            assert answer.stop_reason == "end_turn", f"turn {turn}, after the tool: {answer}"
            assert answer.content and answer.content[0].type == "text", answer
            history += [
                {"role": "assistant", "content": text_of(answer)},
                {"role": "user", "content": f"Now the next one, {turn}."},
            ]
        counted = await client.beta.messages.count_tokens(
            model=group, system=system, tools=[bash], messages=history, betas=ask["betas"]
        )
    assert counted.input_tokens > 0, counted
    upstream = served.fakes.gpt if group == "gpt" else served.fakes.claude
    sent = upstream_text(upstream.requests[-1].json)
    assert "file0" in sent and "file1" in sent and "You are Claude Code." in sent, sent


@pytest.mark.parametrize("group", GROUPS)
async def test_messages_stop_sequence_max_tokens_and_tool_choice(
    served: Served, group: str
) -> None:
    ask: Any = {"model": group, "messages": [{"role": "user", "content": "Hi there"}]}
    bash: Any = {**WEATHER_ANTHROPIC, "name": "run_bash"}
    async with served.anthropic() as client:
        stopped = await client.messages.create(**ask, max_tokens=64, stop_sequences=["to:"])
        capped = await client.messages.create(**ask, max_tokens=2)
        chosen = await client.messages.create(
            **ask,
            max_tokens=64,
            tools=[WEATHER_ANTHROPIC, bash],
            tool_choice={"type": "tool", "name": "run_bash"},
        )
    if group == "claude":
        assert stopped.stop_reason == "stop_sequence" and stopped.stop_sequence == "to:", stopped
        assert text_of(stopped) == "Fake answer ", stopped
    else:  # the OpenAI fake ignores `stop`: what is checked is that it was asked to
        sent = [r.json for r in served.fakes.gpt.requests if r.json.get("max_tokens") != 2]
        assert sent[0].get("stop") == ["to:"], sent[0]
    assert capped.stop_reason == "max_tokens" and capped.usage.output_tokens == 2, capped
    uses = [block for block in chosen.content if block.type == "tool_use"]
    assert chosen.stop_reason == "tool_use" and [use.name for use in uses] == ["run_bash"], chosen


async def test_messages_image_is_translated_for_an_openai_deployment(served: Served) -> None:
    data = PNG_BASE64
    content: Any = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": data}},
        {"type": "text", "text": "What is this?"},
    ]
    async with served.anthropic() as client:
        message = await client.messages.create(
            model="gpt", max_tokens=64, messages=[{"role": "user", "content": content}]
        )
    assert text_of(message) == expected_text("What is this?"), message
    parts = served.fakes.gpt.requests[-1].json["messages"][-1]["content"]
    urls = [part["image_url"]["url"] for part in parts if part.get("type") == "image_url"]
    assert urls == [f"data:image/png;base64,{data}"], parts


@pytest.mark.parametrize("group", GROUPS)
async def test_messages_count_tokens(served: Served, group: str) -> None:
    async with served.anthropic() as client:
        short = await client.messages.count_tokens(
            model=group, messages=[{"role": "user", "content": "Hi"}]
        )
        long = await client.messages.count_tokens(
            model=group,
            system="You are a careful assistant.",
            tools=[WEATHER_ANTHROPIC],
            messages=[{"role": "user", "content": "Hi, " + "tell me more. " * 50}],
        )
    assert isinstance(short.input_tokens, int) and short.input_tokens > 0, short
    async with served.anthropic(max_retries=0) as client:
        with pytest.raises(anthropic.NotFoundError) as missing:
            await client.messages.count_tokens(
                model="no-such-model", messages=[{"role": "user", "content": "Hi"}]
            )
    assert error_json(missing.value).get("error", {}).get("type") == "not_found_error"
    assert long.input_tokens > short.input_tokens + 50, (short, long)


@pytest.mark.parametrize("how", ["x-api-key", "bearer"])
async def test_messages_auth_by_x_api_key_or_bearer(served: Served, how: str) -> None:
    options: Any = (
        {"api_key": MASTER} if how == "x-api-key" else {"api_key": None, "auth_token": MASTER}
    )
    ask: Any = {
        "model": "claude",
        "max_tokens": 32,
        "messages": [{"role": "user", "content": "Hi"}],
    }
    client = anthropic.AsyncAnthropic(base_url=served.url, timeout=20.0, **options)
    async with client:
        message = await client.messages.create(**ask)
    assert text_of(message) == expected_text("Hi"), message
    wrong: Any = {key: WRONG_KEY if value else value for key, value in options.items()}
    async with anthropic.AsyncAnthropic(base_url=served.url, max_retries=0, **wrong) as client:
        with pytest.raises(anthropic.AuthenticationError) as refused:
            await client.messages.create(**ask)
        with pytest.raises(anthropic.AuthenticationError) as refused_count:
            await client.messages.count_tokens(model="claude", messages=ask["messages"])
    for error in (refused.value, refused_count.value):
        body = error_json(error)
        assert body.get("type") == "error", body
        assert body.get("error", {}).get("type") == "authentication_error", body
        assert WRONG_KEY not in error.response.text, body


@pytest.mark.parametrize(
    ("body", "status", "kind"),
    [
        ({"model": "claude", "messages": [{"role": "user", "content": "Hi"}]}, 400, None),
        ({"model": "claude", "max_tokens": 8, "messages": "Hi"}, 400, None),
        ({"model": "claude", "max_tokens": 8}, 400, None),
        (
            {
                "model": "claude",
                "max_tokens": 8,
                "temperature": 1.5,
                "messages": [{"role": "user", "content": "Hi"}],
            },
            400,
            None,
        ),
        (
            {"model": "nope", "max_tokens": 8, "messages": [{"role": "user", "content": "Hi"}]},
            404,
            "not_found_error",
        ),
    ],
    ids=[
        "no-max-tokens",
        "messages-not-a-list",
        "no-messages",
        "temperature-over-1",
        "unknown-model",
    ],
)
async def test_messages_errors_in_anthropic_shape(
    served: Served, body: dict[str, Any], status: int, kind: str | None
) -> None:
    headers = {"x-api-key": MASTER, "anthropic-version": "2023-06-01"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{served.url}/v1/messages", json=body, headers=headers) as response,
    ):
        answer = await response.json(content_type=None)
    assert response.status == status, answer
    assert answer.get("type") == "error", answer
    error = answer.get("error")
    expected = kind or "invalid_request_error"
    assert isinstance(error, dict) and error.get("type") == expected, answer
    assert isinstance(error.get("message"), str) and error["message"], answer
    if "temperature" not in body:  # Anthropic's own range: refused by the gateway or by it
        assert not served.fakes.claude.requests, "a refused request reached the upstream"


async def test_messages_native_pass_through_keeps_thinking_signatures_and_headers(
    served: Served,
) -> None:
    """The Anthropic fake cannot produce thinking blocks, so what is checked is the other half
    of "thinking blocks and signatures preserved": an assistant turn's thinking and
    redacted_thinking blocks reach Anthropic byte for byte, with ``thinking`` enabled and the
    caller's ``anthropic-version`` and ``anthropic-beta``."""
    thinking = {"type": "thinking", "thinking": "Paris is in France.", "signature": "EqQBCgIYAh=="}
    redacted = {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"}
    history: Any = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": [
                thinking,
                redacted,
                {
                    "type": "tool_use",
                    "id": "toolu_01",
                    "name": "get_weather",
                    "input": {"city": "Paris"},
                },
            ],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "toolu_01", "content": "sunny"}],
        },
    ]
    beta = "interleaved-thinking-2025-05-14"
    async with served.anthropic() as client:
        await client.messages.create(
            model="claude",
            max_tokens=2048,
            thinking={"type": "enabled", "budget_tokens": 1024},
            tools=[WEATHER_ANTHROPIC],
            messages=history,
            extra_headers={"anthropic-beta": beta, "anthropic-version": "2023-06-01"},
        )
    received = served.fakes.claude.requests[-1]
    assert received.json["messages"][1]["content"][:2] == [thinking, redacted], received.json
    assert received.json.get("thinking") == {"type": "enabled", "budget_tokens": 1024}
    assert received.headers.get("anthropic-beta") == beta, received.headers
    assert received.headers.get("anthropic-version") == "2023-06-01", received.headers
    assert received.headers.get("x-api-key") == ANTHROPIC_KEY, "not the deployment's own key"


# ---- Resilience on the new routes ------------------------------------------------------------


@pytest.mark.parametrize("family", GROUPS)
@pytest.mark.parametrize("route", ROUTES)
async def test_primary_failing_with_500s_is_answered_by_the_fallback(
    served: Served, family: str, route: str
) -> None:
    model = f"flaky-{family}-{route}"
    primary = break_group(served, model, "status", always=True)
    fallback = served.fakes.by_group[family]
    if route == "responses":
        async with served.openai() as client:
            text = (await client.responses.create(model=model, input="Hi")).output_text
    else:
        async with served.anthropic() as client:
            message = await client.messages.create(
                model=model, max_tokens=32, messages=[{"role": "user", "content": "Hi"}]
            )
            text = text_of(message)
    assert text == expected_text("Hi"), text
    assert primary.requests, "the primary was never tried"
    assert fallback.requests, "the fallback did not answer"


@pytest.mark.parametrize("family", GROUPS)
@pytest.mark.parametrize("route", ROUTES)
async def test_stream_cut_midway_is_continued_or_ends_in_an_error_event(
    served: Served, family: str, route: str
) -> None:
    question = "Please tell me a rather long story about a lighthouse keeper"
    model = f"cut-{family}-{route}"
    primary = break_group(served, model, "cut")
    url, headers, body = stream_request(served, route, model, question)
    status, events, ending = await raw_events(url, body, headers)
    assert status == 200, events
    assert primary.requests and not primary.queued, "the cut deployment was never tried"
    how, text = stream_outcome(route, events)
    names = [event.name for event in events]
    assert how != "truncated", f"the cut stream ended silently ({ending}): {names}"
    if how == "completed":
        assert text == expected_text(question), f"continued stream's text is wrong: {text!r}"
    if route == "messages" and how == "completed":
        assert_message_event_order(events)
    elif route == "responses":
        numbers = [event.data.get("sequence_number") for event in events]
        assert numbers == list(range(len(events))), numbers


@pytest.mark.parametrize("fault", ["cut", "error_event"])
@pytest.mark.parametrize("family", GROUPS)
@pytest.mark.parametrize("route", ROUTES)
async def test_stream_broken_on_every_attempt_ends_in_the_routes_error_event(
    served: Served, family: str, route: str, fault: str
) -> None:
    """No deployment can finish it (cut, or an error event mid-way, each time): the caller
    must be told, in the route's own terms."""
    question = "Please tell me a rather long story about a lighthouse keeper"
    model = f"lone-{family}-{route}-{fault}"
    break_group(served, model, fault, always=True)
    url, headers, body = stream_request(served, route, model, question)
    status, events, ending = await raw_events(url, body, headers)
    names = [event.name for event in events]
    assert status == 200, (status, events)
    how, _ = stream_outcome(route, events)
    assert how == "error", f"a stream no deployment finished ended {how} ({ending}): {names}"
    last = events[-1].data
    error = last.get("response", {}).get("error") if route == "responses" else last.get("error")
    assert isinstance(error, dict) and error.get("message"), last
    shown = json.dumps([event.data for event in events])
    assert not any(secret in shown for secret in SECRETS), "a secret in the event stream"


@pytest.mark.parametrize("route", ["responses", "messages"])
async def test_upstream_refusal_is_answered_in_the_routes_shape(served: Served, route: str) -> None:
    """A translated provider's 400 reaches the caller as the caller's API says a 400 looks."""
    if route == "messages":
        served.fakes.gpt.set_default(OpenAIFault.context_length_exceeded())
        async with served.anthropic(max_retries=0) as client:
            with pytest.raises(anthropic.BadRequestError) as refused:
                await client.messages.create(
                    model="gpt", max_tokens=16, messages=[{"role": "user", "content": "Hi"}]
                )
        body = error_json(refused.value)
        assert body.get("type") == "error", body
        assert body.get("error", {}).get("type") == "invalid_request_error", body
        return
    served.fakes.claude.set_default(
        AnthropicFault.http_error(400, "invalid_request_error", "prompt is too long")
    )
    async with served.openai(max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as raised:
            await client.responses.create(model="claude", input="Hi")
    error = error_json(raised.value).get("error", {})
    assert error.get("type") == "invalid_request_error", error
    assert "prompt is too long" in error.get("message", ""), error


# ---- Models ----------------------------------------------------------------------------------


async def test_models_retrieve(served: Served) -> None:
    async with served.openai(max_retries=0) as client:
        model = await client.models.retrieve("claude")
        listed = [item.id async for item in client.models.list()]
        with pytest.raises(openai.NotFoundError) as missing:
            await client.models.retrieve("no-such-model")
    assert model.id == "claude" and model.object == "model", model
    assert {"gpt", "claude", "lone-gpt-messages-cut", "house-model"} <= set(listed), listed
    async with served.openai() as client:
        alias = await client.models.retrieve("house-model")
        reply = await client.responses.create(model="house-model", input="Hi")
    assert alias.id == "house-model", alias
    assert reply.output_text == expected_text("Hi") and served.fakes.claude.requests, reply
    error = error_json(missing.value).get("error", {})
    assert error.get("type") and "no-such-model" in error.get("message", ""), error


async def test_demo_lists_and_retrieves_aliases(demo: str) -> None:
    async with openai.AsyncOpenAI(base_url=f"{demo}/v1", api_key="anything") as client:
        listed = {item.id async for item in client.models.list()}
        for name in ("gpt-4o-mini", "gpt-4o"):
            assert name in listed, f"alias {name} not listed: {listed}"
            assert (await client.models.retrieve(name)).id == name


# ---- The demo through all three APIs ---------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", ["chat", "responses", "messages"])
async def test_demo_answers_tools_with_a_tool_call(demo: str, api: str, stream: bool) -> None:
    question = "What is the weather in Paris?"
    if api == "chat":
        tool: Any = {
            "type": "function",
            "function": {k: v for k, v in WEATHER.items() if k != "type"},
        }
        async with demo_openai(demo) as client:
            ask: Any = {"model": DEMO_MODEL, "messages": [{"role": "user", "content": question}]}
            done: Any
            if stream:
                async with client.beta.chat.completions.stream(**ask, tools=[tool]) as events:
                    done = await events.get_final_completion()
            else:
                done = await client.chat.completions.create(**ask, tools=[tool])
        calls = done.choices[0].message.tool_calls or []
        assert done.choices[0].finish_reason == "tool_calls", done
        name, arguments = calls[0].function.name, calls[0].function.arguments
    elif api == "responses":
        reply: Any
        async with demo_openai(demo) as client:
            if stream:
                async with client.responses.stream(
                    model=DEMO_MODEL,
                    input=question,
                    tools=[WEATHER],
                ) as events:
                    reply = await events.get_final_response()
            else:
                reply = await client.responses.create(
                    model=DEMO_MODEL,
                    input=question,
                    tools=[WEATHER],
                )
        calls = [item for item in reply.output if item.type == "function_call"]
        assert calls, f"the demo answered tools with {reply.output}"
        name, arguments = calls[0].name, calls[0].arguments
    else:
        async with demo_anthropic(demo) as client:
            ask = {"model": DEMO_MODEL, "max_tokens": 256, "tools": [WEATHER_ANTHROPIC]}
            messages: Any = [{"role": "user", "content": question}]
            if stream:
                async with client.messages.stream(**ask, messages=messages) as events:
                    message = await events.get_final_message()
            else:
                message = await client.messages.create(**ask, messages=messages)
        uses = [block for block in message.content if block.type == "tool_use"]
        assert message.stop_reason == "tool_use" and uses, message
        name, arguments = uses[0].name, json.dumps(uses[0].input)
    assert name == "get_weather", name
    assert isinstance(json.loads(arguments).get("city"), str), arguments


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("api", ["chat", "responses", "messages"])
async def test_demo_json_mode_matches_the_schema(demo: str, api: str, stream: bool) -> None:
    question = "Describe a person."
    if api == "chat":
        response_format: Any = {
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": PERSON, "strict": True},
        }
        async with demo_openai(demo) as client:
            ask: Any = {
                "model": DEMO_MODEL,
                "messages": [{"role": "user", "content": question}],
                "response_format": response_format,
            }
            if stream:
                parts = [
                    chunk.choices[0].delta.content or ""
                    async for chunk in await client.chat.completions.create(**ask, stream=True)
                    if chunk.choices
                ]
                text = "".join(parts)
            else:
                text = (await client.chat.completions.create(**ask)).choices[
                    0
                ].message.content or ""
            plain = await client.chat.completions.create(
                model=DEMO_MODEL,
                messages=[{"role": "user", "content": "Reply in JSON."}],
                response_format={"type": "json_object"},
            )
        assert isinstance(json.loads(plain.choices[0].message.content or ""), dict), plain
    elif api == "responses":
        fmt: Any = {"format": {"type": "json_schema", "name": "person", "schema": PERSON}}
        async with demo_openai(demo) as client:
            if stream:
                async with client.responses.stream(
                    model=DEMO_MODEL, input=question, text=fmt
                ) as events:
                    text = (await events.get_final_response()).output_text
            else:
                text = (
                    await client.responses.create(model=DEMO_MODEL, input=question, text=fmt)
                ).output_text
    else:
        # Anthropic's JSON mode: a single tool the model is forced to call.
        tool = {"name": "person", "description": "Record a person", "input_schema": PERSON}
        async with demo_anthropic(demo) as client:
            ask = {
                "model": DEMO_MODEL,
                "max_tokens": 256,
                "tools": [tool],
                "tool_choice": {"type": "tool", "name": "person"},
                "messages": [{"role": "user", "content": question}],
            }
            if stream:
                async with client.messages.stream(**ask) as events:
                    message = await events.get_final_message()
            else:
                message = await client.messages.create(**ask)
        uses = [block for block in message.content if block.type == "tool_use"]
        assert uses, message
        text = json.dumps(uses[0].input)
    assert_person(text)


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_demo_honours_n_stop_and_logprobs_on_chat(demo: str, stream: bool) -> None:
    messages: Any = [{"role": "user", "content": "Tell me about lighthouses."}]
    async with demo_openai(demo) as client:
        plain = await client.chat.completions.create(model=DEMO_MODEL, messages=messages)
        words = (plain.choices[0].message.content or "").split()
        assert len(words) >= 4, f"the demo's answer is too short to test stop: {words}"
        stop = words[len(words) // 2]
        ask: Any = {
            "model": DEMO_MODEL,
            "messages": messages,
            "n": 2,
            "stop": [stop],
            "logprobs": True,
            "top_logprobs": 2,
        }
        texts: dict[int, str] = {}
        logprobs: dict[int, list[Any]] = {}
        if stream:
            async for chunk in await client.chat.completions.create(**ask, stream=True):
                for choice in chunk.choices:
                    texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
                    if choice.logprobs and choice.logprobs.content:
                        logprobs.setdefault(choice.index, []).extend(choice.logprobs.content)
        else:
            reply = await client.chat.completions.create(**ask)
            for choice in reply.choices:
                texts[choice.index] = choice.message.content or ""
                logprobs[choice.index] = (
                    list(choice.logprobs.content or []) if choice.logprobs else []
                )
    assert sorted(texts) == [0, 1], f"n=2 gave choices {sorted(texts)}"
    for index, text in texts.items():
        assert stop not in text, f"choice {index} runs past the stop {stop!r}: {text!r}"
        assert text, f"choice {index} is empty"
        entries = logprobs.get(index, [])
        assert entries, f"choice {index} has no logprobs"
        assert all(len(entry.top_logprobs) == 2 and entry.logprob <= 0 for entry in entries)
        assert "".join(entry.token for entry in entries) == text, (entries, text)


async def test_demo_honours_stop_sequences_on_messages(demo: str) -> None:
    messages: Any = [{"role": "user", "content": "Tell me about lighthouses."}]
    async with demo_anthropic(demo) as client:
        plain = await client.messages.create(model=DEMO_MODEL, max_tokens=256, messages=messages)
        words = text_of(plain).split()
        stop = words[len(words) // 2]
        cut = await client.messages.create(
            model=DEMO_MODEL, max_tokens=256, messages=messages, stop_sequences=[stop]
        )
    assert cut.stop_reason == "stop_sequence" and cut.stop_sequence == stop, cut
    assert stop not in text_of(cut), cut


async def test_demo_honours_logprobs_on_responses(demo: str) -> None:
    reply: Any
    async with demo_openai(demo) as client:
        reply = await client.responses.create(
            model=DEMO_MODEL,
            input="Tell me about lighthouses.",
            top_logprobs=2,
            include=["message.output_text.logprobs"],
        )
    part: Any = reply.output[0].content[0]
    assert part.type == "output_text" and part.logprobs, f"no logprobs in {reply.output}"
    assert "".join(entry.token for entry in part.logprobs) == part.text, part
    assert all(len(entry.top_logprobs) == 2 for entry in part.logprobs), part.logprobs


@pytest.mark.parametrize("dimensions", [8, 64])
async def test_demo_honours_dimensions_on_embeddings(demo: str, dimensions: int) -> None:
    async with demo_openai(demo) as client:
        embedded = await client.embeddings.create(
            model="text-embedding-3-small", input=["lighthouse", "keeper"], dimensions=dimensions
        )
    assert [len(item.embedding) for item in embedded.data] == [dimensions] * 2, embedded


@pytest.mark.parametrize(
    ("api", "options"),
    [
        ("chat", {"temperature": 2.5}),
        ("chat", {"n": 0}),
        ("chat", {"top_logprobs": 40, "logprobs": True}),
        ("chat", {"presence_penalty": 3}),
        ("responses", {"temperature": 2.5}),
        ("responses", {"top_p": 1.5}),
        ("messages", {"temperature": 3}),
        ("messages", {"max_tokens": 0}),
    ],
)
async def test_demo_rejects_out_of_range_parameters(
    demo: str, api: str, options: dict[str, Any]
) -> None:
    param = next(iter(options))
    if api == "messages":
        async with demo_anthropic(demo) as client:
            body = {
                "model": DEMO_MODEL,
                "max_tokens": 16,
                "messages": [{"role": "user", "content": "Hi"}],
            }
            with pytest.raises(anthropic.BadRequestError) as refused:
                await client.post("/v1/messages", body={**body, **options}, cast_to=object)
        answer = error_json(refused.value)
        assert answer.get("error", {}).get("type") == "invalid_request_error", answer
        assert param in answer["error"]["message"], answer
        return
    async with demo_openai(demo) as client:
        if api == "chat":
            path = "/chat/completions"
            body = {"model": DEMO_MODEL, "messages": [{"role": "user", "content": "Hi"}]}
        else:
            path, body = "/responses", {"model": DEMO_MODEL, "input": "Hi"}
        with pytest.raises(openai.BadRequestError) as raised:
            await client.post(path, body={**body, **options}, cast_to=object)
    error = error_json(raised.value).get("error", {})
    assert error.get("type") == "invalid_request_error", error
    assert error.get("param") == param or param in error.get("message", ""), error


# ---- LiteLLM configs -------------------------------------------------------------------------


MISSPELLED: Any = {
    "model_list": [
        {
            "model_name": "chat",
            "litellm_params": {"model": "openai/gpt-4o-mini", "api_bse": "http://127.0.0.1:9"},
        }
    ],
    "router_settings": {"num_retires": 2},
}


@pytest.mark.parametrize("command", ["check-config", "serve"])
async def test_misspelled_key_is_an_error_with_did_you_mean(tmp_path: Path, command: str) -> None:
    path = write_config(tmp_path, MISSPELLED)
    if command == "serve":
        ran = await turnout("serve", "--config", str(path), "--port", "0", within=15)
    else:
        ran = await turnout("check-config", str(path))
    assert ran.code not in (0, -9), f"{command} accepted misspelled keys:\n{ran.text}"
    assert "did you mean" in ran.text.lower(), ran.text
    pairs = (("api_bse", "api_base"), ("num_retires", "num_retries"))
    for wrong, right in pairs if command == "check-config" else pairs[:0]:
        assert wrong in ran.text and right in ran.text, f"{wrong}→{right}: {ran.text}"
    assert "api_bse" in ran.text or "num_retires" in ran.text, ran.text


async def test_unsupported_provider_is_skipped_with_its_path(tmp_path: Path) -> None:
    async with FakeOpenAI() as fake:
        path = write_config(tmp_path, with_unsupported(fake.url))
        async with (
            serving("--config", str(path), "--port", "0") as (_, port, log),
            openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="x") as client,
        ):
            reply = await client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "Hi"}]
            )
            assert reply.choices[0].message.content == expected_text("Hi")
            listed = {item.id async for item in client.models.list()}
    skipped = [line for line in log if "sagemaker" in line]
    assert skipped, "".join(log)
    assert any("model_list[1]" in line or "model_list.1" in line for line in skipped), skipped
    assert "llama" not in listed, listed


@pytest.mark.parametrize("command", ["serve", "check-config"])
async def test_strict_makes_an_unsupported_provider_fatal(tmp_path: Path, command: str) -> None:
    path = write_config(tmp_path, with_unsupported("http://127.0.0.1:9"))
    if command == "serve":
        ran = await turnout("serve", "--config", str(path), "--port", "0", "--strict", within=15)
    else:
        ran = await turnout("check-config", "--strict", str(path))
    assert ran.code not in (0, -9), f"{command} --strict accepted it:\n{ran.text}"
    assert "sagemaker" in ran.text and "model_list[1]" in ran.text, ran.text


@pytest.mark.parametrize("where", ["global", "per-deployment", "off"])
async def test_drop_params(tmp_path: Path, where: str) -> None:
    async with FakeAnthropic() as fake:
        entry = model_entry("claude", "anthropic", fake.url)
        config: dict[str, Any] = {"model_list": [entry]}
        if where == "global":
            config["litellm_settings"] = {"drop_params": True}
        elif where == "per-deployment":
            entry["litellm_params"]["drop_params"] = True
        path = write_config(tmp_path, config)
        async with (
            serving("--config", str(path), "--port", "0") as (_, port, _log),
            openai.AsyncOpenAI(
                base_url=f"http://127.0.0.1:{port}/v1", api_key="x", max_retries=0
            ) as client,
        ):
            ask: Any = {
                "model": "claude",
                "messages": [{"role": "user", "content": "Hi"}],
                "presence_penalty": 0.5,
                "logit_bias": {"50256": -100},
            }
            if where == "off":
                with pytest.raises(openai.BadRequestError) as refused:
                    await client.chat.completions.create(**ask)
                message = refused.value.message
                assert "presence_penalty" in message or "logit_bias" in message, message
                return
            reply = await client.chat.completions.create(**ask)
        assert reply.choices[0].message.content == expected_text("Hi"), reply
        sent = fake.requests[-1].json
        assert "presence_penalty" not in sent and "logit_bias" not in sent, sent


async def test_check_config_reports_every_problem_at_once_without_secrets(tmp_path: Path) -> None:
    config: Any = {
        "model_list": [
            {
                "model_name": "chat",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "api_key": "os.environ/ISSUE14_UNSET_OPENAI_KEY",
                    "rpmm": 10,
                },
            },
            {
                "model_name": "claude",
                "litellm_params": {
                    "model": "anthropic/claude-sonnet-4-5",
                    "api_key": "os.environ/ISSUE14_UNSET_ANTHROPIC_KEY",
                },
            },
            {"model_name": "llama", "litellm_params": {"model": "sagemaker/llama-2"}},
        ],
        "router_settings": {"routing_stratgy": "simple-shuffle"},
    }
    path = write_config(tmp_path, config)
    unset = {"ISSUE14_UNSET_OPENAI_KEY": "", "ISSUE14_UNSET_ANTHROPIC_KEY": ""}
    checked = await turnout("check-config", str(path), env=unset)
    assert checked.code != 0, checked.text
    for problem in ("rpmm", "routing_stratgy", "routing_strategy", "sagemaker"):
        assert problem in checked.text, f"{problem!r} not reported:\n{checked.text}"
    clean = {
        "model_list": [config["model_list"][1]],
        "general_settings": {"master_key": "os.environ/ISSUE14_UNSET_MASTER"},
    }
    clean_path = write_config(tmp_path, clean, "clean.yaml")
    ok = await turnout("check-config", str(clean_path), env={**unset, "ISSUE14_UNSET_MASTER": ""})
    assert ok.code == 0, f"a clean file whose secrets are not set failed:\n{ok.text}"
    assert "ISSUE14_UNSET_ANTHROPIC_KEY" in ok.text, f"the unset variable not noted:\n{ok.text}"
    required = await turnout("check-config", "--require-env", str(clean_path), env=unset)
    assert required.code != 0, required.text


async def test_a_config_as_litellm_documents_it_loads_and_serves(tmp_path: Path) -> None:
    path = write_config(tmp_path, LITELLM_DOCS_CONFIG)
    unset = dict.fromkeys(LITELLM_DOCS_ENV, "")
    checked = await turnout("check-config", str(path), env=unset)
    assert checked.code == 0, f"LiteLLM's documented shape refused:\n{checked.text}"
    assert "success_callback" in checked.text, f"an ignored setting not reported:\n{checked.text}"
    env = {**LITELLM_DOCS_ENV}
    master = env["LITELLM_MASTER_KEY"]
    async with (
        serving("--config", str(path), "--port", "0", env=env) as (_, port, log),
        openai.AsyncOpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=master) as client,
    ):
        listed = {item.id async for item in client.models.list()}
    expected = {entry["model_name"] for entry in LITELLM_DOCS_CONFIG["model_list"]}
    assert expected <= listed, listed
    logged = "".join(log)
    secrets = [value for name, value in env.items() if name != "AZURE_API_BASE"]
    assert not [secret for secret in secrets if secret in logged], logged
