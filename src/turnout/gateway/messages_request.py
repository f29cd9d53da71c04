"""An Anthropic Messages request as the OpenAI-shaped chat body the router routes.

The router speaks Chat Completions, so a ``/v1/messages`` request is translated once, on the
way in, and every deployment (an OpenAI, Gemini or Bedrock one, and an Anthropic one through
its own adapter) serves it as it serves chat:

- ``system`` (a string or text blocks) becomes a leading system message.
- A user turn's ``tool_result`` blocks become ``tool`` messages placed before the rest of the
  turn (Chat Completions wants them right after the assistant's calls); a result flagged
  ``is_error`` says so in its text, and images a result carries follow as a user message.
- An assistant turn's ``tool_use`` blocks become ``tool_calls`` with JSON-encoded arguments.
- Images become ``image_url`` parts (base64 sources as data URLs) and PDF documents ``file``
  parts; ``cache_control`` markers, which only Anthropic reads, are left out.
- ``thinking`` blocks and the ``thinking`` setting are left out: Chat Completions has no way to
  carry a thinking block or its signature back, and a conversation that switched thinking on
  but lost its blocks would be refused by Anthropic on the next tool-using turn.
- Fields that only steer Anthropic's own service (``cache_control``, ``service_tier``,
  ``speed``, ``inference_geo``, ``container``, ``context_management``, ``diagnostics``, the
  ``output_config`` effort...) are left out, as are fields this translation does not know:
  the API grows often, and a client such as Claude Code must not fail on a hint.
- Client tools become functions, ``tool_choice`` its chat equivalent, ``stop_sequences``
  ``stop``, ``metadata.user_id`` ``user`` and ``output_config.format`` (structured output)
  ``response_format``; ``temperature``, ``top_p`` and ``top_k`` pass as they are. Server tools
  (web search, code execution...) run inside Anthropic's API and have no chat equivalent:
  they are refused by name.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from turnout.errors import InvalidRequestError

_ENCODE = msgspec.json.Encoder().encode
#: Fields that pass to the chat body unchanged, with the range Anthropic's API accepts.
_SAME = {
    "temperature": (0.0, 1.0),
    "top_p": (0.0, 1.0),
    "top_k": (0.0, float("inf")),
}
_CHOICES = {"auto": "auto", "any": "required", "none": "none"}


def check_model(body: Mapping[str, Any]) -> str:
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise InvalidRequestError("model: Field required (a non-empty string)", param="model")
    return model


def chat_body(body: Mapping[str, Any], *, counting: bool = False) -> dict[str, Any]:
    """The chat body for a Messages request, or an `InvalidRequestError` naming the field.
    `counting`: for ``count_tokens``, which takes no ``max_tokens`` and generates nothing."""
    chat: dict[str, Any] = {"model": check_model(body)}
    messages = _system(body.get("system"))
    turns = body.get("messages")
    if not isinstance(turns, list) or not turns:
        raise InvalidRequestError("messages: must be a non-empty array", param="messages")
    for index, turn in enumerate(turns):
        messages.extend(_turn(turn, f"messages.{index}"))
    chat["messages"] = messages
    if not counting:
        chat["max_tokens"] = _max_tokens(body.get("max_tokens"))
        stream = body.get("stream")
        if stream is not None and not isinstance(stream, bool):
            raise InvalidRequestError("stream: Input should be a valid boolean", param="stream")
        if stream:
            chat["stream"] = True
            chat["stream_options"] = {"include_usage": True}
        _sampling(body, chat)
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise InvalidRequestError("tools: Input should be a valid list", param="tools")
        if tools:
            chat["tools"] = [_tool(tool, f"tools.{i}") for i, tool in enumerate(tools)]
    choice = body.get("tool_choice")
    if choice is not None and tools:
        _tool_choice(choice, chat)
    config = body.get("output_config")
    output = config.get("format") if isinstance(config, Mapping) else None
    output = body.get("output_format") if output is None else output
    if output is not None:
        chat["response_format"] = _response_format(output)
    return chat


def stop_sequences(body: Mapping[str, Any]) -> tuple[str, ...]:
    """The request's stop sequences (checked by `chat_body`), for the answer's stop reason."""
    stops = body.get("stop_sequences")
    return tuple(stops) if isinstance(stops, list) else ()


def _max_tokens(value: Any) -> int:
    if value is None:
        raise InvalidRequestError("max_tokens: Field required", param="max_tokens")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequestError(
            "max_tokens: Input should be an integer of at least 1", param="max_tokens"
        )
    return value


def _sampling(body: Mapping[str, Any], chat: dict[str, Any]) -> None:
    for name, (low, high) in _SAME.items():
        value = body.get(name)
        if value is None:
            continue
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise InvalidRequestError(f"{name}: Input should be a valid number", param=name)
        if not low <= value <= high:
            bound = f"between {low:g} and {high:g}" if high != float("inf") else f">= {low:g}"
            raise InvalidRequestError(f"{name}: Input should be {bound}", param=name)
        chat[name] = value
    stops = body.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
            raise InvalidRequestError(
                "stop_sequences: Input should be a list of non-empty strings",
                param="stop_sequences",
            )
        if stops:
            chat["stop"] = stops
    metadata = body.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise InvalidRequestError("metadata: Input should be an object", param="metadata")
        user = metadata.get("user_id")
        if isinstance(user, str) and user:
            chat["user"] = user


def _system(system: Any) -> list[dict[str, Any]]:
    if system is None:
        return []
    if isinstance(system, str):
        return [{"role": "system", "content": system}] if system else []
    if not isinstance(system, list):
        raise InvalidRequestError("system: Input should be a string or a list", param="system")
    texts = []
    for index, block in enumerate(system):
        if not isinstance(block, Mapping) or block.get("type") != "text":
            raise InvalidRequestError(
                f"system.{index}: only text blocks are allowed", param=f"system.{index}"
            )
        texts.append(_text(block, f"system.{index}"))
    text = "\n\n".join(texts)
    return [{"role": "system", "content": text}] if text else []


def _turn(turn: Any, where: str) -> list[dict[str, Any]]:
    """One Messages turn as one or more chat messages."""
    if not isinstance(turn, Mapping):
        raise InvalidRequestError(f"{where}: Input should be an object", param=where)
    role = turn.get("role")
    if role not in ("user", "assistant"):
        raise InvalidRequestError(
            f"{where}.role: Input should be 'user' or 'assistant'", param=f"{where}.role"
        )
    content = turn.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise InvalidRequestError(
            f"{where}.content: Input should be a string or a list of blocks",
            param=f"{where}.content",
        )
    blocks = []
    for index, block in enumerate(content):
        if not isinstance(block, Mapping) or not isinstance(block.get("type"), str):
            path = f"{where}.content.{index}"
            raise InvalidRequestError(f"{path}: a block needs a `type`", param=path)
        blocks.append(block)
    if role == "assistant":
        return [_assistant(blocks, where)]
    return _user(blocks, where)


def _user(blocks: list[Mapping[str, Any]], where: str) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    result_images: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        path = f"{where}.content.{index}"
        kind = block["type"]
        if kind == "tool_result":
            results.append(_tool_result(block, path, result_images))
        elif kind in ("thinking", "redacted_thinking"):
            continue
        else:
            parts.append(_part(block, path))
    messages = results
    if result_images:
        messages.append({"role": "user", "content": result_images})
    if parts:
        if len(parts) == 1 and parts[0]["type"] == "text":
            messages.append({"role": "user", "content": parts[0]["text"]})
        else:
            messages.append({"role": "user", "content": parts})
    return messages


def _assistant(blocks: list[Mapping[str, Any]], where: str) -> dict[str, Any]:
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for index, block in enumerate(blocks):
        path = f"{where}.content.{index}"
        kind = block["type"]
        if kind == "text":
            texts.append(_text(block, path))
        elif kind == "tool_use":
            calls.append(_tool_use(block, path))
        elif kind not in ("thinking", "redacted_thinking"):
            raise InvalidRequestError(
                f"{path}: an assistant turn cannot hold a `{kind}` block", param=path
            )
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    return message


def _text(block: Mapping[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise InvalidRequestError(f"{where}.text: Field required (a string)", param=where)
    return text


def _part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    """A user content block as a chat content part."""
    kind = block["type"]
    if kind == "text":
        return {"type": "text", "text": _text(block, where)}
    if kind in ("image", "document"):
        source = block.get("source")
        if not isinstance(source, Mapping):
            raise InvalidRequestError(f"{where}.source: Field required", param=where)
        url = _source_url(source, where)
        if kind == "image":
            return {"type": "image_url", "image_url": {"url": url}}
        if not url.startswith("data:"):
            raise InvalidRequestError(
                f"{where}.source: only base64 documents can be translated", param=where
            )
        return {"type": "file", "file": {"file_data": url}}
    raise InvalidRequestError(f"{where}: blocks of type `{kind}` cannot be sent here", param=where)


def _source_url(source: Mapping[str, Any], where: str) -> str:
    kind = source.get("type")
    if kind == "base64":
        media, data = source.get("media_type"), source.get("data")
        if isinstance(media, str) and isinstance(data, str):
            return f"data:{media};base64,{data}"
    elif kind == "url" and isinstance(source.get("url"), str):
        url: str = source["url"]
        return url
    raise InvalidRequestError(
        f"{where}.source: a `base64` source (media_type, data) or a `url` source is needed",
        param=where,
    )


def _tool_use(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    call_id, name, arguments = block.get("id"), block.get("name"), block.get("input")
    if not isinstance(call_id, str) or not isinstance(name, str):
        raise InvalidRequestError(f"{where}: a tool_use block needs an id and a name", param=where)
    if not isinstance(arguments, Mapping):
        raise InvalidRequestError(f"{where}.input: Input should be an object", param=where)
    encoded = _ENCODE(arguments).decode()
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": encoded}}


def _tool_result(
    block: Mapping[str, Any], where: str, images: list[dict[str, Any]]
) -> dict[str, Any]:
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str):
        raise InvalidRequestError(f"{where}.tool_use_id: Field required", param=where)
    content = block.get("content")
    if content is None:
        text = ""
    elif isinstance(content, str):
        text = content
    elif isinstance(content, list):
        texts = []
        for index, part in enumerate(content):
            if not isinstance(part, Mapping):
                raise InvalidRequestError(f"{where}.content.{index}: a block", param=where)
            converted = _part(part, f"{where}.content.{index}")
            if converted["type"] == "text":
                texts.append(converted["text"])
            else:
                images.append(converted)
        text = "\n".join(texts)
    else:
        raise InvalidRequestError(
            f"{where}.content: Input should be a string or a list", param=where
        )
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}


def _tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, Mapping):
        raise InvalidRequestError(f"{where}: Input should be an object", param=where)
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise InvalidRequestError(
            f"{where}: the server tool `{kind}` runs only on Anthropic's API and cannot be "
            "translated for this model",
            param=where,
        )
    name, schema = tool.get("name"), tool.get("input_schema")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(f"{where}.name: Field required", param=f"{where}.name")
    if not isinstance(schema, Mapping):
        raise InvalidRequestError(
            f"{where}.input_schema: Field required", param=f"{where}.input_schema"
        )
    function: dict[str, Any] = {"name": name, "parameters": dict(schema)}
    description = tool.get("description")
    if isinstance(description, str) and description:
        function["description"] = description
    return {"type": "function", "function": function}


def _response_format(output: Any) -> dict[str, Any]:
    """Structured output (``output_config.format``, formerly ``output_format``) as the chat
    ``response_format`` it mirrors."""
    schema = output.get("schema") if isinstance(output, Mapping) else None
    if not isinstance(schema, Mapping) or output.get("type") != "json_schema":
        raise InvalidRequestError(
            "output_config.format: Input should be of type json_schema, with a `schema`",
            param="output_config.format",
        )
    return {"type": "json_schema", "json_schema": {"name": "output", "schema": dict(schema)}}


def _tool_choice(choice: Any, chat: dict[str, Any]) -> None:
    kind = choice.get("type") if isinstance(choice, Mapping) else None
    if kind in _CHOICES:
        chat["tool_choice"] = _CHOICES[kind]
    elif kind == "tool" and isinstance(choice.get("name"), str):
        chat["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
    else:
        raise InvalidRequestError(
            "tool_choice: Input should be of type auto, any, tool (with a name) or none",
            param="tool_choice",
        )
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        chat["parallel_tool_calls"] = False
