"""The Responses API (``POST /v1/responses``) of the fake: the same deterministic answers as its
chat endpoint, as a `response` object or its typed event stream.

The input items are read as the chat messages they amount to, so that the answer is the chat
endpoint's ("Fake answer to: <the last user text>", or a call of the first or chosen function
tool when the user spoke last), cut at ``max_output_tokens``. A stream is the event sequence
OpenAI sends, numbered from 0: ``response.created``, ``response.in_progress``, the output item
opened, filled and closed, then ``response.completed`` (``response.incomplete`` when cut). The
fake stores nothing, as an upstream told ``store: false``: a ``previous_response_id`` is
refused as OpenAI refuses an unknown one.
"""

from __future__ import annotations

import uuid
from typing import Any

import msgspec

from fakes.fake_openai.answers import Answer, build_answer, continued, max_tokens, tool_call
from fakes.fake_openai.errors import ApiError, missing
from fakes.fake_openai.faults import Fault


def answer_of(body: dict[str, Any], model: str, reply: str | None) -> Answer:
    """The answer to a Responses request (`ApiError` for one OpenAI would refuse)."""
    previous = body.get("previous_response_id")
    if previous is not None:
        message = f"Previous response with id '{previous}' not found."
        raise ApiError(
            400, message, param="previous_response_id", code="previous_response_not_found"
        )
    messages = chat_messages(body.get("input"))
    chat_like = {"messages": messages, "tools": _chat_tools(body), "tool_choice": _choice(body)}
    text = continued(messages, reply)
    cap = max_tokens(body, "max_output_tokens")
    return build_answer(chat_like, model, text, cap, chat=True, tool=tool_call(chat_like, messages))


def chat_messages(value: Any) -> list[dict[str, Any]]:
    """The input as chat messages: each message item's role and text, function calls as the
    assistant's, their outputs as the tool's."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise missing("input")
    messages: list[dict[str, Any]] = []
    for item in value:
        if not isinstance(item, dict):
            raise ApiError(400, "Invalid 'input': expected an array of objects.", param="input")
        kind = item.get("type", "message")
        if kind == "message":
            messages.append({"role": item.get("role"), "content": _text(item.get("content"))})
        elif kind == "function_call":
            messages.append({"role": "assistant", "content": None, "tool_calls": [item]})
        elif kind == "function_call_output":
            messages.append({"role": "tool", "content": str(item.get("output"))})
    if not messages:
        raise missing("input")
    return messages


def response_object(answer: Answer, status: str, output: list[Any]) -> dict[str, Any]:
    """The `response` object in `status`, with `output` and, once finished, usage."""
    finished = status in ("completed", "incomplete")
    usage = None
    if finished:
        done = len(answer.pieces)
        usage = {
            "input_tokens": answer.prompt_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": done,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": answer.prompt_tokens + done,
        }
    incomplete = status == "incomplete"
    return {
        "id": "resp_" + answer.id.removeprefix("chatcmpl-"),
        "object": "response",
        "created_at": answer.created,
        "status": status,
        "error": None,
        "incomplete_details": {"reason": "max_output_tokens"} if incomplete else None,
        "model": answer.model,
        "output": output,
        "parallel_tool_calls": True,
        "store": False,
        "tool_choice": "auto",
        "tools": [],
        "usage": usage,
    }


def whole(answer: Answer) -> dict[str, Any]:
    return response_object(answer, _status(answer), [_item(answer, done=True)])


def events(answer: Answer) -> list[bytes]:
    """The answer's stream, one framed event each, numbered from 0."""
    item = _item(answer, done=False)
    where = {"item_id": item["id"], "output_index": 0}
    said: list[dict[str, Any]] = [
        {"type": "response.created", "response": response_object(answer, "in_progress", [])},
        {"type": "response.in_progress", "response": response_object(answer, "in_progress", [])},
        {"type": "response.output_item.added", "output_index": 0, "item": item},
    ]
    if answer.tool is None:
        text = {**where, "content_index": 0}
        said.append({"type": "response.content_part.added", **text, "part": _part("")})
        for token in answer.tokens:
            said.append(
                {"type": "response.output_text.delta", **text, "delta": token, "logprobs": []}
            )
        full = "".join(answer.tokens)
        said.append({"type": "response.output_text.done", **text, "text": full, "logprobs": []})
        said.append({"type": "response.content_part.done", **text, "part": _part(full)})
    else:
        for piece in answer.pieces:
            said.append({"type": "response.function_call_arguments.delta", **where, "delta": piece})
        name, arguments = answer.tool
        done = {"name": name, "arguments": arguments}
        said.append({"type": "response.function_call_arguments.done", **where, **done})
    final = _item(answer, done=True)
    said.append({"type": "response.output_item.done", "output_index": 0, "item": final})
    status = _status(answer)
    said.append(
        {"type": f"response.{status}", "response": response_object(answer, status, [final])}
    )
    return [frame({**event, "sequence_number": n}) for n, event in enumerate(said)]


def error_event(fault: Fault) -> bytes:
    """The ``error`` event of an ``error_event`` fault."""
    error = fault.body().get("error") or {}
    fields = {name: error.get(name) for name in ("code", "message", "param")}
    return frame({"type": "error", **fields, "sequence_number": 0})


def frame(event: dict[str, Any]) -> bytes:
    kind = str(event["type"]).encode()
    return b"event: " + kind + b"\ndata: " + msgspec.json.encode(event) + b"\n\n"


def _status(answer: Answer) -> str:
    return "incomplete" if answer.finish_reason == "length" else "completed"


def _item(answer: Answer, *, done: bool) -> dict[str, Any]:
    status = "completed" if done else "in_progress"
    if answer.tool is not None:
        name, arguments = answer.tool
        return {
            "type": "function_call",
            "id": f"fc_{uuid.uuid5(uuid.NAMESPACE_OID, answer.call_id).hex}",
            "call_id": answer.call_id,
            "name": name,
            "arguments": arguments if done else "",
            "status": status,
        }
    content = [_part("".join(answer.tokens))] if done else []
    item_id = f"msg_{uuid.uuid5(uuid.NAMESPACE_OID, answer.id).hex}"
    return {
        "type": "message",
        "id": item_id,
        "status": status,
        "role": "assistant",
        "content": content,
    }


def _part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _text(content: Any) -> str:
    if isinstance(content, list):
        parts = (part.get("text") for part in content if isinstance(part, dict))
        return " ".join(part for part in parts if isinstance(part, str))
    return content if isinstance(content, str) else ""


def _chat_tools(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The flat function tools in chat's nested shape (other tools are OpenAI-hosted)."""
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise ApiError(400, "Invalid type for 'tools': expected an array.", param="tools")
    return [
        {"type": "function", "function": tool}
        for tool in tools
        if isinstance(tool, dict) and tool.get("type") == "function"
    ]


def _choice(body: dict[str, Any]) -> Any:
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice
