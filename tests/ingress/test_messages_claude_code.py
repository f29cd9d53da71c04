"""A Claude-Code-style session over `/v1/messages`, translated for each provider family: the
request shapes Claude Code sends (a system prompt in cache-controlled blocks, several tools
with real schemas, thinking switched on, its beta and session headers, streaming), and the
tool results it returns over several turns, one of them an error. An Anthropic deployment gets
the session as Claude Code sent it; any other, its translation."""

from __future__ import annotations

import copy
from typing import Any

import anthropic
import pytest
from messages_kit import FAMILIES, Family, served, upstream_bodies

#: What Claude Code sends on the first turn of a session, as recorded (its prompts shortened).
SYSTEM: Any = [
    {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude."},
    {
        "type": "text",
        "text": "You are an interactive CLI tool that helps users with software engineering "
        "tasks. Use the tools available to you.",
        "cache_control": {"type": "ephemeral"},
    },
]
TOOLS: Any = [
    {
        "name": "Bash",
        "description": "Executes a given bash command in a persistent shell session.",
        "input_schema": {
            "type": "object",
            "properties": {
                "command": {"type": "string", "description": "The command to execute"},
                "timeout": {"type": "number", "description": "Optional timeout in ms"},
                "description": {"type": "string"},
            },
            "required": ["command"],
            "additionalProperties": False,
            "$schema": "http://json-schema.org/draft-07/schema#",
        },
    },
    {
        "name": "Read",
        "description": "Reads a file from the local filesystem.",
        "input_schema": {
            "type": "object",
            "properties": {
                "file_path": {"type": "string"},
                "offset": {"type": "number"},
                "limit": {"type": "number"},
            },
            "required": ["file_path"],
            "additionalProperties": False,
        },
    },
    {
        "name": "Edit",
        "description": "Performs exact string replacements in files.",
        "input_schema": {
            "type": "object",
            "properties": {
                "file_path": {"type": "string"},
                "old_string": {"type": "string"},
                "new_string": {"type": "string"},
                "replace_all": {"type": "boolean", "default": False},
            },
            "required": ["file_path", "old_string", "new_string"],
            "additionalProperties": False,
        },
        "cache_control": {"type": "ephemeral"},
    },
]
HEADERS = {
    "anthropic-version": "2023-06-01",
    "anthropic-beta": "claude-code-20250219,interleaved-thinking-2025-05-14",
    "x-claude-code-session-id": "5f0c2c8e-8d6f-4b7e-9a43-0c2f1d7b6a11",
    "x-app": "cli",
}
#: A previous turn as Claude answered it natively: a signed thinking block before its text.
EARLIER: Any = [
    {"role": "user", "content": [{"type": "text", "text": "Hi, I'm working on turnout."}]},
    {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "The user greets me.", "signature": "EqQBCkYIBxgC"},
            {"type": "text", "text": "Hello! How can I help with turnout?"},
        ],
    },
]
#: What the session does with each tool call: its result, and whether the tool failed.
RESULTS = {
    "Bash": ("README.md\nsrc\ntests\n", False),
    "Read": ("File does not exist.", True),
}


@pytest.mark.parametrize("family", FAMILIES)
async def test_a_claude_code_session_over_several_turns(family: Family) -> None:
    messages: list[Any] = copy.deepcopy(EARLIER)
    calls: list[str] = []
    async with served(family, name="claude-sonnet-4-5") as (fakes, client):

        async def turn(tools: list[Any]) -> anthropic.types.Message:
            async with client.messages.stream(
                model="claude-sonnet-4-5",
                max_tokens=32000,
                system=SYSTEM,
                tools=tools,
                messages=messages,
                metadata={"user_id": "user_3f2a_account_9b1c_session_5f0c2c8e"},
                thinking={"type": "enabled", "budget_tokens": 10000},
                extra_headers=HEADERS,
            ) as stream:
                message = await stream.get_final_message()
            messages.append({"role": "assistant", "content": message.to_dict()["content"]})
            return message

        for ask, tools in (("List the files here.", TOOLS), ("Read the notes.", TOOLS[1:])):
            messages.append({"role": "user", "content": [{"type": "text", "text": ask}]})
            called = await turn(tools)
            assert called.stop_reason == "tool_use"
            [use] = [block for block in called.content if block.type == "tool_use"]
            calls.append(use.name)
            output, failed = RESULTS[use.name]
            result: dict[str, Any] = {
                "type": "tool_result",
                "tool_use_id": use.id,
                "content": [{"type": "text", "text": output}],
            }
            if failed:
                result["is_error"] = True
            messages.append({"role": "user", "content": [result]})
            answered = await turn(tools)
            assert answered.stop_reason == "end_turn"
            assert [block.type for block in answered.content] == ["text"]
    assert calls == ["Bash", "Read"]
    sent = upstream_bodies(fakes, family)
    assert len(sent) == 4
    last = sent[-1]
    if family == "openai":
        system = last["messages"][0]
        assert system["role"] == "system" and "Claude Code" in system["content"]
        assert [tool["function"]["name"] for tool in last["tools"]] == ["Read", "Edit"]
        tool_messages = [m for m in last["messages"] if m["role"] == "tool"]
        assert [m["content"] for m in tool_messages] == [
            "README.md\nsrc\ntests\n",
            "Error: File does not exist.",
        ]
        assert "thinking" not in last
    else:
        # Passed through as Claude Code sent it: thinking, its signature, cache markers.
        assert last["system"] == SYSTEM
        assert last["tools"] == TOOLS[1:]
        assert last["thinking"] == {"type": "enabled", "budget_tokens": 10000}
        assert last["messages"][:2] == EARLIER
        kinds = [block["type"] for m in last["messages"] for block in _blocks(m["content"])]
        assert kinds.count("tool_result") == 2
        headers = fakes.anthropic.requests[-1].headers
        assert headers["anthropic-beta"] == HEADERS["anthropic-beta"]
        assert headers["anthropic-version"] == HEADERS["anthropic-version"]
        assert headers["x-api-key"] == "sk-ant-fake"


def _blocks(content: Any) -> list[dict[str, Any]]:
    return [{"type": "text"}] if isinstance(content, str) else list(content)
