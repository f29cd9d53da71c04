"""JSON Schema (as OpenAI tools and ``response_format`` carry it) into Gemini's ``Schema``.

Gemini's function ``parameters`` and ``responseSchema`` take a select subset of an OpenAPI 3.0
schema object, parsed as a protobuf message: a keyword outside the subset fails the whole request
("Invalid JSON payload received. Unknown name "additionalProperties" ... Cannot find field"),
whatever its value. So the schema is rebuilt from the keywords Gemini knows, and the common JSON
Schema idioms it lacks are translated where a faithful equivalent exists:

- ``$ref`` into ``$defs``/``definitions`` is inlined (Gemini has no references);
- ``type: [T, "null"]`` becomes ``type: T`` with ``nullable: true``; ``oneOf`` becomes ``anyOf``;
- ``const`` becomes a one-value ``enum``; enum values become strings (Gemini's enum is a string
  list); a single-schema ``allOf`` is merged into its parent;
- string ``format`` values other than ``enum`` and ``date-time`` are dropped: the Gemini API
  rejects them ("only 'enum' and 'date-time' are supported for STRING type").

Everything else Gemini cannot express (``additionalProperties``, ``$schema``, ``exclusiveMinimum``,
``propertyNames``, ``patternProperties``, ...) is dropped: it constrains what a model should
produce, and no Gemini field can carry it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.errors import InvalidRequestError
from turnout.providers.schema_parts import merge_all_of

#: The fields of Gemini's ``Schema`` object (ai.google.dev/api/caching#Schema).
_KEPT = frozenset(
    {
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
)
#: Formats Gemini accepts, by type; others are dropped.
_FORMATS = {
    "string": frozenset({"enum", "date-time"}),
    "number": frozenset({"float", "double"}),
    "integer": frozenset({"int32", "int64"}),
}
#: How deep ``$ref`` inlining may go: a recursive schema cannot be inlined.
_MAX_DEPTH = 32


def gemini_schema(schema: Any, param: str) -> dict[str, Any]:
    """The Gemini ``Schema`` for a JSON Schema; `param` names the request field in errors."""
    if not isinstance(schema, Mapping):
        raise InvalidRequestError(f"gemini: `{param}` must be a JSON schema object", param=param)
    definitions: dict[str, Any] = {}
    for key in ("definitions", "$defs"):
        found = schema.get(key)
        if isinstance(found, Mapping):
            definitions.update(found)
    return _Converter(definitions, param).convert(schema, 0)


class _Converter:
    __slots__ = ("_definitions", "_param")

    def __init__(self, definitions: dict[str, Any], param: str) -> None:
        self._definitions = definitions
        self._param = param

    def convert(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        if depth > _MAX_DEPTH:
            raise InvalidRequestError(
                f"gemini: `{self._param}` is nested too deeply or refers to itself; "
                "Gemini schemas cannot express recursion",
                param=self._param,
            )
        reference = schema.get("$ref")
        if isinstance(reference, str):
            return self.convert({**self._resolve(reference), **_without(schema, "$ref")}, depth + 1)
        merged = _merge_all_of(schema)
        out: dict[str, Any] = {}
        for key, value in merged.items():
            if key == "type":
                out.update(_type(value))
            elif key in ("anyOf", "oneOf") and isinstance(value, list):
                out["anyOf"] = [self.convert(v, depth + 1) for v in value if isinstance(v, Mapping)]
            elif key == "properties" and isinstance(value, Mapping):
                out["properties"] = {
                    str(name): self.convert(sub, depth + 1)
                    for name, sub in value.items()
                    if isinstance(sub, Mapping)
                }
            elif key == "items" and isinstance(value, Mapping):
                out["items"] = self.convert(value, depth + 1)
            elif key == "const":
                out["enum"] = [_enum_value(value)]
            elif key == "enum" and isinstance(value, list):
                if None in value:
                    out["nullable"] = True
                out["enum"] = [_enum_value(v) for v in value if v is not None]
            elif key in _KEPT and key not in ("format", "anyOf"):
                out[key] = value
        format_ = merged.get("format")
        kind = out.get("type")
        known = _FORMATS.get(kind.lower(), frozenset()) if isinstance(kind, str) else frozenset()
        if isinstance(format_, str) and format_ in known:
            out["format"] = format_
        return out

    def _resolve(self, reference: str) -> Mapping[str, Any]:
        for prefix in ("#/$defs/", "#/definitions/"):
            if reference.startswith(prefix):
                target = self._definitions.get(reference.removeprefix(prefix))
                if isinstance(target, Mapping):
                    return target
        raise InvalidRequestError(
            f"gemini: `{self._param}` has a $ref that cannot be resolved: {reference!r}",
            param=self._param,
        )


def _type(value: Any) -> dict[str, Any]:
    """``type``, with JSON Schema's type lists made into Gemini's ``nullable`` / ``anyOf``."""
    if not isinstance(value, list):
        return {"type": value}
    kinds = [kind for kind in value if kind != "null"]
    out: dict[str, Any] = {"nullable": True} if len(kinds) < len(value) else {}
    if len(kinds) == 1:
        out["type"] = kinds[0]
    elif kinds:
        out["anyOf"] = [{"type": kind} for kind in kinds]
    return out


def _merge_all_of(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """A schema whose ``allOf`` members are folded in (properties and required united)."""
    return merge_all_of(schema)


def _without(schema: Mapping[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in schema.items() if k != key}


def _enum_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
