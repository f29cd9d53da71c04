"""How config data becomes typed structs: the decode hook for secrets, and error paths.

msgspec checks every field while it builds a struct and reports a bad value with its path;
these two helpers make that turnout's way: strings become `Secret` where a struct says so, and
msgspec's ``problem - at `$.a[1].b``` becomes a `ConfigError` ``a[1].b: problem``.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec

from turnout.errors import ConfigError
from turnout.secrets import Secret

T = TypeVar("T")


def decode_secret(kind: type, value: Any) -> Any:
    """msgspec decode hook for `Secret` fields: a string, or a `Secret` built in code."""
    if kind is Secret:
        if isinstance(value, str):
            return Secret(value)
        if isinstance(value, Secret):
            return value
    # A TypeError becomes msgspec's ValidationError, which carries the path of the value.
    raise TypeError(f"Expected `str`, got `{type(value).__name__}`")


def split_validation_error(error: msgspec.ValidationError) -> tuple[str, str]:
    """msgspec says 'problem - at `$.a[1].b`'; turnout reports ('problem', 'a[1].b')."""
    problem, sep, where = str(error).rpartition(" - at `")
    path = where.rstrip("`").removeprefix("$").removeprefix(".") if sep else ""
    if not sep:
        problem = str(error)
    cause = error.__cause__
    if isinstance(cause, ConfigError) and cause.path:
        # A struct's own check named the field: report the field's full path.
        problem = str(cause).removeprefix(f"{cause.path}: ")
        path = f"{path}.{cause.path}" if path else cause.path
    return problem, path


def convert(data: Any, kind: type[T], *, at: str = "") -> T:
    """`data` as a `kind`, strings read leniently (``rpm: "10"`` from an environment
    reference is 10) and secrets as `Secret`; a bad value is a `ConfigError` whose path is
    `at` followed by the value's path inside `data`."""
    try:
        return msgspec.convert(data, kind, dec_hook=decode_secret, strict=False)
    except msgspec.ValidationError as exc:
        problem, path = split_validation_error(exc)
        where = ".".join(part for part in (at, path) if part).replace(".[", "[")
        raise ConfigError(problem, path=where or None) from None
