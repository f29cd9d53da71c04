"""The Responses API's `response` object, built from a chat completion's answer.

Both the answer sent whole and the streamed one end in the same object (a stream's events carry
it at its start and end), so its envelope, its output items and its status are made here once.
The envelope echoes the request's settings in the Responses API's own names, as OpenAI does, so
that a client reading them back (the SDK's typed `Response`) finds what it asked for.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from turnout.gateway.responses_request import chat_messages
from turnout.wire import Usage

#: Why a chat answer stopped early, as the Responses API's ``incomplete_details.reason``.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def new_id(prefix: str) -> str:
    """An id in OpenAI's style (``resp_...``, ``msg_...``, ``fc_...``): unguessable, since a
    stored response is read back by its id alone."""
    return f"{prefix}_{secrets.token_hex(24)}"


@dataclass(slots=True)
class Draft:
    """What a response says about its request, known before any answer arrives."""

    body: Mapping[str, Any]
    id: str = field(default_factory=lambda: new_id("resp"))
    created_at: int = field(default_factory=lambda: int(time.time()))

    def envelope(
        self,
        status: str,
        output: list[dict[str, Any]],
        *,
        model: str | None = None,
        usage: Usage | None = None,
        incomplete: str | None = None,
        error: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The `response` object in `status`, with `output` items so far."""
        body = self.body
        text = body.get("text") if isinstance(body.get("text"), dict) else None
        reasoning = body.get("reasoning") if isinstance(body.get("reasoning"), dict) else None
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status,
            "error": error,
            "incomplete_details": None if incomplete is None else {"reason": incomplete},
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": model or body.get("model"),
            "output": output,
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {
                "effort": (reasoning or {}).get("effort"),
                "summary": (reasoning or {}).get("summary"),
            },
            "store": body.get("store", True) is not False,
            "temperature": body.get("temperature"),
            "text": {"format": (text or {}).get("format") or {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p"),
            "truncation": body.get("truncation", "disabled"),
            "usage": None if usage is None else response_usage(usage),
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }


def response_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": usage.total_tokens,
    }


def usage_of(value: Any) -> Usage:
    """A chat answer's ``usage`` object as a `Usage` (zeros for what it lacks)."""
    if not isinstance(value, dict):
        return Usage()
    details = value.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, dict) else None
    return Usage(
        prompt_tokens=_count(value.get("prompt_tokens")),
        completion_tokens=_count(value.get("completion_tokens")),
        cached_tokens=_count(cached),
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def status_of(finish_reason: str | None) -> tuple[str, str | None]:
    """The response's status and, when cut short, why."""
    reason = _INCOMPLETE.get(finish_reason or "")
    return ("incomplete", reason) if reason is not None else ("completed", None)


def text_part(text: str, logprobs: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": logprobs or []}


def token_logprobs(choice: Mapping[str, Any]) -> list[Any]:
    """A chat choice's token logprobs (``logprobs.content``, the shape the Responses API's
    ``output_text.logprobs`` has too), or none."""
    logprobs = choice.get("logprobs")
    content = logprobs.get("content") if isinstance(logprobs, dict) else None
    return content if isinstance(content, list) else []


def message_item(item_id: str, parts: list[dict[str, Any]], status: str) -> dict[str, Any]:
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": parts,
    }


def call_item(item_id: str, call_id: str, name: str, arguments: str, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
        "status": status,
    }


def output_items(
    message: Mapping[str, Any], logprobs: list[Any] | None = None
) -> list[dict[str, Any]]:
    """A chat answer's assistant message as output items: its text (or refusal) as one
    message item, with its tokens' `logprobs` when asked, then one function_call item per
    tool call."""
    items: list[dict[str, Any]] = []
    content, refusal = message.get("content"), message.get("refusal")
    parts: list[dict[str, Any]] = []
    if isinstance(content, str) and content:
        parts.append(text_part(content, logprobs))
    if isinstance(refusal, str) and refusal:
        parts.append({"type": "refusal", "refusal": refusal})
    calls = message.get("tool_calls")
    calls = calls if isinstance(calls, list) else []
    if parts or not calls:
        items.append(message_item(new_id("msg"), parts or [text_part("")], "completed"))
    for call in calls:
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        items.append(
            call_item(
                new_id("fc"),
                str(call.get("id") or new_id("call")),
                str(function.get("name") or ""),
                str(function.get("arguments") or ""),
                "completed",
            )
        )
    return items


def whole_response(draft: Draft, answer: Mapping[str, Any]) -> dict[str, Any]:
    """The `response` object for a chat completion answered whole."""
    choices = answer.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else {}
    first = first if isinstance(first, dict) else {}
    message = first.get("message")
    status, incomplete = status_of(first.get("finish_reason"))
    model = answer.get("model")
    return draft.envelope(
        status,
        output_items(message if isinstance(message, dict) else {}, token_logprobs(first)),
        model=model if isinstance(model, str) else None,
        usage=usage_of(answer.get("usage")),
        incomplete=incomplete,
    )


def conversation_of(output: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A response's output items as the chat messages a later turn replays."""
    replayable = [item for item in output if item.get("type") in ("message", "function_call")]
    return chat_messages(replayable) if replayable else []


#: The id prefix of each kind of input item that came without an id.
_ITEM_PREFIXES = {"message": "msg", "function_call": "fc", "function_call_output": "fco"}


def input_items(value: Any) -> list[dict[str, Any]]:
    """A request's ``input`` (already checked) as the items ``input_items`` lists: each with
    an id and a status, a message's text as content parts."""
    if isinstance(value, str):
        value = [{"type": "message", "role": "user", "content": value}]
    items: list[dict[str, Any]] = []
    for given in value:
        item = {"type": "message", **given}
        kind = item["type"]
        if kind == "message" and isinstance(item.get("content"), str):
            part = "output_text" if item.get("role") == "assistant" else "input_text"
            item["content"] = [{"type": part, "text": item["content"]}]
        item.setdefault("id", new_id(_ITEM_PREFIXES.get(kind, "item")))
        item.setdefault("status", "completed")
        items.append(item)
    return items


def text_of(response: Mapping[str, Any]) -> str:
    """A response's text (its messages' text parts), for a request log that captures content."""
    return "".join(
        part.get("text", "")
        for item in response["output"]
        if item.get("type") == "message"
        for part in item.get("content", [])
    )
