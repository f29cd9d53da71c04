"""The JSON the demo builds from a caller's schema validates against it, whatever the schema
uses, and what strict mode refuses is refused in OpenAI's words."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest

from turnout.providers.simulated_schema import SchemaValues, strict_problem

TREE: Any = {
    "$defs": {
        "node": {
            "type": "object",
            "properties": {
                "label": {"type": "string"},
                "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                "parent": {"anyOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]},
            },
            "required": ["label", "children", "parent"],
        }
    },
    "$ref": "#/$defs/node",
}

SCHEMAS: list[Any] = [
    {"type": "object", "properties": {}},
    {"type": "string", "enum": ["a", "b", "c"]},
    {"const": {"fixed": [1, 2]}},
    {"type": "integer", "minimum": -50, "exclusiveMaximum": -40, "multipleOf": 3},
    {"type": "number", "exclusiveMinimum": 0.5, "maximum": 0.75},
    {"type": "number", "multipleOf": 0.25, "minimum": 1},
    {"type": "string", "minLength": 30, "maxLength": 32},
    {"type": "string", "format": "email"},
    {"type": "string", "format": "uuid"},
    {"type": "string", "format": "date"},
    {"type": "array", "items": {"type": "boolean"}, "minItems": 4, "maxItems": 4},
    {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
    {"type": "array", "items": {"enum": [1, 2, 3, 4, 5, 6]}, "minItems": 2, "uniqueItems": True},
    {"type": ["null", "integer"]},
    {"oneOf": [{"type": "string", "maxLength": 2}, {"type": "integer", "minimum": 1000}]},
    {"allOf": [{"properties": {"a": {"type": "integer"}}, "required": ["a"]}, {"required": ["b"]}]},
    {"type": "object", "additionalProperties": {"type": "integer", "maximum": 3}},
    TREE,
]


@pytest.mark.parametrize("schema", SCHEMAS)
def test_built_values_validate_and_differ_by_seed(schema: Any) -> None:
    values = [SchemaValues(schema, f"prompt {n}").build() for n in range(12)]
    for value in values:
        jsonschema.validate(value, schema, format_checker=jsonschema.FormatChecker())
    assert values[0] == SchemaValues(schema, "prompt 0").build()


def test_values_vary_with_the_prompt() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}, "s": {"type": "string"}}}
    assert len({str(SchemaValues(schema, f"p{n}").build()) for n in range(10)}) > 5


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "object", "properties": {}, "additionalProperties": False}, None),
        (
            {"type": "object", "properties": {"a": {"type": "string"}}, "required": ["a"]},
            "In context=(), 'additionalProperties' is required to be supplied and to be false.",
        ),
        (
            {
                "type": "object",
                "properties": {
                    "a": {
                        "type": "object",
                        "properties": {"b": {"type": "string"}},
                        "additionalProperties": False,
                    }
                },
                "required": ["a"],
                "additionalProperties": False,
            },
            "In context=('properties', 'a'), 'required' is required to be supplied and to be an "
            "array including every key in properties. Missing 'b'.",
        ),
    ],
)
def test_strict_mode_problems_are_named_as_openai_names_them(
    schema: Any, problem: str | None
) -> None:
    assert strict_problem(schema) == problem
