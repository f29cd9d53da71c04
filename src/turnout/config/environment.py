"""Values from the environment in a config file: ``os.environ/NAME`` and ``${NAME:-default}``.

Resolved before validation, so ``rpm: ${RPM}`` becomes a number; a variable that is not set is an
error naming the path and the variable, never a value.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from turnout.errors import ConfigError

_OS_ENVIRON = "os.environ/"
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def resolve_environment(
    data: Any, environ: Mapping[str, str], *, path: str = "", declared: set[Any] | None = None
) -> Any:
    """`data` with every environment reference in its string values replaced.

    A reference that cannot be resolved becomes the `ConfigError` that reports it, in place of
    the value: `raise_unresolved` raises it where the value is used, so a key that is dropped
    never fails. `declared`: names a LiteLLM ``environment_variables`` section sets (turnout
    does not read it; the error says so).
    """
    if isinstance(data, str):
        return _resolve_text(data, environ, path, declared or set())
    if isinstance(data, Mapping):
        return {
            key: resolve_environment(value, environ, path=join_path(path, key), declared=declared)
            for key, value in data.items()
        }
    if isinstance(data, list | tuple):
        return [
            resolve_environment(value, environ, path=f"{path}[{index}]", declared=declared)
            for index, value in enumerate(data)
        ]
    return data


def raise_unresolved(data: Any) -> None:
    """Raise the first unresolved reference `resolve_environment` left in `data`."""
    if isinstance(data, ConfigError):
        raise data
    if isinstance(data, Mapping):
        for value in data.values():
            raise_unresolved(value)
    elif isinstance(data, list | tuple):
        for value in data:
            raise_unresolved(value)


def unresolved_in(data: Any) -> Iterator[ConfigError]:
    """Every unresolved reference `resolve_environment` left in `data`, in order."""
    if isinstance(data, ConfigError):
        yield data
    elif isinstance(data, Mapping):
        for value in data.values():
            yield from unresolved_in(value)
    elif isinstance(data, list | tuple):
        for value in data:
            yield from unresolved_in(value)


def drop_unresolved(data: Any) -> None:
    """Leave out of `data` (dicts and lists, in place) every value that is an unresolved
    reference: for a check that reports them apart, and validates the rest."""
    if isinstance(data, dict):
        for key in [key for key, value in data.items() if isinstance(value, ConfigError)]:
            del data[key]
        for value in data.values():
            drop_unresolved(value)
    elif isinstance(data, list):
        data[:] = [value for value in data if not isinstance(value, ConfigError)]
        for value in data:
            drop_unresolved(value)


def _resolve_text(
    text: str, environ: Mapping[str, str], path: str, declared: set[Any]
) -> str | ConfigError:
    if text.startswith(_OS_ENVIRON):
        name = text.removeprefix(_OS_ENVIRON)
        if name in environ:
            return environ[name]
        return _unset(name, path, declared)
    if "${" not in text:
        return text
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if default is not None and not value:
            return default
        if value is None:
            missing.append(name)
            return ""
        return value

    result = _REFERENCE.sub(substitute, text)
    if missing:
        return _unset(missing[0], path, declared)
    if "${" in _REFERENCE.sub("", text):
        return ConfigError(
            "malformed environment reference: write ${NAME} or ${NAME:-default}", path=path
        )
    return result


def _unset(name: str, path: str, declared: set[Any]) -> ConfigError:
    note = ""
    if name in declared:
        note = (
            " (the config's environment_variables section names it, but turnout does not set"
            " variables from the config: set it in the environment)"
        )
    return ConfigError(f"environment variable {name} is not set{note}", path=path or None)


def join_path(path: str, key: Any) -> str:
    if path and key != "":
        return f"{path}.{key}"
    return path or str(key)


def describe_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
