"""JSON Schema into Gemini's ``Schema``: only the keywords Gemini's parser knows come out, and
the JSON Schema idioms it lacks are translated where a faithful equivalent exists."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.errors import InvalidRequestError
from turnout.providers.gemini.schema import gemini_schema


def test_unknown_keywords_are_dropped_at_every_depth() -> None:
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "tags": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {"k": {"type": "string"}},
                    "additionalProperties": False,
                },
                "uniqueItems": True,
            },
            "size": {"type": "integer", "exclusiveMinimum": 0, "minimum": 1, "maximum": 9},
        },
        "required": ["tags"],
        "propertyNames": {"pattern": "^[a-z]+$"},
    }
    assert gemini_schema(schema, "tools") == {
        "type": "object",
        "properties": {
            "tags": {
                "type": "array",
                "items": {"type": "object", "properties": {"k": {"type": "string"}}},
            },
            "size": {"type": "integer", "minimum": 1, "maximum": 9},
        },
        "required": ["tags"],
    }


def test_references_are_inlined() -> None:
    schema = {
        "type": "object",
        "properties": {"home": {"$ref": "#/$defs/Place"}, "work": {"$ref": "#/definitions/Place"}},
        "$defs": {"Place": {"type": "object", "properties": {"city": {"type": "string"}}}},
        "definitions": {"Place": {"type": "object", "properties": {"city": {"type": "string"}}}},
    }
    place = {"type": "object", "properties": {"city": {"type": "string"}}}
    assert gemini_schema(schema, "tools")["properties"] == {"home": place, "work": place}


def test_recursive_and_dangling_references_are_a_400() -> None:
    recursive = {
        "$ref": "#/$defs/Node",
        "$defs": {"Node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Node"}}}},
    }
    with pytest.raises(InvalidRequestError, match="recursion") as caught:
        gemini_schema(recursive, "tools")
    assert caught.value.param == "tools"
    with pytest.raises(InvalidRequestError, match="cannot be resolved"):
        gemini_schema({"$ref": "#/$defs/Missing"}, "response_format")


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": ["string", "null"]}, {"type": "string", "nullable": True}),
        ({"type": ["string", "integer"]}, {"anyOf": [{"type": "string"}, {"type": "integer"}]}),
        (
            {"oneOf": [{"type": "string"}, {"type": "number"}]},
            {"anyOf": [{"type": "string"}, {"type": "number"}]},
        ),
        ({"type": "string", "const": "yes"}, {"type": "string", "enum": ["yes"]}),
        (
            {"type": "integer", "enum": [1, 2, None]},
            {"type": "integer", "enum": ["1", "2"], "nullable": True},
        ),
        ({"type": "string", "format": "uri"}, {"type": "string"}),
        ({"type": "string", "format": "date-time"}, {"type": "string", "format": "date-time"}),
        ({"type": "number", "format": "double"}, {"type": "number", "format": "double"}),
        ({"type": "integer", "format": "uint8"}, {"type": "integer"}),
    ],
)
def test_json_schema_idioms_are_translated(
    schema: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert gemini_schema(schema, "tools") == expected


def test_all_of_is_merged() -> None:
    schema = {
        "allOf": [
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            {"properties": {"b": {"type": "integer"}}, "required": ["b"]},
        ],
        "description": "both",
    }
    assert gemini_schema(schema, "tools") == {
        "description": "both",
        "type": "object",
        "properties": {"a": {"type": "string"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    }


def test_a_schema_must_be_an_object() -> None:
    with pytest.raises(InvalidRequestError, match="JSON schema object"):
        gemini_schema(["not", "a", "schema"], "tools")
