"""JSON Schema's ``allOf`` folded into one schema, for the providers that read schemas whole
(Gemini's schema subset has no ``allOf``; the simulated provider builds values from them)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


def merge_all_of(
    schema: Mapping[str, Any],
    part_of: Callable[[Mapping[str, Any]], Mapping[str, Any]] = lambda part: part,
) -> Mapping[str, Any]:
    """`schema` with its ``allOf`` members folded in: properties united, requirements added
    up, any other keyword kept from the schema first, then from the first member that has it.
    `part_of` prepares each member first (resolving its ``$ref``, say)."""
    parts = schema.get("allOf")
    if not isinstance(parts, list):
        return schema
    merged: dict[str, Any] = {key: value for key, value in schema.items() if key != "allOf"}
    for part in parts:
        if not isinstance(part, Mapping):
            continue
        for key, value in part_of(part).items():
            if key == "properties" and isinstance(value, Mapping):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged
