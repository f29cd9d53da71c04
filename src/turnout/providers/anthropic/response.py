"""An Anthropic Message (whole, or as usage and stop reasons met in a stream) in OpenAI's shape.

Text blocks become the message content and ``tool_use`` blocks its ``tool_calls`` (arguments
encoded as a JSON string); thinking and server-tool blocks have no OpenAI counterpart and are
left out. Anthropic counts cached prompt tokens apart from ``input_tokens``, so the prompt tokens
OpenAI reports are input + cache writes + cache reads, of which the cache reads are "cached".

A refusal (``stop_reason: "refusal"``, set when Anthropic's safety classifiers stop a Claude 4
answer) that produced nothing at all is a `ContentPolicyError`: the request was refused, not
answered, and another deployment or model may be tried. A refusal that cut an answer short keeps
what was said and finishes with ``content_filter``, as OpenAI does when its filter interrupts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from turnout.errors import ContentPolicyError, ServerError
from turnout.wire import Usage

#: Anthropic's ``stop_reason`` values and OpenAI's ``finish_reason`` for each.
FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    """OpenAI's finish reason for an Anthropic stop reason (an unknown one ends normally)."""
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def usage_of(usage: Any) -> Usage:
    """OpenAI-style counts from an Anthropic ``usage`` object."""
    if not isinstance(usage, Mapping):
        return Usage()
    fresh, written, read = (
        _count(usage, "input_tokens"),
        _count(usage, "cache_creation_input_tokens"),
        _count(usage, "cache_read_input_tokens"),
    )
    return Usage(fresh + written + read, _count(usage, "output_tokens"), read)


def refusal(provider: str, stop_details: Any) -> ContentPolicyError:
    """The error for an answer the model refused to give."""
    explanation = stop_details.get("explanation") if isinstance(stop_details, Mapping) else None
    reason = f": {explanation}" if isinstance(explanation, str) and explanation else ""
    return ContentPolicyError(
        f"{provider}: the model refused to answer (stop_reason `refusal`){reason}", status=200
    )


def completion(
    provider: str, model: str, created: int, body: bytes, json_tool: str | None = None
) -> tuple[dict[str, Any], Usage]:
    """An OpenAI ``chat.completion`` and its usage from the bytes of an Anthropic Message.

    `json_tool`: the name of the tool forced for JSON mode, whose input is the answer's content.
    """
    try:
        message = msgspec.json.decode(body)
    except msgspec.DecodeError:
        raise ServerError(f"{provider}: the answer is not JSON") from None
    if not isinstance(message, dict) or not isinstance(message.get("content"), list):
        raise ServerError(f"{provider}: the answer is not a Message")
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    forced = False
    for block in message["content"]:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "tool_use" and json_tool is not None and block.get("name") == json_tool:
            texts.append(tool_call(None, None, block.get("input"))["function"]["arguments"])
            forced = True
        elif kind == "tool_use":
            calls.append(tool_call(block.get("id"), block.get("name"), block.get("input")))
    stop_reason = message.get("stop_reason")
    if forced and stop_reason == "tool_use":
        stop_reason = "end_turn"
    if stop_reason == "refusal" and not texts and not calls:
        raise refusal(provider, message.get("stop_details"))
    text = "".join(texts)
    answer: dict[str, Any] = {
        "role": "assistant",
        "content": text if text or not calls else None,
        "refusal": None,
    }
    if calls:
        answer["tool_calls"] = calls
    usage = usage_of(message.get("usage"))
    choice = {
        "index": 0,
        "message": answer,
        "logprobs": None,
        "finish_reason": finish_reason(stop_reason),
    }
    result = {
        "id": message.get("id") or "",
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [choice],
        "usage": usage.to_openai(),
    }
    return result, usage


def tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    """An OpenAI tool call; `arguments` is the decoded input (a string is taken as encoded)."""
    if isinstance(arguments, str):
        encoded = arguments
    else:
        encoded = msgspec.json.encode({} if arguments is None else arguments).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": encoded}}


def _count(usage: Mapping[str, Any], name: str) -> int:
    value = usage.get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
