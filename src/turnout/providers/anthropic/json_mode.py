"""JSON mode and structured output on Anthropic, through a forced tool.

The Messages API has no ``response_format``. Anthropic's documented way to get JSON that follows
a schema is a tool whose ``input_schema`` is that schema, with ``tool_choice`` forcing it: the
model's answer is then the tool's input. So ``response_format: {"type": "json_schema", ...}``
becomes one tool, `TOOL_NAME`, taking the requested schema (``json_object``: any object), and
``tool_choice: {"type": "tool", "name": TOOL_NAME}``. On the way back the tool's input is the
message content, as a JSON string, and the answer finishes with ``stop`` rather than
``tool_calls``; streamed, each ``input_json_delta`` of that tool is a content delta. The caller
sees what OpenAI's JSON mode answers.

A request that also offers tools of its own, or turns on extended thinking (which Anthropic does
not allow with a forced tool), cannot be served this way; the adapter refuses it as an
unsupported parameter, so the router tries a deployment that supports ``response_format``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: The forced tool's name (LiteLLM's, so that answers look the same to those moving over).
TOOL_NAME = "json_tool_call"
_ANY_OBJECT: dict[str, Any] = {"type": "object", "additionalProperties": True}


def requested(body: Mapping[str, Any], defaults: Mapping[str, Any]) -> bool:
    """Whether the request (or the deployment's default params) asks for JSON output."""
    value = body.get("response_format")
    if value is None:
        value = defaults.get("response_format")
    return isinstance(value, Mapping) and value.get("type") in ("json_object", "json_schema")


def forced_tool(response_format: Any) -> dict[str, Any] | None:
    """The tool to force for a ``response_format`` (None: plain text was asked for).

    Raises `ValueError` for a ``json_schema`` without an object schema.
    """
    kind = response_format.get("type") if isinstance(response_format, Mapping) else None
    if kind == "json_object":
        return {
            "name": TOOL_NAME,
            "description": "Respond with a JSON object.",
            "input_schema": _ANY_OBJECT,
        }
    if kind != "json_schema":
        return None
    spec = response_format.get("json_schema")
    schema = spec.get("schema") if isinstance(spec, Mapping) else None
    if not isinstance(schema, Mapping):
        raise ValueError("`response_format.json_schema.schema` must be a JSON schema object")
    description = spec.get("description") if isinstance(spec, Mapping) else None
    name = spec.get("name") if isinstance(spec, Mapping) else None
    text = description if isinstance(description, str) and description else None
    if text is None:
        text = f"Respond with JSON matching the `{name}` schema." if isinstance(name, str) else None
    tool: dict[str, Any] = {
        "name": TOOL_NAME,
        "description": text or "Respond with JSON matching the schema.",
        "input_schema": dict(schema),
    }
    return tool


def choice() -> dict[str, Any]:
    """The ``tool_choice`` forcing `TOOL_NAME`."""
    return {"type": "tool", "name": TOOL_NAME}
