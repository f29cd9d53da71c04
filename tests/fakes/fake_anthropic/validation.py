"""The checks the fake applies to a Messages request, each failing as Anthropic fails it.

Strict on purpose: an adapter that leaks an OpenAI field (``stop``, ``n``, ``tool_calls``), sends
a ``system`` role, breaks the ``tool_use``/``tool_result`` pairing or forgets ``max_tokens`` is
answered with the 400 Anthropic would send, so its tests fail here rather than in production.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

#: The request fields of ``POST /v1/messages`` the fake knows; anything else is refused.
FIELDS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "stop_sequences",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "tools",
        "tool_choice",
        "metadata",
        "thinking",
        "service_tier",
    }
)
_BLOCKS = {
    "user": {"text", "image", "document", "tool_result"},
    "assistant": {"text", "tool_use", "thinking", "redacted_thinking"},
}
MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
_TOOL_CHOICES = ("auto", "any", "tool", "none")


class ApiError(Exception):
    """An error answer decided while handling a request; made into a response in one place."""

    def __init__(self, status: int, error_type: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_type = error_type
        self.message = message


def invalid(message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message)


def check(body: Any, models: Sequence[str] | None) -> None:
    """Raise the `ApiError` Anthropic would answer this body with, if any."""
    _check_fields(body, models, FIELDS)
    tokens = body.get("max_tokens")
    if tokens is None:
        raise invalid("max_tokens: Field required")
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 1:
        raise invalid("max_tokens: Input should be a valid integer greater than or equal to 1")
    for name in ("temperature", "top_p"):
        value = body.get(name)
        if value is not None and (not isinstance(value, int | float) or not 0 <= value <= 1):
            raise invalid(f"{name}: range: 0..1")
    stops = body.get("stop_sequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(s, str) for s in stops)
    ):
        raise invalid("stop_sequences: Input should be a valid list of strings")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise invalid("metadata: Input should be a valid dictionary")
    for name in sorted(set(metadata or ()) - {"user_id"}):
        raise invalid(f"metadata.{name}: Extra inputs are not permitted")
    _check_system(body.get("system"))
    _check_messages(body.get("messages"))
    _check_tools(body.get("tools"), body.get("tool_choice"))


#: What ``POST /v1/messages/count_tokens`` takes: a message's input, without sampling fields.
COUNT_FIELDS = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "thinking", "mcp_servers"}
)


def check_count(body: Any, models: Sequence[str] | None) -> None:
    """Raise the `ApiError` Anthropic would answer this token count request with, if any."""
    _check_fields(body, models, COUNT_FIELDS)
    _check_system(body.get("system"))
    _check_messages(body.get("messages"))
    _check_tools(body.get("tools"), body.get("tool_choice"))


def _check_fields(body: Any, models: Sequence[str] | None, fields: frozenset[str]) -> None:
    """The body is an object of known `fields` naming a model this fake serves."""
    if not isinstance(body, dict):
        raise invalid("There was an error parsing the body of your request: expected an object")
    for name in body:
        if name not in fields:
            raise invalid(f"{name}: Extra inputs are not permitted")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise invalid("model: Field required")
    if models is not None and model not in models:
        raise ApiError(404, "not_found_error", f"model: {model}")


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list) or not all(
        isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
        for b in system
    ):
        raise invalid("system: Input should be a valid string or a list of text blocks")


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list) or not messages:
        raise invalid("messages: at least one message is required")
    pending: list[str] = []
    for index, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "system":
            raise invalid(
                'messages: Unexpected role "system". The Messages API accepts a top-level '
                '`system` parameter, not "system" as an input message role.'
            )
        if role not in _BLOCKS:
            raise invalid(f"messages.{index}.role: Input should be 'user' or 'assistant'")
        blocks = _blocks(message.get("content"), index)
        results = [b.get("tool_use_id") for b in blocks if b.get("type") == "tool_result"]
        if pending:
            missing = [call for call in pending if call not in results]
            if missing or role != "user":
                raise invalid(
                    f"messages.{index}: `tool_use` ids were found without `tool_result` blocks "
                    f"immediately after: {', '.join(missing or pending)}. Each `tool_use` block "
                    "must have a corresponding `tool_result` block in the next message."
                )
        for position, block in enumerate(blocks):
            _check_block(block, role, f"messages.{index}.content.{position}")
            if block["type"] == "tool_result" and block.get("tool_use_id") not in pending:
                raise invalid(
                    f"messages.{index}.content.{position}: unexpected `tool_use_id` found in "
                    f"`tool_result` blocks: {block.get('tool_use_id')}. Each `tool_result` block "
                    "must have a corresponding `tool_use` block in the previous message."
                )
        pending = [b["id"] for b in blocks if b["type"] == "tool_use"]
    if pending:
        raise invalid(
            f"messages: `tool_use` ids were found without `tool_result` blocks immediately "
            f"after: {', '.join(pending)}."
        )


def _blocks(content: Any, index: int) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise invalid(f"messages.{index}.content: Input should be a valid list")
    return content


def _check_block(block: dict[str, Any], role: str, where: str) -> None:
    kind = block.get("type")
    if kind not in _BLOCKS[role]:
        raise invalid(f"{where}.type: blocks of type {kind!r} are not allowed in {role} turns")
    if kind == "text" and (not isinstance(block.get("text"), str) or not block["text"]):
        raise invalid(f"{where}: text content blocks must be non-empty")
    if kind == "image":
        _check_image(block.get("source"), where)
    if kind == "tool_use" and not (
        isinstance(block.get("id"), str)
        and isinstance(block.get("name"), str)
        and isinstance(block.get("input"), dict)
    ):
        raise invalid(f"{where}: a tool_use block needs an id, a name and an input object")


def _check_image(source: Any, where: str) -> None:
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        if source.get("media_type") not in MEDIA_TYPES:
            raise invalid(
                f"{where}.source.media_type: Input should be " + ", ".join(map(repr, MEDIA_TYPES))
            )
        if not isinstance(source.get("data"), str) or not source["data"]:
            raise invalid(f"{where}.source.data: Field required")
    elif kind == "url":
        if not isinstance(source.get("url"), str):
            raise invalid(f"{where}.source.url: Field required")
    else:
        raise invalid(f"{where}.source.type: Input should be 'base64', 'url' or 'file'")


def _check_tools(tools: Any, choice: Any) -> None:
    if tools is not None:
        if not isinstance(tools, list):
            raise invalid("tools: Input should be a valid list")
        for index, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise invalid(f"tools.{index}.name: Field required")
            schema = tool.get("input_schema")
            if not isinstance(schema, dict) or schema.get("type") != "object":
                raise invalid(f"tools.{index}.input_schema: an object schema is required")
    if choice is None:
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind not in _TOOL_CHOICES:
        raise invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if kind == "tool" and not isinstance(choice.get("name"), str):
        raise invalid("tool_choice.name: Field required")
