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

Every error is a `ConfigError` that names the exact path of the problem, in the file's terms:
``model_list[2].weight: Expected `float`, got `str```, ``server.port: Expected `int` <= 65535``,
``model_list[0].litellm_params.rpm: ...`` for a LiteLLM file.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from turnout.config.decoding import decode_secret, split_validation_error
from turnout.config.litellm import LiteLLMImport, import_litellm, is_litellm_config
from turnout.config.router import RouterConfig, parse_router_config
from turnout.config.yaml_reader import read_yaml
from turnout.errors import ConfigError
from turnout.secrets import Secret

_MiB = 1024 * 1024


class ServerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the gateway's HTTP server listens and behaves."""

    #: Address to listen on; ``0.0.0.0`` listens on every interface.
    host: str = "127.0.0.1"
    #: TCP port to listen on (0: any free port, announced in the start-up log).
    port: Annotated[int, Meta(ge=0, le=65535)] = 4000
    #: Worker processes serving requests; each keeps its own router state.
    workers: Annotated[int, Meta(ge=1)] = 1
    #: Bearer key every client request must present (None: no authentication).
    master_key: Secret | None = None
    #: Largest request body accepted, in bytes; larger ones are answered with 413.
    max_body_bytes: Annotated[int, Meta(gt=0)] = 10 * _MiB
    #: Kernel send buffer of a connection once it streams, in bytes (0: the kernel's own,
    #: self-tuning size, up to megabytes). Bounds how far a stream runs ahead of a client that
    #: reads slowly or not at all: past it, the relay waits and stops reading its upstream.
    stream_send_buffer_bytes: Annotated[int, Meta(ge=0)] = 256 * 1024
    #: Seconds to let requests in flight finish after a shutdown signal before closing them.
    shutdown_timeout: Annotated[float, Meta(ge=0)] = 30.0
    #: Seconds a client has to send a request's line and headers, counted from the connection's
    #: start or, on a kept-alive connection, from the request's first byte.
    header_timeout: Annotated[float, Meta(gt=0)] = 10.0
    #: Seconds a request body may take, plus one more for every `body_min_rate` bytes received.
    body_timeout: Annotated[float, Meta(gt=0)] = 30.0
    #: Bytes per second a request body must average once `body_timeout` has passed.
    body_min_rate: Annotated[int, Meta(gt=0)] = 16384
    #: Seconds an idle kept-alive connection stays open waiting for its next request.
    keepalive_timeout: Annotated[float, Meta(gt=0)] = 75.0
    #: Open client connections per process (None: half the process's open-file limit, since
    #: each may need an upstream connection too, and at most 10,000). At the cap, the connection
    #: idle longest (or whose body has stalled below `body_min_rate`) is closed to make room;
    #: when every one is busy, a new one gets a 503.
    max_connections: Annotated[int, Meta(ge=1)] | None = None
    #: Bearer token that may read /metrics besides the master key (for Prometheus scrapers).
    metrics_token: Secret | None = None
    #: Serve /metrics without any key even when a master key is set (for a private port).
    metrics_public: bool = False
    #: Least severe log level written.
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    #: Reserved for the built-in demo (simulated providers, no keys needed).
    demo: bool = False

    def __post_init__(self) -> None:
        if self.master_key is not None and not self.master_key:
            raise ConfigError("master_key must not be empty (leave it out for no authentication)")
        if self.metrics_token is not None and not self.metrics_token:
            raise ConfigError("metrics_token must not be empty (leave it out for none)")


class GatewayConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Everything a gateway needs: server settings, the router's config, and their origin."""

    server: ServerConfig
    router: RouterConfig
    #: One line per key turnout ignores (or reads differently), each naming its path.
    warnings: tuple[str, ...] = ()
    #: The file the config was read from (None: built from data in memory).
    source: str | None = None
    #: Which format the file had.
    format: Literal["turnout", "litellm"]
    #: Server settings given on the command line: they win over the file, at start and on
    #: every reload, so a reload never sees them as changed.
    command_line: tuple[tuple[str, Any], ...] = ()


def with_command_line(config: GatewayConfig, changes: Mapping[str, Any]) -> GatewayConfig:
    """`config` with server settings from the command line applied over the file's, and
    remembered for reloads; a bad value is a `ConfigError`."""
    if not changes:
        return config
    try:
        server = msgspec.convert(
            {**msgspec.structs.asdict(config.server), **changes},
            type(config.server),
            from_attributes=True,
        )
    except msgspec.ValidationError as exc:
        raise ConfigError(f"command line: {exc}") from None
    return msgspec.structs.replace(config, server=server, command_line=tuple(changes.items()))


#: Top-level keys of turnout's own format.
TOP_LEVEL_KEYS: tuple[str, ...] = ("server", *RouterConfig.__struct_fields__)


def load_config(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> GatewayConfig:
    """Read a turnout or LiteLLM config file; `environ` defaults to the process environment."""
    name = os.fspath(path)
    data = read_yaml(name)
    return parse_config(data, environ=environ, source=name)


def parse_config(
    data: Any, *, environ: Mapping[str, str] | None = None, source: str | None = None
) -> GatewayConfig:
    """Build a `GatewayConfig` from parsed data (turnout's format or LiteLLM's)."""
    where = f"{source}: " if source else ""
    if data is None:
        raise ConfigError(f"{where}the config is empty; it needs at least a model_list")
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"{where}the top level must be a mapping of settings (model_list, ...), "
            f"got {_kind(data)}"
        )
    env: Mapping[str, str] = os.environ if environ is None else environ
    if is_litellm_config(data):
        return _parse_litellm(data, env, source)
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
    server = _parse_server(resolved.get("server"), lambda path: _join("server", path))
    router = parse_router_config({k: v for k, v in resolved.items() if k != "server"})
    return GatewayConfig(server=server, router=router, source=source, format="turnout")


def _parse_litellm(
    data: Mapping[Any, Any], environ: Mapping[str, str], source: str | None
) -> GatewayConfig:
    declared = data.get("environment_variables")
    hint = set(declared) if isinstance(declared, Mapping) else set()
    imported = import_litellm(resolve_environment(data, environ, declared=hint))
    raise_unresolved(imported.router)
    raise_unresolved(imported.server)
    server = _parse_server(
        imported.server, lambda path: imported.source_path(_join("server", path))
    )
    try:
        router = parse_router_config(imported.router)
    except ConfigError as exc:
        raise _in_source_terms(exc, imported) from None
    return GatewayConfig(
        server=server,
        router=router,
        warnings=tuple(imported.warnings),
        source=source,
        format="litellm",
    )


def _in_source_terms(error: ConfigError, imported: LiteLLMImport) -> ConfigError:
    """The error with its turnout path replaced by the LiteLLM path the value came from."""
    path, sep, problem = str(error).partition(": ")
    if not sep:
        return error
    source_path = imported.source_path(path)
    return ConfigError(problem, path=source_path) if source_path != path else error


# -- the server section --------------------------------------------------------------------------


def _parse_server(data: Any, locate: Callable[[str], str]) -> ServerConfig:
    """`locate`: a path inside the section ("" for the section itself) -> its path in the file."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"expected a mapping, got {_kind(data)}", path=locate(""))
    try:
        return msgspec.convert(data, ServerConfig, dec_hook=decode_secret, strict=False)
    except msgspec.ValidationError as exc:
        problem, path = split_validation_error(exc)
        raise ConfigError(problem, path=locate(path)) from None


# -- values from the environment -----------------------------------------------------------------

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
            key: resolve_environment(value, environ, path=_join(path, key), declared=declared)
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


def _join(path: str, key: Any) -> str:
    if path and key != "":
        return f"{path}.{key}"
    return path or str(key)


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__


__all__ = [
    "TOP_LEVEL_KEYS",
    "GatewayConfig",
    "ServerConfig",
    "load_config",
    "parse_config",
    "raise_unresolved",
    "resolve_environment",
]
