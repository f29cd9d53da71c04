"""OpenAI chat requests into Anthropic Messages API requests.

The two APIs carry the same conversation in different shapes, and Anthropic is stricter about it:

- System and developer messages become the top-level ``system`` (Anthropic has no system role).
- Turns alternate between ``user`` and ``assistant``: consecutive turns of one role are merged,
  and tool results (OpenAI's ``tool`` messages) become ``tool_result`` blocks of a user turn,
  placed before any text of that turn as Anthropic requires.
- Assistant ``tool_calls`` become ``tool_use`` blocks whose ``input`` is the decoded arguments.
- Images become ``image`` blocks: data URLs as ``base64`` sources, http(s) URLs as ``url`` ones.
- ``max_tokens`` is required by Anthropic; the adapter sends `DEFAULT_MAX_TOKENS` when the
  caller set none. A final assistant message is sent as is: Claude continues it (prefill).

``response_format`` (JSON mode, structured output) becomes a forced tool (`anthropic_json_mode`),
and a ``metadata`` of only ``user_id`` becomes Anthropic's own ``metadata``. Parameters with no
Anthropic equivalent are refused with `UnsupportedParameterError` naming them (so the router tries a
deployment that has them), unless the deployment sets ``drop_params``; values that ask for nothing
(``n: 1``, ``presence_penalty: 0``, ...) pass silently. A few Anthropic-native fields
(`NATIVE_FIELDS`) are forwarded as they came, and a deployment's ``extra_body`` reaches the native
body untouched.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from turnout.config.router import Deployment
from turnout.errors import InvalidRequestError, UnsupportedParameterError
from turnout.providers.anthropic import json_mode

#: Sent when the caller gives no ``max_tokens``/``max_completion_tokens`` (Anthropic needs one).
DEFAULT_MAX_TOKENS = 4096
#: Anthropic-native request fields a caller may send through the OpenAI-shaped request.
NATIVE_FIELDS = ("top_k", "thinking", "service_tier")
#: OpenAI parameters Anthropic lacks, with the values that ask for nothing and so pass.
_NEUTRAL: dict[str, tuple[Any, ...]] = {
    "n": (1,),
    "presence_penalty": (0,),
    "frequency_penalty": (0,),
    "logprobs": (False,),
    "top_logprobs": (0,),
    "logit_bias": ({},),
    "store": (False,),
    "parallel_tool_calls": (True,),
}
#: Fields turnout reads for itself, or that the adapter handles outside the body.
_IGNORED = ("model", "tags", "stream_options")
_DATA_URL = re.compile(r"data:(?P<type>[^;,]*)(?P<params>(?:;[^;,]*)*),(?P<data>.*)", re.DOTALL)
_TOOL_CHOICES = {"auto": "auto", "required": "any", "none": "none"}


class RequestTranslator:
    """Builds one native body; holds the provider name and the deployment's drop rule."""

    __slots__ = ("_drop", "_name")

    def __init__(self, name: str, deployment: Deployment) -> None:
        self._name = name
        self._drop = deployment.drop_params

    def body(self, request: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
        """The native body for an OpenAI-shaped chat `request`; `extra` is merged in last."""
        fields = {k: v for k, v in request.items() if v is not None and k not in _IGNORED}
        native: dict[str, Any] = {}
        system, messages = self._conversation(fields.pop("messages", None))
        native["messages"] = messages
        if system is not None:
            native["system"] = system
        limit = fields.pop("max_completion_tokens", None)
        limit = fields.pop("max_tokens", None) if limit is None else limit
        fields.pop("max_tokens", None)
        native["max_tokens"] = DEFAULT_MAX_TOKENS if limit is None else limit
        for name in ("temperature", "top_p", *NATIVE_FIELDS):
            if name in fields:
                native[name] = fields.pop(name)
        stop = fields.pop("stop", None)
        if stop is not None:
            native["stop_sequences"] = [stop] if isinstance(stop, str) else stop
        if fields.pop("stream", None) is True:
            native["stream"] = True
        user = fields.pop("user", None)
        if user is not None:
            native["metadata"] = {"user_id": user}
        metadata = fields.pop("metadata", None)
        if isinstance(metadata, Mapping) and metadata.keys() == {"user_id"}:
            native["metadata"] = {"user_id": metadata["user_id"]}
        elif metadata:
            self._unsupported("metadata", "`metadata` other than `user_id`")
        self._add_tools(native, fields)
        fields.pop("parallel_tool_calls", None)
        self._json_mode(native, fields.pop("response_format", None))
        for name, value in fields.items():
            if value not in _NEUTRAL.get(name, ()):
                self._unsupported(name)
        native.update(extra)
        return native

    def _unsupported(self, param: str, what: str | None = None) -> None:
        if self._drop:
            return
        raise UnsupportedParameterError(
            f"{self._name}: Anthropic does not support {what or f'`{param}`'} (`{param}`)",
            param=param,
        )

    def _json_mode(self, native: dict[str, Any], response_format: Any) -> None:
        """JSON mode or structured output as a forced tool (`anthropic_json_mode`)."""
        try:
            tool = json_mode.forced_tool(response_format)
        except ValueError as error:
            raise self._invalid(str(error), "response_format") from None
        if tool is None:
            return
        if native.get("tools"):
            self._unsupported("response_format", "JSON mode together with tools")
            return
        thinking = native.get("thinking")
        if isinstance(thinking, Mapping) and thinking.get("type") == "enabled":
            self._unsupported("response_format", "JSON mode with extended thinking")
            return
        native["tools"] = [tool]
        native["tool_choice"] = json_mode.choice()

    def _invalid(self, message: str, param: str = "messages") -> InvalidRequestError:
        return InvalidRequestError(f"{self._name}: {message}", param=param)

    # -- the conversation -------------------------------------------------------------------

    def _conversation(self, messages: Any) -> tuple[str | list[Any] | None, list[Any]]:
        """The ``system`` value and the alternating native turns."""
        if not isinstance(messages, list) or not messages:
            raise self._invalid("`messages` must be a non-empty list")
        system: list[dict[str, Any]] = []
        turns: list[dict[str, Any]] = []
        for index, message in enumerate(messages):
            if not isinstance(message, Mapping):
                raise self._invalid(f"messages[{index}] must be an object")
            role = message.get("role")
            if role in ("system", "developer"):
                system.extend(self._system_blocks(message.get("content"), index))
            elif role == "user":
                _append(turns, "user", self._parts(message.get("content"), index))
            elif role == "assistant":
                _append(turns, "assistant", self._assistant(message, index))
            elif role == "tool":
                _append(turns, "user", [self._tool_result(message, index)])
            else:
                raise self._invalid(f"messages[{index}] has a role Anthropic lacks: {role!r}")
        for turn in turns:
            blocks = turn["content"]
            if turn["role"] == "user":
                # Anthropic wants a turn's tool results before anything else in it.
                blocks.sort(key=lambda block: block.get("type") != "tool_result")
            if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
                turn["content"] = blocks[0]["text"]
        return _system_value(system), turns

    def _system_blocks(self, content: Any, index: int) -> list[dict[str, Any]]:
        blocks = self._parts(content, index)
        if any(block["type"] != "text" for block in blocks):
            raise self._invalid(f"messages[{index}]: a system message may only hold text")
        return blocks

    def _assistant(self, message: Mapping[str, Any], index: int) -> list[dict[str, Any]]:
        if message.get("function_call") is not None:
            raise self._invalid(
                f"messages[{index}]: `function_call` is not supported; use `tool_calls`"
            )
        blocks = [
            block
            for block in self._parts(message.get("content"), index)
            if block["type"] != "text" or block["text"]
        ]
        for call in message.get("tool_calls") or ():
            blocks.append(self._tool_use(call, index))
        return blocks

    def _tool_use(self, call: Any, index: int) -> dict[str, Any]:
        function = call.get("function") if isinstance(call, Mapping) else None
        if not isinstance(function, Mapping) or not isinstance(call.get("id"), str):
            raise self._invalid(f"messages[{index}].tool_calls: each needs an id and a function")
        arguments = function.get("arguments") or "{}"
        try:
            decoded = msgspec.json.decode(arguments) if isinstance(arguments, str) else arguments
        except msgspec.DecodeError:
            decoded = None
        if not isinstance(decoded, dict):
            raise self._invalid(
                f"messages[{index}].tool_calls: the arguments of `{call['id']}` "
                "are not a JSON object"
            )
        return {
            "type": "tool_use",
            "id": call["id"],
            "name": function.get("name"),
            "input": decoded,
        }

    def _tool_result(self, message: Mapping[str, Any], index: int) -> dict[str, Any]:
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str):
            raise self._invalid(f"messages[{index}]: a tool message needs a `tool_call_id`")
        content = message.get("content")
        block: dict[str, Any] = {"type": "tool_result", "tool_use_id": call_id}
        if isinstance(content, str):
            block["content"] = content
        elif content is not None:
            block["content"] = self._parts(content, index)
        return block

    def _parts(self, content: Any, index: int) -> list[dict[str, Any]]:
        """A message content (a string or a list of parts) as native content blocks."""
        if content is None:
            return []
        if isinstance(content, str):
            return [{"type": "text", "text": content}]
        if not isinstance(content, list):
            raise self._invalid(f"messages[{index}].content must be a string or a list")
        blocks = []
        for part in content:
            kind = part.get("type") if isinstance(part, Mapping) else None
            if kind in ("text", "refusal"):
                text = part.get(kind)
                block: dict[str, Any] = {"type": "text", "text": text}
            elif kind == "image_url":
                block = self._image(part.get("image_url"), index)
            elif kind == "file":
                block = self._document(part.get("file"), index)
            else:
                raise self._invalid(
                    f"messages[{index}]: content parts of type {kind!r} are not supported"
                )
            if isinstance(part, Mapping) and "cache_control" in part:
                block["cache_control"] = part["cache_control"]
            blocks.append(block)
        return blocks

    def _image(self, image: Any, index: int) -> dict[str, Any]:
        url = image.get("url") if isinstance(image, Mapping) else image
        if not isinstance(url, str):
            raise self._invalid(f"messages[{index}]: an image_url part needs a url")
        if url.startswith("data:"):
            return {"type": "image", "source": self._base64(url, index, "image")}
        if url.startswith(("https://", "http://")):
            return {"type": "image", "source": {"type": "url", "url": url}}
        raise self._invalid(f"messages[{index}]: an image must be a data URL or an http(s) URL")

    def _document(self, file: Any, index: int) -> dict[str, Any]:
        data = file.get("file_data") if isinstance(file, Mapping) else None
        if not isinstance(data, str):
            raise self._invalid(
                f"messages[{index}]: a file part must carry `file_data` (OpenAI file ids "
                "mean nothing to Anthropic)"
            )
        return {"type": "document", "source": self._base64(data, index, "file")}

    def _base64(self, url: str, index: int, what: str) -> dict[str, Any]:
        match = _DATA_URL.fullmatch(url)
        if match is None or ";base64" not in match["params"] or not match["type"]:
            raise self._invalid(
                f"messages[{index}]: an inline {what} must be a base64 data URL "
                "(data:<media type>;base64,...)"
            )
        return {"type": "base64", "media_type": match["type"], "data": match["data"]}

    # -- tools ------------------------------------------------------------------------------

    def _add_tools(self, native: dict[str, Any], fields: dict[str, Any]) -> None:
        tools = fields.pop("tools", None)
        choice = fields.pop("tool_choice", None)
        if not tools:
            return
        native["tools"] = [self._tool(tool) for tool in tools]
        native_choice = self._tool_choice(choice) if choice is not None else None
        if fields.get("parallel_tool_calls") is False:
            native_choice = native_choice or {"type": "auto"}
            if native_choice["type"] != "none":
                native_choice["disable_parallel_tool_use"] = True
        if native_choice is not None:
            native["tool_choice"] = native_choice

    def _tool(self, tool: Any) -> dict[str, Any]:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if tool.get("type") != "function" or not isinstance(function, Mapping):
            raise self._invalid("only tools of type `function` are supported", "tools")
        schema = function.get("parameters") or {"type": "object", "properties": {}}
        native: dict[str, Any] = {"name": function.get("name"), "input_schema": schema}
        if function.get("description"):
            native["description"] = function["description"]
        if function.get("strict") is True:
            native["strict"] = True
        if "cache_control" in tool:
            native["cache_control"] = tool["cache_control"]
        return native

    def _tool_choice(self, choice: Any) -> dict[str, Any]:
        if isinstance(choice, str) and choice in _TOOL_CHOICES:
            return {"type": _TOOL_CHOICES[choice]}
        function = choice.get("function") if isinstance(choice, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            return {"type": "tool", "name": function["name"]}
        raise self._invalid(f"unsupported `tool_choice`: {choice!r}", "tool_choice")


def _append(turns: list[dict[str, Any]], role: str, blocks: list[dict[str, Any]]) -> None:
    """Add blocks as a turn, merged into the previous turn when it has the same role."""
    if not blocks:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1]["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": blocks})


def _system_value(blocks: list[dict[str, Any]]) -> str | list[Any] | None:
    """One plain text block as a string; several (or cache-controlled ones) as a list."""
    if not blocks:
        return None
    if len(blocks) == 1 and blocks[0].keys() == {"type", "text"}:
        text: str = blocks[0]["text"]
        return text
    return blocks
