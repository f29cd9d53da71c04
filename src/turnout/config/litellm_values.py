"""Reading the values of a LiteLLM config: each check names the value's path in the file.

A value may be the `ConfigError` an unresolved environment reference left in its place
(`turnout.config.environment`): reading it raises that error, where the value is needed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from turnout.errors import ConfigError


def mapping(value: Any, path: str) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if isinstance(value, ConfigError):
        raise value
    if not isinstance(value, Mapping):
        raise ConfigError(f"expected a mapping, got {kind(value)}", path=path)
    return value


def sequence(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, ConfigError):
        raise value
    if not isinstance(value, list | tuple):
        raise ConfigError(f"expected a list, got {kind(value)}", path=path)
    return list(value)


def text(value: Any, path: str) -> str:
    if isinstance(value, ConfigError):
        raise value
    if not isinstance(value, str) or not value:
        raise ConfigError(f"expected a non-empty string, got {kind(value)}", path=path)
    return value


def kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "an empty string" if not value else "a string"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, Mapping):
        return "a mapping"
    return type(value).__name__
