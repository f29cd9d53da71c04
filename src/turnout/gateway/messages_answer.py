"""A routed chat answer in Anthropic's Messages shape: the ``message`` object, its stop reason
and its usage, shared by answers sent whole (`message`) and streams (`turnout.gateway.
messages_stream`).

Chat Completions says ``stop`` both for a natural end and for a matched stop sequence. An
OpenAI-compatible server that names the matched sequence (vLLM's ``stop_reason``) gets
``stop_sequence`` with the sequence; otherwise the answer ended its turn (``end_turn``), which is
what Anthropic itself reports when no stop sequence matched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from turnout.errors import ServerError
from turnout.wire import Usage

_DECODE = msgspec.json.Decoder().decode
#: Chat finish reasons and the Anthropic stop reason for each (``stop`` is decided apart).
_STOP_REASONS = {
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def message_id(request_id: str) -> str:
    """The message's id: the request's, with the prefix Anthropic's ids carry."""
    return f"msg_{request_id}"


def stop_reason(
    finish_reason: Any, matched: Any, stops: Sequence[str]
) -> tuple[str | None, str | None]:
    """The stop reason and the matched stop sequence for a chat finish reason; `matched`: the
    choice's ``stop_reason`` (the sequence, from servers that name it)."""
    if not isinstance(finish_reason, str):
        return None, None
    if finish_reason == "stop":
        if isinstance(matched, str) and matched in stops:
            return "stop_sequence", matched
        return "end_turn", None
    return _STOP_REASONS.get(finish_reason, "end_turn"), None


def usage_object(usage: Usage | None, estimate: int = 0) -> dict[str, int]:
    """Anthropic's usage: ``input_tokens`` excludes what was read from the prompt cache, which
    it reports apart. `estimate`: the prompt's size when the answer said nothing."""
    if usage is None:
        return {"input_tokens": estimate, "output_tokens": 0}
    counted: dict[str, int] = {
        "input_tokens": usage.prompt_tokens - usage.cached_tokens,
        "output_tokens": usage.completion_tokens,
    }
    if usage.cached_tokens:
        counted["cache_read_input_tokens"] = usage.cached_tokens
    return counted


def message(
    chat: Mapping[str, Any], usage: Usage, request_id: str, model: str, stops: Sequence[str]
) -> dict[str, Any]:
    """The ``message`` for a chat completion answering request `request_id` for `model`."""
    choices = chat.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    answer = first.get("message") if isinstance(first, Mapping) else None
    if not isinstance(first, Mapping) or not isinstance(answer, Mapping):
        raise ServerError("The deployment's answer holds no message")
    content: list[dict[str, Any]] = []
    text = answer.get("content")
    if isinstance(text, str) and text:
        content.append({"type": "text", "text": text})
    for call in answer.get("tool_calls") or ():
        content.append(tool_use_block(call, decode_input=True))
    reason, sequence = stop_reason(first.get("finish_reason"), first.get("stop_reason"), stops)
    return {
        "id": message_id(request_id),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": reason or "end_turn",
        "stop_sequence": sequence,
        "usage": usage_object(usage),
    }


def tool_use_block(call: Any, *, decode_input: bool) -> dict[str, Any]:
    """A chat tool call as a ``tool_use`` block: with its decoded input, or (opening a
    streamed block, whose input follows as JSON fragments) an empty one."""
    function = call.get("function") if isinstance(call, Mapping) else None
    if not isinstance(function, Mapping):
        raise ServerError("The deployment's answer holds a tool call without a function")
    arguments: Any = {}
    if decode_input:
        raw = function.get("arguments") or "{}"
        try:
            arguments = _DECODE(raw) if isinstance(raw, str) else raw
        except msgspec.DecodeError:
            arguments = None
        if not isinstance(arguments, dict):
            raise ServerError(
                "The deployment's answer holds tool call arguments that are not a JSON object"
            )
    return {
        "type": "tool_use",
        "id": call.get("id") or "",
        "name": function.get("name") or "",
        "input": arguments,
    }
