"""Stored responses: ``previous_response_id`` over several turns served by different providers,
GET and DELETE, ``store: false``, unknown ids, the store's bound, and each caller seeing only
its own responses (each backend's own contract: test_responses_store.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
from responses_kit import WEATHER, respond, serving

from key_harness import keyed_gateway
from turnout.config.server import ResponsesStoreConfig


def _contents(messages: list[dict[str, object]]) -> list[tuple[object, str]]:
    return [(m["role"], str(m["content"])) for m in messages]


async def test_a_conversation_continues_across_providers_and_turns() -> None:
    async with serving() as served:
        client = served.client
        first, _ = await respond(
            client, False, model="gpt", instructions="Answer in French.", input="I am Ada."
        )
        second, _ = await respond(
            client, True, model="claude", input="Who am I?", previous_response_id=first.id
        )
        assert second.previous_response_id == first.id
        # The Anthropic upstream got the whole conversation, the first turn's instructions
        # excepted (they belong to the turn that gave them, as with OpenAI).
        sent = served.last_chat("claude")
        assert "system" not in sent
        assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
        assert first.output_text in str(sent["messages"][1]["content"])
        third, _ = await respond(
            client, False, model="gpt", input="Again?", previous_response_id=second.id
        )
        assert third.status == "completed"
        assert _contents(served.last_chat("gpt")["messages"]) == [
            ("user", "I am Ada."),
            ("assistant", first.output_text),
            ("user", "Who am I?"),
            ("assistant", second.output_text),
            ("user", "Again?"),
        ]


@pytest.mark.parametrize("streamed", [False, True])
async def test_a_tool_result_continues_the_stored_call(streamed: bool) -> None:
    """The agents' loop: a function call, then only its output with `previous_response_id`
    (Anthropic's fake refuses a tool result that does not follow its call)."""
    async with serving() as served:
        client = served.client
        asked = {"model": "claude", "input": "Weather in Lyon?", "tools": [WEATHER]}
        first, _ = await respond(client, streamed, **asked)
        [call] = first.output
        result = {"type": "function_call_output", "call_id": call.call_id, "output": "Sunny"}
        second, _ = await respond(
            client, streamed, model="claude", input=[result], previous_response_id=first.id
        )
        assert second.status == "completed"
        assert second.output[0].type == "message"
        sent = served.last_chat("claude")["messages"]
        assert [m["role"] for m in sent] == ["user", "assistant", "user"]
        assert sent[1]["content"][0]["id"] == call.call_id
        assert sent[2]["content"][0]["tool_use_id"] == call.call_id


async def test_get_and_delete_a_stored_response() -> None:
    async with serving() as served:
        client = served.client
        made, _ = await respond(client, True, model="gpt", input="Hello", metadata={"k": "v"})
        read = await client.responses.retrieve(made.id)
        assert read.model_dump() == made.model_dump()
        assert read.metadata == {"k": "v"}
        await client.responses.delete(made.id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(made.id)
        with pytest.raises(openai.NotFoundError) as caught:
            await client.responses.delete(made.id)
        assert made.id in caught.value.message


async def test_input_items_are_listed_page_by_page() -> None:
    turn = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "second"},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "third"}]},
    ]
    async with serving() as served:
        client = served.client
        made, _ = await respond(client, True, model="gpt", input=turn)
        pages = client.responses.input_items.list(made.id, limit=2)
        listed: list[Any] = [item async for item in pages]
        texts = [item.content[0].text for item in listed]
        assert texts == ["third", "second", "first"]
        assert all(item.id.startswith("msg_") for item in listed)
        oldest: Any = await client.responses.input_items.list(made.id, order="asc", limit=1)
        assert oldest.has_more
        assert oldest.data[0].content[0].text == "first"
        for bad in ({"limit": 0}, {"after": "msg_unknown"}):
            with pytest.raises(openai.BadRequestError):
                await client.responses.input_items.list(made.id, **bad)


@pytest.mark.parametrize("streamed", [False, True])
async def test_store_false_keeps_nothing(streamed: bool) -> None:
    async with serving() as served:
        client = served.client
        made, _ = await respond(client, streamed, model="claude", input="Hi", store=False)
        assert made.store is False
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(made.id)
        with pytest.raises(openai.NotFoundError) as caught:
            await respond(client, streamed, model="gpt", input="Hi", previous_response_id=made.id)
        assert caught.value.body == {
            "message": f"Previous response with id '{made.id}' not found.",
            "type": "invalid_request_error",
            "param": "previous_response_id",
            "code": "previous_response_not_found",
        }
        assert served.openai.requests == []


async def test_the_store_keeps_only_the_most_recently_used() -> None:
    async with serving(ResponsesStoreConfig(max_responses=2)) as served:
        client = served.client
        made = [(await respond(client, False, model="gpt", input=f"n{i}"))[0] for i in range(2)]
        await client.responses.retrieve(made[0].id)  # used: now the newest
        await respond(client, False, model="gpt", input="n2")
        await client.responses.retrieve(made[0].id)
        with pytest.raises(openai.NotFoundError):
            await client.responses.retrieve(made[1].id)


async def test_a_key_reads_only_its_own_responses(tmp_path: Path) -> None:
    async with keyed_gateway(f"sqlite:///{tmp_path / 'store.db'}") as (gateway, admin):
        keys = [(await admin.post("/key/generate", {}))["key"] for _ in range(2)]
        async with gateway.client(api_key=keys[0]) as owner:
            made, _ = await respond(owner, False, model="chat", input="Mine")
            assert (await owner.responses.retrieve(made.id)).id == made.id
        async with gateway.client(api_key=keys[1]) as other:
            with pytest.raises(openai.NotFoundError):
                await other.responses.retrieve(made.id)
            with pytest.raises(openai.NotFoundError):
                await respond(other, False, model="chat", input="x", previous_response_id=made.id)
            with pytest.raises(openai.NotFoundError):
                await other.responses.delete(made.id)
        async with gateway.client(api_key=keys[0]) as owner:
            assert (await owner.responses.retrieve(made.id)).id == made.id
