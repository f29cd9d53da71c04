"""The gateway's own settings: the ``server`` section of a config file, and a loaded config.

`ServerConfig` is what `turnout serve` listens and limits with; `GatewayConfig` is a whole loaded
file (server settings, the router's config, the warnings an import produced, what the command
line overrode).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from turnout.config.router import RouterConfig
from turnout.config.store import StoreConfig
from turnout.errors import ConfigError
from turnout.secrets import Secret

_MiB = 1024 * 1024


class RequestLogConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The request log: one JSON line per routed request (`turnout.observe.request_log`)."""

    #: On by default: an operator can follow every request, its attempts and its cost.
    enabled: bool = True
    #: A file the lines are appended to (None: standard output).
    path: str | None = None
    #: Log the request's messages and the answer's text too (shortened). Off unless asked:
    #: prompts and answers may hold what must not sit in logs.
    capture_content: bool = False

    def __post_init__(self) -> None:
        if self.path is not None and not self.path.strip():
            raise ConfigError("request_log.path must not be empty (leave it out for stdout)")


class ResponsesStoreConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Where Responses API answers are kept for ``previous_response_id`` and
    ``GET /v1/responses/{id}`` (`turnout.gateway.responses_store`), and how many.

    A follow-up turn may reach any worker or instance, so by default (``auto``) the store is
    shared as widely as the gateway runs: Redis when routing state is in Redis (``state``), a
    SQLite file in the workers' shared directory with several workers, memory otherwise.
    """

    #: ``auto`` (as above), ``memory`` (this process only), ``file`` (a SQLite file: `path`,
    #: else one in the workers' shared directory) or ``redis`` (``state``'s Redis).
    backend: Literal["auto", "memory", "file", "redis"] = "auto"
    #: The SQLite file of the ``file`` backend, kept across restarts (None: a file in the
    #: workers' shared directory, gone when the gateway stops). Setting it with ``auto``
    #: chooses ``file``.
    path: str | None = None
    #: How many are kept in memory or in the file (Redis: bounded by `ttl` alone); the least
    #: recently used go first past this or `max_bytes`. 0: none kept.
    max_responses: Annotated[int, Meta(ge=0)] = 10_000
    #: Bound on their JSON size together, in bytes (memory and file).
    max_bytes: Annotated[int, Meta(ge=0)] = 256 * _MiB
    #: Bound on one response's JSON size, its whole conversation included: a larger one is
    #: answered but not kept.
    max_response_bytes: Annotated[int, Meta(ge=0)] = 32 * _MiB
    #: Seconds a response is kept after it was stored.
    ttl: Annotated[float, Meta(gt=0)] = 24 * 3600.0

    def __post_init__(self) -> None:
        if self.path is not None:
            if not self.path.strip():
                raise ConfigError("must not be empty (leave it out for none)", path="path")
            if self.backend in ("memory", "redis"):
                raise ConfigError(
                    f"a path is for the file backend, not {self.backend!r}", path="path"
                )


class ServerConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the gateway's HTTP server listens and behaves."""

    #: Address to listen on; ``0.0.0.0`` listens on every interface.
    host: str = "127.0.0.1"
    #: TCP port to listen on (0: any free port, announced in the start-up log).
    port: Annotated[int, Meta(ge=0, le=65535)] = 4000
    #: Worker processes serving requests on one port. `/metrics` and `/health` describe them
    #: all; each routes on its own health state unless routing state is in a shared store.
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
    #: One JSON line per routed request, refusals included (logger ``turnout.requests``).
    request_log: RequestLogConfig = RequestLogConfig()
    #: One line per HTTP request, whatever its path and status (logger ``turnout.access``).
    access_log: bool = True
    #: Responses API answers kept for follow-up turns (0 responses: none kept).
    responses_store: ResponsesStoreConfig = ResponsesStoreConfig()
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
    #: Where keys, teams, users and spend are kept (`turnout.governance`).
    store: StoreConfig = StoreConfig()
    #: One line per key turnout ignores (or reads differently), each naming its path.
    warnings: tuple[str, ...] = ()
    #: One line per deployment left out of the file as written (a provider turnout lacks, a
    #: wildcard), each naming its path: logged as errors at start, fatal with ``--strict``.
    skipped: tuple[str, ...] = ()
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
