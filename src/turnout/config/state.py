"""Where the router's runtime state lives: in the process (the default) or shared in Redis.

``state: {backend: redis, url: redis://host:6379/0}`` makes every worker and every gateway
instance pointed at the same Redis share one view of health, ejections, probes, usage and
latency (`turnout.state.redis`). URLs:

- ``redis://[[user]:password@]host[:port][/db]`` and ``rediss://`` (TLS);
- ``unix:///path/to/redis.sock[?db=0]``;
- ``redis+sentinel://[[user]:password@]host:port[,host:port...]/service_name[/db]``: the
  Sentinels to ask for the master of ``service_name``;
- ``redis+cluster://[[user]:password@]host:port[,host:port...]`` (and ``rediss+cluster://``):
  seed nodes of a Redis Cluster.

A password in the URL is taken out of it when the config is read and kept as a `Secret`
(``password``), so that the URL can be shown in logs, errors and ``repr`` as it is.
"""

from __future__ import annotations

from typing import Annotated, Literal, Protocol, cast
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from msgspec import Meta, Struct
from msgspec.structs import force_setattr

from turnout.errors import ConfigError
from turnout.secrets import Secret

SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)

Milliseconds = Annotated[float, Meta(ge=0, le=60_000)]


class StateConfig(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The state backend. Changing it takes a restart (a reload keeps the running store)."""

    #: ``memory``: each process keeps its own state. ``redis``: shared through `url`.
    backend: Literal["memory", "redis"] = "memory"
    url: str = "redis://127.0.0.1:6379/0"
    #: The Redis password (AUTH); a password written in `url` is moved here.
    password: Secret | None = None
    #: Every key starts with it (one Redis shared by several gateways: one prefix each).
    prefix: Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")] = (
        "turnout"
    )
    #: How long a group's records read from Redis serve routing decisions without another
    #: read (each request's own round trips refresh them sooner).
    cache_ms: Milliseconds = 100.0
    #: A Redis command slower than this counts as Redis being down: routing goes on local state.
    timeout_ms: Annotated[float, Meta(gt=0, le=60_000)] = 150.0
    #: While Redis is down, how often to try it again (seconds).
    retry_interval: Annotated[float, Meta(gt=0, le=3600)] = 1.0
    #: An in-flight lease (and a probe token) lasts this long unless its instance renews it
    #: (every third of it): a crashed instance's attempts stop counting after at most this.
    lease_ttl: Annotated[float, Meta(ge=1, le=86_400)] = 30.0
    #: Records of deployments nobody used for this long expire from Redis (seconds).
    record_ttl: Annotated[float, Meta(ge=60, le=30 * 86_400)] = 86_400.0

    def __post_init__(self) -> None:
        scheme, _, _ = self.url.partition("://")
        if scheme not in SCHEMES:
            raise ConfigError(
                f"{scheme!r} is no Redis URL scheme (use one of {', '.join(SCHEMES)})",
                path="url",
            )
        move_password(self)


class _WithPassword(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def password(self) -> Secret | None: ...


def move_password(config: _WithPassword) -> None:
    """A password written in `config.url` moved to `config.password` (a `Secret`), so that the
    URL can be shown and logged; both given and different is an error."""
    url, password = split_password(config.url)
    if password is not None:
        if config.password is not None and config.password != password:
            raise ConfigError("a password is given in both url and password", path="url")
        struct = cast(Struct, config)  # a frozen config Struct: set once, while it is read
        force_setattr(struct, "url", url)
        force_setattr(struct, "password", password)


def split_password(url: str) -> tuple[str, Secret | None]:
    """The URL without its password, and the password (None: there was none)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    host = parts.netloc.rpartition("@")[2]
    user = f"{quote(unquote(parts.username), safe='')}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=user + host)), Secret(unquote(parts.password))


#: LiteLLM's ``router_settings`` keys that share its router's state in Redis.
LITELLM_REDIS_KEYS = ("redis_url", "redis_host", "redis_port", "redis_password")


def litellm_redis(keys: dict[str, tuple[object, str]]) -> dict[str, tuple[object, str]]:
    """turnout's ``state`` fields (value, LiteLLM path) from LiteLLM's Redis settings:
    ``redis_url`` as it is, else ``redis://redis_host:redis_port/0``; ``redis_password``."""
    if not keys:
        return {}
    first = next(iter(keys.values()))[1]
    fields: dict[str, tuple[object, str]] = {"backend": ("redis", first)}
    if "redis_url" in keys:
        fields["url"] = keys["redis_url"]
    elif "redis_host" in keys or "redis_port" in keys:
        host, where = keys.get("redis_host", ("127.0.0.1", first))
        port, _ = keys.get("redis_port", (6379, first))
        fields["url"] = (f"redis://{host}:{port}/0", where)
    if "redis_password" in keys and keys["redis_password"][0] not in (None, ""):
        fields["password"] = keys["redis_password"]
    return fields
