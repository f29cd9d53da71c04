"""The connection to Redis: a client for any of the URL forms `StateConfig` accepts.

redis-py's asyncio client (with hiredis' parser) speaks to a single Redis or Valkey, through
Sentinel to a replicated one, and to a Cluster; this module picks the right one from the URL
and hands the password (kept as a `Secret` since the config was read) to the client alone. The
URL as shown in logs never carries it (`describe`). Beside the client, it describes the same
server as an `Endpoint` for the hot path's pipelined connection (`turnout.redisio.pipe`):
same address, TLS settings, login and database, or the same Sentinel; none for a Cluster.
"""

from __future__ import annotations

import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

from turnout.config.state import StateConfig
from turnout.errors import ConfigError
from turnout.redisio.pipe import Endpoint, Script


def describe(config: StateConfig) -> str:
    """The URL without credentials, for logs and /health."""
    parts = urlsplit(config.url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


def is_cluster(config: StateConfig) -> bool:
    """Whether the URL names a Redis Cluster (where a script touches one hash slot)."""
    return urlsplit(config.url).scheme.endswith("+cluster")


def _hosts(netloc: str, default_port: int) -> list[tuple[str, int]]:
    hosts = []
    for item in netloc.rpartition("@")[2].split(","):
        host, _, port = item.rpartition(":") if ":" in item else (item, "", "")
        try:
            hosts.append((host or "127.0.0.1", int(port) if port else default_port))
        except ValueError:
            raise ConfigError(f"bad port in {item!r}", path="state.url") from None
    return hosts


def connect(
    config: StateConfig, timeout: float, connect_timeout: float
) -> tuple[Any, Endpoint | None]:
    """A client for `config.url` (no I/O yet: it connects on its first command), and the
    pipelined connection's endpoint for the same server (none for a Cluster). `timeout`
    bounds each command, `connect_timeout` opening a connection."""
    import redis.asyncio as redis

    password = config.password.reveal() if config.password is not None else None
    parts = urlsplit(config.url)
    scheme = parts.scheme
    username = parts.username or None
    common: dict[str, Any] = {
        "password": password,
        "username": username,
        "socket_timeout": timeout,
        "socket_connect_timeout": connect_timeout,
        "health_check_interval": 0,
    }
    if scheme.endswith("+sentinel"):
        from redis.asyncio.sentinel import Sentinel

        path = [p for p in parts.path.split("/") if p]
        if not path:
            raise ConfigError(
                "a Sentinel URL names its service: .../service_name", path="state.url"
            )
        db = int(path[1]) if len(path) > 1 else 0
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            _hosts(parts.netloc, 26379),
            sentinel_kwargs={"password": password, "socket_timeout": connect_timeout},
            ssl=scheme.startswith("rediss"),
            **common,
        )
        service = path[0]
        client = sentinel.master_for(service, redis_class=_sentinel_client(), db=db)
        pool = client.connection_pool
        pool.connection_class = _packed_by_hiredis(pool.connection_class)

        async def locate() -> tuple[str, int]:
            host, port = await sentinel.discover_master(service)
            return str(host), int(port)

        tls = _tls({"ssl_cert_reqs": "required"}) if scheme.startswith("rediss") else None
        endpoint = Endpoint(tls=tls, username=username, password=password, db=db, locate=locate)
        return client, endpoint
    if scheme.endswith("+cluster"):
        from redis.asyncio.cluster import ClusterNode, RedisCluster

        nodes = [ClusterNode(host, port) for host, port in _hosts(parts.netloc, 6379)]
        cluster = RedisCluster(startup_nodes=nodes, ssl=scheme.startswith("rediss"), **common)
        return cluster, None
    query = parse_qs(parts.query)
    if "password" in query:
        raise ConfigError("put the Redis password in state.password", path="state.url")
    client = redis.from_url(config.url, **common)
    pool = client.connection_pool
    pool.connection_class = _packed_by_hiredis(pool.connection_class)
    return client, _endpoint(config.url, username, password)


def _endpoint(url: str, username: str | None, password: str | None) -> Endpoint:
    """The pipe's endpoint for a direct URL, read by redis-py's own URL parser so that both
    connections agree (TLS options included: ``?ssl_cert_reqs=none``...)."""
    from redis.asyncio.connection import SSLConnection, parse_url

    options = parse_url(url)
    kind = options.pop("connection_class", None)
    tls = _tls(dict(options)) if kind is not None and issubclass(kind, SSLConnection) else None
    return Endpoint(
        host=str(options.get("host", "127.0.0.1")),
        port=int(options.get("port", 6379)),
        path=options.get("path"),
        tls=tls,
        username=username,
        password=password,
        db=int(options.get("db", 0)),
    )


def _tls(options: dict[str, Any]) -> ssl.SSLContext:
    """The TLS context redis-py would use for these ``ssl_*`` options."""
    from redis.asyncio.connection import SSLConnection

    settings = {k: v for k, v in options.items() if k.startswith("ssl_")}
    context: ssl.SSLContext = SSLConnection(**settings).ssl_context.get()
    return context


_SENTINEL_CLIENT: list[type[Any]] = []


def _sentinel_client() -> type[Any]:
    """The client for a Sentinel's master: closing it also closes the connections to the
    Sentinels it asked where the master is (redis-py leaves those open)."""
    if not _SENTINEL_CLIENT:
        from redis.asyncio import Redis

        class SentinelMasterClient(Redis):
            async def aclose(self, close_connection_pool: bool | None = None) -> None:
                await super().aclose(close_connection_pool)
                pool: Any = self.connection_pool
                for sentinel in pool.sentinel_manager.sentinels:
                    await sentinel.aclose()

        _SENTINEL_CLIENT.append(SentinelMasterClient)
    return _SENTINEL_CLIENT[0]


#: Connection classes whose commands hiredis packs, one per redis-py class.
_PACKED: dict[type[Any], type[Any]] = {}


def _packed_by_hiredis(base: type[Any]) -> type[Any]:
    """`base` with its commands packed by hiredis (C) instead of redis-py's Python packer, which
    costs about 18 µs of a script call's 20 (two per request); hiredis is installed with the
    client (``redis[hiredis]``). Replies are parsed by hiredis either way."""
    packed = _PACKED.get(base)
    if packed is None:
        import hiredis

        def pack_command(self: Any, *args: Any) -> list[bytes]:
            first = args[0]
            if isinstance(first, str) and " " in first:
                # A command of two words ("SCRIPT LOAD") is sent as two arguments.
                args = (*first.split(), *args[1:])
            return [hiredis.pack_command(args)]

        packed = _PACKED[base] = type(f"Hiredis{base.__name__}", (base,), {})
        packed.pack_command = pack_command
    return packed


async def evalsha(script: Script, keys: list[str], args: list[Any], client: Any) -> Any:
    """`script` through redis-py's `client` (a Cluster routes it to its keys' node); sent in
    full when the server does not know it."""
    from redis.exceptions import NoScriptError

    try:
        return await client.evalsha(script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return await client.eval(script.body, len(keys), *keys, *args)


def is_redis_failure(exc: BaseException) -> bool:
    """Whether `exc` is Redis failing (unreachable, slow, refusing): routing then fails open."""
    from redis.exceptions import RedisError

    return isinstance(exc, (RedisError, OSError, TimeoutError))
