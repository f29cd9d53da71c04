"""JSON values built from a JSON schema, so that a simulated structured answer validates.

The simulated provider answers ``response_format: json_schema`` and tool calls with arguments
generated here from the schema the caller sent: types, ``required``, ``enum``/``const``,
arrays with their item counts, nested objects, local ``$ref``s (``#/$defs/...``), ``anyOf``,
``oneOf`` and ``allOf``, number ranges and ``multipleOf``, string lengths and the common
formats. Every choice is drawn from a hash of a seed string and the value's path, so the same
prompt gets the same value on every run and different prompts get different ones.

A ``pattern`` cannot be honoured in general and is ignored. Recursive schemas end because,
past `MAX_DEPTH`, an object keeps only its required properties, an array its fewest items,
and an ``anyOf`` prefers its ``null`` branch.

`strict_problem` says what OpenAI's strict mode would refuse in a schema (every object closed
with ``additionalProperties: false`` and requiring all its properties), in OpenAI's words.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Mapping
from typing import Any

from turnout.providers.schema_parts import merge_all_of

#: Nesting depth past which only what the schema requires is generated.
MAX_DEPTH = 6
#: Draws at an item that differs from the ones before it, for ``uniqueItems``.
_UNIQUE_TRIES = 16
#: Nesting depth past which nothing more is generated at all (a schema that requires itself).
_GIVE_UP_DEPTH = 2 * MAX_DEPTH

_WORDS = ("lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit")
_FORMATS = {
    "date": lambda d: f"2025-{1 + d % 12:02d}-{1 + d % 28:02d}",
    "date-time": lambda d: f"2025-{1 + d % 12:02d}-{1 + d % 28:02d}T{d % 24:02d}:{d % 60:02d}:00Z",
    "time": lambda d: f"{d % 24:02d}:{d % 60:02d}:00",
    "email": lambda d: f"{_WORDS[d % len(_WORDS)]}@example.com",
    "uri": lambda d: f"https://example.com/{_WORDS[d % len(_WORDS)]}",
    "hostname": lambda d: f"{_WORDS[d % len(_WORDS)]}.example.com",
    "ipv4": lambda d: f"192.0.2.{d % 256}",
    "ipv6": lambda d: f"2001:db8::{d % 65536:x}",
    "uuid": lambda d: _uuid(d),
}


def _uuid(draw: int) -> str:
    text = f"{draw:032x}"[-32:]
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-8{text[17:20]}-{text[20:32]}"


class SchemaValues:
    """Builds one value for a schema; `build` is deterministic in the schema and the seed."""

    def __init__(self, schema: Mapping[str, Any], seed: str) -> None:
        self._root = schema
        self._seed = seed

    def build(self) -> Any:
        return self._value(self._root, "$", 0)

    def _draw(self, path: str, salt: str = "") -> int:
        digest = hashlib.blake2b(f"{self._seed}|{path}|{salt}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big")

    def _value(self, schema: Any, path: str, depth: int) -> Any:
        if schema is False or depth > _GIVE_UP_DEPTH:
            return None
        if not isinstance(schema, Mapping):
            return self._string({}, path)
        schema = self._merged(self._resolved(schema))
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[self._draw(path, "enum") % len(enum)]
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                return self._value(self._option(options, path, depth), path, depth)
        match _type_of(schema):
            case "object":
                return self._object(schema, path, depth)
            case "array":
                return self._array(schema, path, depth)
            case "integer":
                return self._integer(schema, path)
            case "number":
                return self._number(schema, path)
            case "boolean":
                return self._draw(path, "bool") % 2 == 0
            case "null":
                return None
            case _:
                return self._string(schema, path)

    def _resolved(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """The schema a local ``$ref`` points at, its own keywords laid over it."""
        for _ in range(32):
            ref = schema.get("$ref")
            if not isinstance(ref, str) or not ref.startswith("#"):
                return schema
            target: Any = self._root
            for part in ref[1:].split("/")[1:]:
                part = part.replace("~1", "/").replace("~0", "~")
                target = target.get(part) if isinstance(target, Mapping) else None
            if not isinstance(target, Mapping):
                return {key: value for key, value in schema.items() if key != "$ref"}
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def _merged(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        """``allOf`` folded into one schema: properties united, requirements added up."""
        return merge_all_of(schema, lambda part: self._merged(self._resolved(part)))

    def _option(self, options: list[Any], path: str, depth: int) -> Any:
        """The branch of an ``anyOf``/``oneOf`` to follow: deep down, the null one if any."""
        nulls = [option for option in options if _is_null(option)]
        if depth >= MAX_DEPTH and nulls:
            return nulls[0]
        others = [option for option in options if not _is_null(option)] or options
        return others[self._draw(path, "option") % len(others)]

    def _object(self, schema: Mapping[str, Any], path: str, depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = schema.get("required")
        wanted = set(required) if isinstance(required, list) else set()
        value: dict[str, Any] = {}
        for name, sub in properties.items():
            if depth < MAX_DEPTH or name in wanted:
                value[name] = self._value(sub, f"{path}.{name}", depth + 1)
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, Mapping) and depth < MAX_DEPTH:
            key = _WORDS[self._draw(path, "key") % len(_WORDS)]
            value[key] = self._value(extra, f"{path}.{key}", depth + 1)
        for name in sorted(wanted - value.keys()):
            # Required but not described: any value will do.
            value[name] = self._string({}, f"{path}.{name}")
        return value

    def _array(self, schema: Mapping[str, Any], path: str, depth: int) -> list[Any]:
        prefix = schema.get("prefixItems")
        prefix = prefix if isinstance(prefix, list) else []
        items = schema.get("items")
        fewest = _int(schema.get("minItems"), 0)
        most = _int(schema.get("maxItems"), max(fewest, 3))
        if items is False:
            most = min(most, len(prefix))
        count = fewest if depth >= MAX_DEPTH else min(most, max(fewest, 1 + self._draw(path) % 3))
        if depth < MAX_DEPTH:
            count = max(count, min(len(prefix), most))
        unique = schema.get("uniqueItems") is True
        values: list[Any] = []
        for index in range(count):
            sub = prefix[index] if index < len(prefix) else items
            for attempt in range(_UNIQUE_TRIES if unique else 1):
                value = self._value(sub, f"{path}[{index}]~{attempt}", depth + 1)
                if value not in values:
                    break
            if unique and value in values:
                break  # every draw repeats an earlier item: as many as can differ
            values.append(value)
        return values

    def _integer(self, schema: Mapping[str, Any], path: str) -> int:
        bottom, top = _bounds(schema, nudge=1)
        low, high = math.ceil(bottom), math.floor(top)
        step = schema.get("multipleOf")
        if isinstance(step, int) and not isinstance(step, bool) and step > 0:
            first, last = -(-low // step), high // step
            if first <= last:
                return step * (first + self._draw(path) % (last - first + 1))
        return low + self._draw(path) % (high - low + 1) if high >= low else low

    def _number(self, schema: Mapping[str, Any], path: str) -> float:
        low, high = _bounds(schema, nudge=0.01)
        step = schema.get("multipleOf")
        if isinstance(step, (int, float)) and not isinstance(step, bool) and step > 0:
            first, last = math.ceil(low / step), math.floor(high / step)
            if first <= last:
                return float((first + self._draw(path) % (last - first + 1)) * step)
        value = round(low + (self._draw(path) % 10_001) / 10_000 * (high - low), 2)
        return min(max(value, low), high)

    def _string(self, schema: Mapping[str, Any], path: str) -> str:
        draw = self._draw(path, "string")
        shaped = _FORMATS.get(str(schema.get("format")))
        if shaped is not None:
            return shaped(draw)
        words = [_WORDS[(draw >> (3 * i)) % len(_WORDS)] for i in range(1 + draw % 3)]
        text = " ".join(words)
        shortest = _int(schema.get("minLength"), 0)
        longest = _int(schema.get("maxLength"), max(shortest, len(text)))
        while len(text) < shortest:
            text += " " + _WORDS[len(text) % len(_WORDS)]
        return text[:longest]


def _type_of(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if k != "null"] or kind
        kind = kinds[0] if kinds else None
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return "string"


def _is_null(schema: Any) -> bool:
    return isinstance(schema, Mapping) and schema.get("type") == "null"


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _bounds(schema: Mapping[str, Any], *, nudge: float) -> tuple[float, float]:
    """The inclusive range a number may take (an open bound moved inside by `nudge`); with
    one bound missing, a hundred from the other."""

    def read(key: str) -> float | None:
        value = schema.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        return None

    low, high = read("minimum"), read("maximum")
    open_low, open_high = read("exclusiveMinimum"), read("exclusiveMaximum")
    if open_low is not None:
        low = max(low, open_low + nudge) if low is not None else open_low + nudge
    if open_high is not None:
        high = min(high, open_high - nudge) if high is not None else open_high - nudge
    if low is None:
        low = high - 100 if high is not None and high < 0 else 0.0
    if high is None:
        high = low + 100
    return low, high


def strict_problem(schema: Any) -> str | None:
    """What OpenAI's strict mode refuses in `schema` (None: nothing), naming the context."""
    for context, node in _nodes(schema, ()):
        if node.get("type") != "object" and "properties" not in node:
            continue
        if node.get("additionalProperties") is not False:
            return (
                f"In context={context}, 'additionalProperties' is required to be supplied "
                "and to be false."
            )
        properties = node.get("properties")
        required = node.get("required")
        listed = required if isinstance(required, list) else []
        for name in properties if isinstance(properties, Mapping) else ():
            if name not in listed:
                return (
                    f"In context={context}, 'required' is required to be supplied and to be "
                    f"an array including every key in properties. Missing '{name}'."
                )
    return None


def _nodes(schema: Any, context: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every sub-schema with the path to it, as OpenAI's strict-mode errors name it."""
    if not isinstance(schema, Mapping):
        return
    yield context, schema
    properties = schema.get("properties")
    if isinstance(properties, Mapping):
        for name, sub in properties.items():
            yield from _nodes(sub, (*context, "properties", name))
    for key in ("items", "additionalProperties", "not"):
        yield from _nodes(schema.get(key), (*context, key))
    for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
        options = schema.get(key)
        for index, sub in enumerate(options if isinstance(options, list) else ()):
            yield from _nodes(sub, (*context, key, str(index)))
    for key in ("$defs", "definitions"):
        defs = schema.get(key)
        for name, sub in defs.items() if isinstance(defs, Mapping) else ():
            yield from _nodes(sub, (*context, key, name))
