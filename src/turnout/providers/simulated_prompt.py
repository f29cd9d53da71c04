"""What the simulated provider reads of a prompt: its text, and where a conversation stands.

The text is where a content filter looks for a blocked phrase, where JSON mode looks for the
word "json", and what seeds an answer, so that the same prompt gets the same answer; where the
conversation stands (tool results since the user last spoke) decides whether a model with
tools calls one or answers in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.wire import Operation, Request

#: Where each operation's prompt lives in the request body.
PROMPT_FIELDS = {
    Operation.CHAT: "messages",
    Operation.COMPLETION: "prompt",
    Operation.EMBEDDING: "input",
}


def message_text(messages: Any) -> str:
    """The text of chat messages (string contents and text parts), one message a line."""
    parts: list[str] = []
    for message in messages if isinstance(messages, list) else ():
        content = message.get("content") if isinstance(message, Mapping) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                part["text"]
                for part in content
                if isinstance(part, Mapping) and isinstance(part.get("text"), str)
            )
    return "\n".join(parts)


def prompt_text(request: Request) -> str:
    """The prompt's text, whatever the operation."""
    body = request.body
    if request.operation is Operation.CHAT:
        return message_text(body.get("messages"))
    prompt = body.get(PROMPT_FIELDS[request.operation])
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        return "\n".join(item for item in prompt if isinstance(item, str))
    return ""


def last_turn(messages: Any) -> tuple[str, bool]:
    """The user's last message's text, and whether tool results came after it."""
    turns = [m for m in messages if isinstance(m, Mapping)] if isinstance(messages, list) else []
    for index in range(len(turns) - 1, -1, -1):
        if turns[index].get("role") == "user":
            answered = any(m.get("role") == "tool" for m in turns[index + 1 :])
            return message_text([turns[index]]), answered
    return "", any(m.get("role") == "tool" for m in turns)
