"""OpenAI request bodies as Bedrock ones: Converse for chat, InvokeModel bodies for embeddings.

Chat maps field by field (see the API reference of Converse): ``max_tokens`` /
``max_completion_tokens``, ``temperature``, ``top_p`` and ``stop`` go in ``inferenceConfig``;
``tools`` become ``toolConfig.tools[].toolSpec`` with the parameters schema under
``inputSchema.json``; ``tool_choice`` becomes ``toolChoice`` (auto, any for "required", tool for a
named function). Converse has no "none" choice, so ``tool_choice: "none"`` withholds the tools
instead, which Converse refuses once the conversation holds tool calls: then turnout can only
refuse too. ``response_format`` with a JSON schema becomes ``outputConfig.textFormat``; plain
JSON mode has no equivalent. ``user`` and ``metadata`` become ``requestMetadata`` (Bedrock's
key-value tags for invocation logs). Anything else OpenAI defines that Converse cannot honour
is refused with a 400 naming it, or dropped when the deployment says ``drop_params``.

Embeddings go to InvokeModel, whose body is the model's own: Amazon Titan Text Embeddings take
one ``inputText`` per call; Cohere Embed takes ``texts`` (up to 96) with an ``input_type``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from turnout.errors import InvalidRequestError, UnsupportedParameterError
from turnout.providers.bedrock.messages import PROVIDER, converse_messages

#: Request fields read elsewhere (routing, streaming, the translator) or turnout's own.
_HANDLED = frozenset({"model", "messages", "stream", "stream_options", "tags"})
#: Fields OpenAI defines that carry no meaning for Converse when left at these values.
_HARMLESS: dict[str, Callable[[Any], bool]] = {
    "n": lambda value: value == 1,
    "parallel_tool_calls": lambda value: value is True,
    "store": lambda value: value is False,
    "logprobs": lambda value: value is False,
}
#: Cohere Embed's default ``input_type`` (a deployment may set ``params.input_type``).
COHERE_INPUT_TYPE = "search_document"


#: The tool forced for JSON mode on models that take one (the name the Anthropic adapter uses).
JSON_TOOL = "json_tool_call"


def converse_body(
    body: dict[str, Any], drop_params: bool, json_tool: bool = False
) -> dict[str, Any]:
    """The Converse (or ConverseStream) request body for an OpenAI chat body.

    `json_tool`: the model takes a forced tool (Claude), so JSON mode (``json_object``) is one
    tool, `JSON_TOOL`, taking any object, with ``toolChoice`` forcing it; its input is the
    answer (`turnout.providers.bedrock.response`).
    """
    system, messages = converse_messages(body.get("messages"))
    native: dict[str, Any] = {"messages": messages}
    if system:
        native["system"] = system
    refuse = _refuser(drop_params)
    inference: dict[str, Any] = {}
    metadata: dict[str, str] = {}
    tools: Any = None
    choice: Any = None
    forced: dict[str, Any] | None = None
    for name, value in body.items():
        if name in _HANDLED or value is None:
            continue
        if name in ("max_tokens", "max_completion_tokens"):
            inference["maxTokens"] = value
        elif name == "temperature":
            inference["temperature"] = value
        elif name == "top_p":
            inference["topP"] = value
        elif name == "stop":
            inference["stopSequences"] = [value] if isinstance(value, str) else value
        elif name == "tools":
            tools = value
        elif name == "tool_choice":
            choice = value
        elif name == "response_format":
            if json_tool and isinstance(value, dict) and value.get("type") == "json_object":
                if body.get("tools"):
                    refuse("response_format")
                else:
                    forced = _json_tool_config()
            else:
                _response_format(native, value, refuse)
        elif name == "user":
            metadata["user"] = str(value)
        elif name == "metadata" and isinstance(value, dict):
            metadata.update({str(key): str(item) for key, item in value.items()})
        elif name not in _HARMLESS or not _HARMLESS[name](value):
            refuse(name)
    if inference:
        native["inferenceConfig"] = inference
    if metadata:
        native["requestMetadata"] = metadata
    tool_config = forced if forced is not None else _tool_config(tools, choice, messages, refuse)
    if tool_config is not None:
        native["toolConfig"] = tool_config
    return native


def _json_tool_config() -> dict[str, Any]:
    """The ``toolConfig`` forcing `JSON_TOOL`, which takes any object."""
    spec = {
        "name": JSON_TOOL,
        "description": "Respond with a JSON object.",
        "inputSchema": {"json": {"type": "object", "additionalProperties": True}},
    }
    return {"tools": [{"toolSpec": spec}], "toolChoice": {"tool": {"name": JSON_TOOL}}}


def _refuser(drop_params: bool) -> Callable[[str], None]:
    def refuse(name: str) -> None:
        if not drop_params:
            raise UnsupportedParameterError(
                f"{PROVIDER}: the Converse API does not support `{name}`", param=name
            )

    return refuse


def _response_format(native: dict[str, Any], value: Any, refuse: Callable[[str], None]) -> None:
    kind = value.get("type") if isinstance(value, dict) else None
    if kind == "text":
        return
    schema = value.get("json_schema") if kind == "json_schema" else None
    if not isinstance(schema, dict) or not isinstance(schema.get("schema"), dict):
        refuse("response_format")
        return
    definition: dict[str, Any] = {"schema": msgspec.json.encode(schema["schema"]).decode()}
    for field in ("name", "description"):
        if isinstance(schema.get(field), str):
            definition[field] = schema[field]
    structure = {"jsonSchema": definition}
    native["outputConfig"] = {"textFormat": {"type": "json_schema", "structure": structure}}


def _tool_config(
    tools: Any, choice: Any, messages: list[dict[str, Any]], refuse: Callable[[str], None]
) -> dict[str, Any] | None:
    if not tools:
        if choice not in (None, "none", "auto"):
            raise InvalidRequestError(
                f"{PROVIDER}: `tool_choice` needs `tools`", param="tool_choice"
            )
        return None
    if not isinstance(tools, list):
        raise InvalidRequestError(f"{PROVIDER}: `tools` must be a list", param="tools")
    specs = [_tool_spec(tool, index) for index, tool in enumerate(tools)]
    config: dict[str, Any] = {"tools": specs}
    if choice == "none":
        if not any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"]):
            return None
        # Converse requires the tools whenever the conversation holds tool calls, and has no
        # way to forbid calling them.
        refuse("tool_choice")
    elif choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(choice, dict):
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str):
            raise InvalidRequestError(
                f"{PROVIDER}: `tool_choice` must name a function", param="tool_choice"
            )
        config["toolChoice"] = {"tool": {"name": name}}
    elif choice == "auto":
        config["toolChoice"] = {"auto": {}}
    elif choice is not None:
        raise InvalidRequestError(
            f"{PROVIDER}: unknown `tool_choice` {choice!r}", param="tool_choice"
        )
    return config


def _tool_spec(tool: Any, index: int) -> dict[str, Any]:
    function = tool.get("function") if isinstance(tool, dict) else None
    if (
        not isinstance(tool, dict)
        or tool.get("type") != "function"
        or not isinstance(function, dict)
    ):
        raise InvalidRequestError(
            f"{PROVIDER}: tools[{index}] must be a function tool", param=f"tools[{index}]"
        )
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError(
            f"{PROVIDER}: tools[{index}] needs a name", param=f"tools[{index}].function.name"
        )
    parameters = function.get("parameters")
    schema = parameters if isinstance(parameters, dict) else {"type": "object", "properties": {}}
    spec: dict[str, Any] = {"name": name, "inputSchema": {"json": schema}}
    description = function.get("description")
    if isinstance(description, str) and description:
        spec["description"] = description
    if function.get("strict") is True:
        spec["strict"] = True
    return {"toolSpec": spec}


def embedding_inputs(body: dict[str, Any]) -> list[str]:
    """The texts to embed: a string or a list of strings (token arrays have no meaning here)."""
    value = body.get("input")
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return value
    raise InvalidRequestError(
        f"{PROVIDER}: `input` must be a string or a non-empty list of strings", param="input"
    )


def titan_body(body: dict[str, Any], drop_params: bool) -> dict[str, Any]:
    """Titan Text Embeddings: one ``inputText`` per call, optional ``dimensions``."""
    inputs = embedding_inputs(body)
    if len(inputs) > 1:
        raise InvalidRequestError(
            f"{PROVIDER}: Amazon Titan embedding models take one text per request; `input` "
            f"holds {len(inputs)}",
            param="input",
        )
    native: dict[str, Any] = {"inputText": inputs[0]}
    if body.get("dimensions") is not None:
        native["dimensions"] = body["dimensions"]
    _check_embedding_fields(body, ("dimensions",), drop_params)
    return native


def cohere_body(body: dict[str, Any], input_type: str, drop_params: bool) -> dict[str, Any]:
    """Cohere Embed: every text in one call, as the deployment's ``input_type``."""
    _check_embedding_fields(body, (), drop_params)
    return {"texts": embedding_inputs(body), "input_type": input_type}


def _check_embedding_fields(body: dict[str, Any], mapped: tuple[str, ...], drop: bool) -> None:
    # ``encoding_format`` is honoured when the answer is written; ``user`` has no equivalent
    # but changes nothing about the vectors.
    known = {"model", "input", "encoding_format", "user", "tags", *mapped}
    refuse = _refuser(drop)
    for name, value in body.items():
        if name not in known and value is not None:
            refuse(name)
    if body.get("encoding_format") not in (None, "float", "base64"):
        raise InvalidRequestError(
            f"{PROVIDER}: `encoding_format` must be float or base64", param="encoding_format"
        )
