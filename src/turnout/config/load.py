"""turnout's config file: one YAML file for the server and the router, or a LiteLLM config.yaml.

turnout's own format has a ``server`` section and, beside it, the fields of `RouterConfig`
(``model_list``, ``aliases``, ``routing``, ``retries``, ``fallbacks``, ``health``, ``breaker``,
``timeout``); ``examples/turnout.yaml`` explains every one. A file with LiteLLM's shape (any
``model_list[i].litellm_params``, or a ``router_settings``, ``litellm_settings``,
``general_settings``, ``environment_variables`` or ``credential_list`` section) is converted by
`turnout.config.litellm`, and every key turnout ignores is listed in `GatewayConfig.warnings`.

Values from the environment: a string that is exactly ``os.environ/NAME`` (LiteLLM's form) is
the variable's value, and every ``${NAME}`` or ``${NAME:-default}`` inside a string is replaced
by it (the default applies when the variable is unset or empty). This happens before validation,
so ``rpm: ${RPM}`` becomes a number. A variable that is not set is an error naming the path and
the variable, never a value. In a LiteLLM config it is an error only where turnout uses the
value: keys turnout ignores never fail for a variable turnout does not need.

The file is read by `turnout.config.yaml_reader`, within limits on size, nesting and alias expansion
that refuse YAML alias bombs before anything walks the parsed data.

A LiteLLM file is checked whole (`turnout.config.litellm_load`): every error it has is reported
at once, in one `ConfigError`, and a deployment turnout cannot serve is left out and listed in
`GatewayConfig.skipped` instead. `check_config_file` is ``turnout check-config``'s reading,
which can take unset environment variables as notes.

Every error is a `ConfigError` that names the exact path of the problem, in the file's terms:
``model_list[2].weight: Expected `float`, got `str```, ``server.port: Expected `int` <= 65535``,
``model_list[0].litellm_params.rpm: ...`` for a LiteLLM file.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable, Collection, Mapping
from typing import Any, TypeVar

import msgspec

from turnout.config.decoding import decode_secret, split_validation_error
from turnout.config.environment import (
    describe_kind,
    drop_unresolved,
    join_path,
    raise_unresolved,
    resolve_environment,
    unresolved_in,
)
from turnout.config.litellm import is_litellm_config
from turnout.config.litellm_load import ConfigReport, check_litellm, parse_litellm
from turnout.config.router import RouterConfig, parse_router_config
from turnout.config.server import GatewayConfig, ServerConfig
from turnout.config.store import StoreConfig, given_store_section
from turnout.config.yaml_reader import read_yaml
from turnout.errors import ConfigError

#: Top-level keys of turnout's own format.
TOP_LEVEL_KEYS: tuple[str, ...] = ("server", "store", *RouterConfig.__struct_fields__)


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Read a turnout or LiteLLM config file; `environ` defaults to the process environment."""
    name = os.fspath(path)
    data = read_yaml(name)
    return parse_config(data, environ=environ, source=name)


def parse_config(
    data: Any,
    *,
    environ: Mapping[str, str] | None = None,
    source: str | None = None,
    providers: Collection[str] = (),
) -> GatewayConfig:
    """Build a `GatewayConfig` from parsed data (turnout's format or LiteLLM's).

    A LiteLLM file's deployment whose provider turnout does not serve is skipped;
    `providers` names more that a library's router serves in-process (``Router(config,
    {"sim": ...})`` with ``sim/<model>`` in the file), kept as that provider."""
    where = f"{source}: " if source else ""
    if data is None:
        raise ConfigError(f"{where}the config is empty; it needs at least a model_list")
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where}the top level must be a mapping of settings (model_list, ...), "
            f"got {describe_kind(data)}"
        )
    env: Mapping[str, str] = os.environ if environ is None else environ
    if is_litellm_config(data):
        return parse_litellm(data, env, source, providers)
    return _parse_turnout(data, env, source)


def _parse_turnout(
    data: Mapping[Any, Any], environ: Mapping[str, str], source: str | None
) -> GatewayConfig:
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            close = difflib.get_close_matches(str(key), TOP_LEVEL_KEYS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(
                f"unknown top-level key {key!r}{hint}; known keys: {', '.join(TOP_LEVEL_KEYS)}"
            )
    resolved = resolve_environment(data, environ)
    raise_unresolved(resolved)
    server = _parse_section(
        resolved.get("server"), ServerConfig, lambda path: join_path("server", path)
    )
    store = _parse_section(
        given_store_section(resolved.get("store")),
        StoreConfig,
        lambda path: join_path("store", path),
    )
    router = parse_router_config(
        {k: v for k, v in resolved.items() if k not in ("server", "store")}
    )
    return GatewayConfig(server=server, router=router, store=store, source=source, format="turnout")


def check_config_file(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    unset_ok: bool = False,
) -> ConfigReport:
    """Every problem of a config file, for ``turnout check-config``: all of them for a
    LiteLLM file (`turnout.config.litellm_load`), the first for turnout's own format. With
    `unset_ok`, environment variables that are not set are notes, not errors."""
    name = os.fspath(path)
    env: Mapping[str, str] = os.environ if environ is None else environ
    try:
        data = read_yaml(name)
        if isinstance(data, Mapping) and is_litellm_config(data):
            return check_litellm(data, env, name, unset_ok=unset_ok)
        notes: list[str] = []
        if unset_ok and isinstance(data, Mapping):
            resolved = resolve_environment(data, env)
            notes = [str(error) for error in unresolved_in(resolved)]
            drop_unresolved(resolved)
            # Resolved already: nothing left refers to the environment.
            config = parse_config(resolved, environ={}, source=name)
        else:
            config = parse_config(data, environ=env, source=name)
    except ConfigError as error:
        return ConfigReport(None, (error.message,), (), (), ())
    return ConfigReport(config, (), config.skipped, config.warnings, tuple(notes))


# -- the server and store sections ---------------------------------------------------------------

SectionT = TypeVar("SectionT", ServerConfig, StoreConfig)


def _parse_section(data: Any, kind: type[SectionT], locate: Callable[[str], str]) -> SectionT:
    """`locate`: a path inside the section ("" for the section itself) -> its path in the file."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping, got {describe_kind(data)}", path=locate(""))
    try:
        return msgspec.convert(data, kind, dec_hook=decode_secret, strict=False)
    except msgspec.ValidationError as exc:
        problem, path = split_validation_error(exc)
        raise ConfigError(problem, path=locate(path)) from None
