"""The checks Gemini makes of a request before answering it, as strict as the real parser.

Gemini parses request bodies as protobuf messages: a field it does not know fails the whole
request with 400 INVALID_ARGUMENT ('Invalid JSON payload received. Unknown name "x" at 'y':
Cannot find field.'), which is exactly the mistake an adapter makes when it forwards OpenAI's
fields or JSON Schema keywords Gemini lacks. Field names are accepted in lowerCamelCase and in
the proto's snake_case, as Google's JSON parser accepts both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fakes.fake_gemini.faults import error_body

_REQUEST = {
    "contents",
    "tools",
    "toolConfig",
    "safetySettings",
    "systemInstruction",
    "generationConfig",
    "cachedContent",
}
_GENERATION_CONFIG = {
    "stopSequences",
    "responseMimeType",
    "responseSchema",
    "responseJsonSchema",
    "responseModalities",
    "candidateCount",
    "maxOutputTokens",
    "temperature",
    "topP",
    "topK",
    "seed",
    "presencePenalty",
    "frequencyPenalty",
    "responseLogprobs",
    "logprobs",
    "enableEnhancedCivicAnswers",
    "speechConfig",
    "thinkingConfig",
    "imageConfig",
    "mediaResolution",
}
_CONTENT = {"role", "parts"}
_PART = {
    "text",
    "inlineData",
    "fileData",
    "functionCall",
    "functionResponse",
    "thought",
    "thoughtSignature",
    "executableCode",
    "codeExecutionResult",
    "videoMetadata",
    "partMetadata",
}
_TOOL = {"functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution"}
_DECLARATION = {
    "name",
    "description",
    "parameters",
    "parametersJsonSchema",
    "response",
    "responseJsonSchema",
    "behavior",
}
_SCHEMA = {
    "type",
    "format",
    "title",
    "description",
    "nullable",
    "enum",
    "maxItems",
    "minItems",
    "properties",
    "required",
    "minProperties",
    "maxProperties",
    "minLength",
    "maxLength",
    "pattern",
    "example",
    "anyOf",
    "propertyOrdering",
    "default",
    "items",
    "minimum",
    "maximum",
}
_ROLES = ("user", "model")


class ApiError(Exception):
    """An error answer decided while handling a request, in Google's error format."""

    def __init__(
        self,
        status: int,
        message: str,
        error_status: str = "INVALID_ARGUMENT",
        details: tuple[dict[str, Any], ...] = (),
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(status, message, error_status, details)


def check_generate(body: Any) -> dict[str, Any]:
    """A ``GenerateContentRequest`` as Gemini would accept it, or the `ApiError` it answers."""
    if not isinstance(body, dict):
        raise ApiError(400, "Invalid JSON payload received. Expected an object.")
    _known(body, _REQUEST, "")
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        raise ApiError(400, "* GenerateContentRequest.contents: contents is not specified\n")
    for index, content in enumerate(contents):
        _content(content, f"contents[{index}]", role_required=True)
    system = body.get("systemInstruction", body.get("system_instruction"))
    if system is not None:
        _content(system, "system_instruction", role_required=False)
    config = body.get("generationConfig", body.get("generation_config"))
    if config is not None:
        _known(config, _GENERATION_CONFIG, "generation_config")
        schema = config.get("responseSchema", config.get("response_schema"))
        if schema is not None:
            _schema(schema, "generation_config.response_schema")
    for index, tool in enumerate(body.get("tools") or ()):
        where = f"tools[{index}]"
        _known(tool, _TOOL, where)
        declarations = tool.get("functionDeclarations", tool.get("function_declarations"))
        for number, declaration in enumerate(declarations or ()):
            here = f"{where}.function_declarations[{number}]"
            _known(declaration, _DECLARATION, here)
            if declaration.get("parameters") is not None:
                _schema(declaration["parameters"], f"{here}.parameters")
    return body


def _content(content: Any, where: str, *, role_required: bool) -> None:
    _known(content, _CONTENT, where)
    role = content.get("role")
    if role_required and role not in _ROLES and role is not None:
        raise ApiError(400, f"Please use a valid role: {', '.join(_ROLES)}.")
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        message = f"* GenerateContentRequest.{where}.parts: contents.parts must not be empty.\n"
        raise ApiError(400, message)
    for index, part in enumerate(parts):
        _known(part, _PART, f"{where}.parts[{index}]")


def _schema(schema: Any, where: str) -> None:
    _known(schema, _SCHEMA, where)
    for name, sub in (schema.get("properties") or {}).items():
        _schema(sub, f"{where}.properties[{name}].value")
    if isinstance(schema.get("items"), dict):
        _schema(schema["items"], f"{where}.items")
    for index, sub in enumerate(schema.get("anyOf", schema.get("any_of")) or ()):
        _schema(sub, f"{where}.any_of[{index}]")
    kind = str(schema.get("type", "")).lower()
    if kind == "string" and schema.get("format") not in (None, "enum", "date-time"):
        message = f"* {where}.format: only 'enum' and 'date-time' are supported for STRING type\n"
        raise ApiError(400, message)
    if kind == "object" and schema.get("properties") == {}:
        raise ApiError(400, f"* {where}.properties: should be non-empty for OBJECT type\n")


def _known(value: Any, fields: Iterable[str], where: str) -> None:
    """Reject a non-object, or an object with a field outside `fields` (camel or snake)."""
    if not isinstance(value, dict):
        raise ApiError(400, f"Invalid JSON payload received. Expected an object at '{where}'.")
    allowed = set(fields)
    for name in value:
        if name not in allowed and _camel(name) not in allowed:
            at = f" at '{where}'" if where else ""
            raise ApiError(
                400, f'Invalid JSON payload received. Unknown name "{name}"{at}: Cannot find field.'
            )


def _camel(name: str) -> str:
    return re.sub(r"_([a-z])", lambda match: match.group(1).upper(), name)
