"""A Responses API request as a chat completions body, so the chat router serves it.

The Responses API describes a turn as a list of typed items (messages, function calls and their
outputs) plus flat tools and a few renamed settings; chat completions says the same with roles,
nested tools and other names. Every provider turnout reaches speaks chat (natively or through its
adapter), so translating once at the ingress lets routing, retries, fallbacks and failover apply
unchanged. What has no chat equivalent (hosted tools, background runs, server-side conversations)
is refused with a 400 naming the field, rather than silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.errors import InvalidRequestError

#: Settings copied to the chat body as they are: they mean the same in both APIs.
_SAME_FIELDS = (
    "temperature",
    "top_p",
    "parallel_tool_calls",
    "user",
    "service_tier",
    "tags",
    "timeout",
    "stream_timeout",
)
#: Settings the gateway itself reads (or that only describe the response), never forwarded.
_GATEWAY_FIELDS = frozenset(
    {
        "model",
        "input",
        "instructions",
        "tools",
        "tool_choice",
        "text",
        "reasoning",
        "max_output_tokens",
        "metadata",
        "store",
        "stream",
        "previous_response_id",
        "include",
        "truncation",
        "stream_options",
        # Asks for logprobs with `include` (`_settings`); calls of hosted tools, which
        # max_tool_calls counts, are refused.
        "top_logprobs",
        "max_tool_calls",
        *_SAME_FIELDS,
    }
)
#: Fields of the Responses API whose behaviour needs OpenAI's own servers.
_UNSUPPORTED = {
    "background": "background responses",
    "conversation": "server-side conversations",
    "prompt": "stored prompt templates",
}
#: Key-value pairs a response's ``metadata`` may hold (OpenAI's limit).
_METADATA_PAIRS = 16
_TEXT_PARTS = ("input_text", "output_text", "text", "refusal")
_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}


def chat_messages(value: Any) -> list[dict[str, Any]]:
    """The chat messages saying what a Responses ``input`` says (a string or a list of items)."""
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise InvalidRequestError("`input` must be a string or a non-empty array", param="input")
    messages: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidRequestError(
                f"`input[{index}]` must be an object", param=f"input[{index}]"
            )
        _add_item(messages, item, f"input[{index}]")
    return messages


def chat_body(
    body: Mapping[str, Any], history: list[dict[str, Any]]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The chat body for a Responses request whose earlier turns are `history` (chat
    messages), and the new turn's own messages (what a stored response keeps besides its
    output; the instructions are not carried to later turns, as OpenAI does not carry them)."""
    for name, what in _UNSUPPORTED.items():
        if body.get(name):
            raise InvalidRequestError(f"`{name}`: {what} are not supported", param=name)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("you must provide a model parameter", param="model")
    if "input" not in body:
        raise InvalidRequestError("you must provide an input parameter", param="input")
    turn = chat_messages(body["input"])
    _check_echoed(body)
    chat: dict[str, Any] = {"model": model}
    instructions = body.get("instructions")
    system: list[dict[str, Any]] = []
    if instructions is not None:
        if not isinstance(instructions, str):
            raise InvalidRequestError("`instructions` must be a string", param="instructions")
        system = [{"role": "system", "content": instructions}]
    chat["messages"] = [*system, *history, *turn]
    for name in _SAME_FIELDS:
        if body.get(name) is not None:
            chat[name] = body[name]
    for name, value in body.items():
        # Provider-specific extras a caller may add (as with chat); Responses' own are known.
        if name not in _GATEWAY_FIELDS and name not in _UNSUPPORTED and value is not None:
            chat[name] = value
    _settings(body, chat)
    _logprobs(body, chat)
    if body.get("stream") is True:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    elif body.get("stream") is not None and not isinstance(body.get("stream"), bool):
        raise InvalidRequestError("`stream` must be a boolean", param="stream")
    return chat, turn


#: What `include` names to have each output text's token logprobs.
LOGPROBS_INCLUDE = "message.output_text.logprobs"


def _logprobs(body: Mapping[str, Any], chat: dict[str, Any]) -> None:
    """Token logprobs asked for (`include` naming them, or `top_logprobs`) become chat's
    ``logprobs`` and ``top_logprobs``: the upstream checks their range, as OpenAI does."""
    include = body.get("include")
    if include is not None and not (
        isinstance(include, list) and all(isinstance(name, str) for name in include)
    ):
        raise InvalidRequestError("`include` must be a list of strings", param="include")
    top = body.get("top_logprobs")
    if (include is not None and LOGPROBS_INCLUDE in include) or top is not None:
        chat["logprobs"] = True
        if top is not None:
            chat["top_logprobs"] = top


def _check_echoed(body: Mapping[str, Any]) -> None:
    """Fields the response echoes back, which the client's SDK then reads as typed."""
    metadata = body.get("metadata")
    if metadata is not None and not (
        isinstance(metadata, dict)
        and len(metadata) <= _METADATA_PAIRS
        and all(isinstance(value, str) for value in metadata.values())
    ):
        raise InvalidRequestError(
            f"`metadata` must be an object of at most {_METADATA_PAIRS} string values",
            param="metadata",
        )
    store = body.get("store")
    if store is not None and not isinstance(store, bool):
        raise InvalidRequestError("`store` must be a boolean", param="store")


def _settings(body: Mapping[str, Any], chat: dict[str, Any]) -> None:
    """Tools, tool choice, output format, reasoning and the token cap, in chat's names."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequestError("`tools` must be an array", param="tools")
        if tools:
            chat["tools"] = [_tool(tool, f"tools[{i}]") for i, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    if choice is not None:
        chat["tool_choice"] = _tool_choice(choice)
    text = body.get("text")
    if text is not None:
        if not isinstance(text, dict):
            raise InvalidRequestError("`text` must be an object", param="text")
        response_format = _format(text.get("format"))
        if response_format is not None:
            chat["response_format"] = response_format
        if text.get("verbosity") is not None:
            chat["verbosity"] = text["verbosity"]
    reasoning = body.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise InvalidRequestError("`reasoning` must be an object", param="reasoning")
        if reasoning.get("effort") is not None:
            chat["reasoning_effort"] = reasoning["effort"]
    cap = body.get("max_output_tokens")
    if cap is not None:
        if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
            raise InvalidRequestError(
                "`max_output_tokens` must be an integer of at least 1", param="max_output_tokens"
            )
        chat["max_completion_tokens"] = cap


def _add_item(messages: list[dict[str, Any]], item: dict[str, Any], where: str) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        role = _ROLES.get(item.get("role", ""))
        if role is None:
            raise InvalidRequestError(
                f"`{where}.role` must be one of user, assistant, system, developer",
                param=f"{where}.role",
            )
        content = _content(item.get("content"), f"{where}.content", role)
        if role == "assistant" and messages and _open_assistant(messages[-1]):
            messages[-1]["content"] = content
            return
        messages.append({"role": role, "content": content})
    elif kind == "function_call":
        call = {
            "id": _text(item, "call_id", where),
            "type": "function",
            "function": {
                "name": _text(item, "name", where),
                "arguments": _text(item, "arguments", where),
            },
        }
        last = messages[-1] if messages else None
        if last is not None and last["role"] == "assistant":
            last.setdefault("tool_calls", []).append(call)
        else:
            messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
    elif kind == "function_call_output":
        output = item.get("output")
        if isinstance(output, list):
            output = _joined_text(output, f"{where}.output")
        if not isinstance(output, str):
            raise InvalidRequestError(
                f"`{where}.output` must be a string or an array of text parts",
                param=f"{where}.output",
            )
        call_id = _text(item, "call_id", where)
        messages.append({"role": "tool", "tool_call_id": call_id, "content": output})
    elif kind == "reasoning":
        return  # a reasoning summary: meaningful only to the model that wrote it
    else:
        raise InvalidRequestError(
            f"`{where}.type` {kind!r} is not supported: use message, function_call or "
            "function_call_output items",
            param=f"{where}.type",
        )


def _open_assistant(message: dict[str, Any]) -> bool:
    """An assistant message made for function calls alone, which a text may join."""
    return message["role"] == "assistant" and message.get("content") is None


def _text(item: Mapping[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str):
        raise InvalidRequestError(f"`{where}.{name}` must be a string", param=f"{where}.{name}")
    return value


def _content(value: Any, where: str, role: str) -> str | list[dict[str, Any]]:
    """A message's content in chat's form: a string, or parts (text, images, files)."""
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise InvalidRequestError(f"`{where}` must be a string or an array", param=where)
    if role != "user":
        return _joined_text(value, where)
    return [_part(part, f"{where}[{index}]") for index, part in enumerate(value)]


def _joined_text(parts: list[Any], where: str) -> str:
    """The text of parts that can only be text (an assistant's, a system's, a tool's)."""
    texts: list[str] = []
    for index, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        field = "refusal" if kind == "refusal" else "text"
        text = part.get(field) if isinstance(part, dict) else None
        if kind not in ("input_text", "output_text", "text", "refusal") or not isinstance(
            text, str
        ):
            raise InvalidRequestError(
                f"`{where}[{index}]` must be a text part here", param=f"{where}[{index}]"
            )
        texts.append(text)
    return "".join(texts)


def _part(part: Any, where: str) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    if kind in ("input_text", "output_text"):
        assert isinstance(part, dict)
        return {"type": "text", "text": _text(part, "text", where)}
    if kind == "input_image":
        assert isinstance(part, dict)
        url = part.get("image_url")
        if not isinstance(url, str):
            raise InvalidRequestError(
                f"`{where}.image_url` must be a URL or a data URL (file ids are not supported)",
                param=f"{where}.image_url",
            )
        image: dict[str, Any] = {"url": url}
        if part.get("detail") is not None:
            image["detail"] = part["detail"]
        return {"type": "image_url", "image_url": image}
    if kind == "input_file":
        assert isinstance(part, dict)
        file = {name: part[name] for name in ("file_data", "file_id", "filename") if name in part}
        return {"type": "file", "file": file}
    raise InvalidRequestError(
        f"`{where}` must be an input_text, input_image or input_file part", param=where
    )


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        kind = tool.get("type") if isinstance(tool, dict) else None
        raise InvalidRequestError(
            f"`{where}`: only function tools are supported (not {kind!r})", param=where
        )
    function: dict[str, Any] = {"name": _text(tool, "name", where)}
    for name in ("description", "parameters", "strict"):
        if tool.get(name) is not None:
            function[name] = tool[name]
    return {"type": "function", "function": function}


def _tool_choice(choice: Any) -> Any:
    if choice in ("auto", "none", "required"):
        return choice
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": _text(choice, "name", "tool_choice")}}
    raise InvalidRequestError(
        "`tool_choice` must be auto, none, required or a function", param="tool_choice"
    )


def _format(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        return {"type": "json_object"}
    if kind == "json_schema":
        assert isinstance(value, dict)
        schema = value.get("schema")
        if not isinstance(schema, dict):
            raise InvalidRequestError(
                "`text.format.schema` must be a JSON schema object", param="text.format.schema"
            )
        spec = {"name": _text(value, "name", "text.format"), "schema": schema}
        for name in ("strict", "description"):
            if value.get(name) is not None:
                spec[name] = value[name]
        return {"type": "json_schema", "json_schema": spec}
    raise InvalidRequestError(
        "`text.format.type` must be text, json_object or json_schema", param="text.format"
    )
