"""The ``state`` section: backends, URL forms, the password kept secret, LiteLLM's keys."""

from __future__ import annotations

from typing import Any

import pytest

from turnout.config.load import parse_config
from turnout.config.state import StateConfig
from turnout.errors import ConfigError
from turnout.redisio.link import connect, describe
from turnout.secrets import Secret
from turnout.state.factory import store_for
from turnout.state.memory import MemoryStateStore
from turnout.state.redis import RedisStore
from turnout.testing import ManualClock

MODELS = [{"model_name": "chat", "provider": "simulated", "model": "m"}]
LITELLM_MODELS = [{"model_name": "chat", "litellm_params": {"model": "openai/x", "api_key": "k"}}]


def test_in_process_state_is_the_default() -> None:
    config = parse_config({"model_list": MODELS}, environ={})
    assert config.router.state == StateConfig()
    assert isinstance(store_for(config.router, ManualClock()), MemoryStateStore)


@pytest.mark.parametrize(
    ("url", "client", "pipe"),
    [
        ("redis://h:6379/2", "Redis", "Endpoint(h:6379, db=2, tls=False)"),
        ("rediss://h:6380/0", "Redis", "Endpoint(h:6380, db=0, tls=True)"),
        ("unix:///run/redis.sock?db=1", "Redis", "Endpoint(/run/redis.sock, db=1, tls=False)"),
        (
            "redis+sentinel://s1:26379,s2:26380/mymaster/1",
            "Redis",
            "Endpoint(127.0.0.1:6379, db=1, tls=False)",  # the address comes from Sentinel
        ),
        ("redis+cluster://n1:7000,n2:7001", "RedisCluster", "None"),
    ],
)
def test_every_url_form_builds_its_client(url: str, client: str, pipe: str) -> None:
    data = {"model_list": MODELS, "state": {"backend": "redis", "url": url, "timeout_ms": 50}}
    config = parse_config(data, environ={})
    store = store_for(config.router, ManualClock())
    assert isinstance(store, RedisStore)
    built, endpoint = connect(config.router.state, 0.05, 1.0)
    assert client in [kind.__name__ for kind in type(built).mro()]
    assert repr(endpoint) == pipe
    if endpoint is not None and "sentinel" in url:
        assert endpoint.locate is not None


def test_a_password_in_the_url_becomes_a_secret() -> None:
    data = {
        "model_list": MODELS,
        "state": {"backend": "redis", "url": "rediss://app:s3cr%40t-pass@h:6380/0"},
    }
    state = parse_config(data, environ={}).router.state
    assert state.url == "rediss://app@h:6380/0"
    assert state.password == Secret("s3cr@t-pass")
    assert "s3cr" not in repr(state) + describe(state) + str(RedisStore(state).status())
    with pytest.raises(ConfigError, match="both"):
        StateConfig(backend="redis", url="redis://:one@h/0", password=Secret("two"))


@pytest.mark.parametrize(
    ("state", "path"),
    [
        ({"backend": "etcd"}, "state.backend"),
        ({"backend": "redis", "url": "http://h"}, "state.url"),
        ({"backend": "redis", "timeout_ms": 0}, "state.timeout_ms"),
        ({"backend": "redis", "prefix": "a b"}, "state.prefix"),
        ({"backend": "redis", "colour": 1}, "state"),
    ],
)
def test_bad_state_settings_name_their_path(state: dict[str, object], path: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"model_list": MODELS, "state": state}, environ={})
    assert str(caught.value).startswith(path)


def test_litellm_redis_settings_are_imported() -> None:
    config = parse_config(
        {
            "model_list": LITELLM_MODELS,
            "router_settings": {
                "redis_host": "os.environ/REDIS_HOST",
                "redis_port": 6380,
                "redis_password": "os.environ/REDIS_PASSWORD",
            },
        },
        environ={"REDIS_HOST": "cache.internal", "REDIS_PASSWORD": "pw-12345678"},
    )
    state = config.router.state
    assert (state.backend, state.url) == ("redis", "redis://cache.internal:6380/0")
    assert state.password == Secret("pw-12345678")
    assert config.warnings == ()
    by_url = parse_config(
        {"model_list": LITELLM_MODELS, "router_settings": {"redis_url": "rediss://:pw@h:1/3"}},
        environ={},
    ).router.state
    assert (by_url.url, by_url.password) == ("rediss://h:1/3", Secret("pw"))
    with pytest.raises(ConfigError, match=r"^router_settings\.redis_url: 'http'"):
        parse_config(
            {"model_list": LITELLM_MODELS, "router_settings": {"redis_url": "http://h"}},
            environ={},
        )


@pytest.mark.parametrize(
    "args",
    [
        ("SCRIPT LOAD", "return 1"),
        ("EVALSHA", "a" * 40, 2, "t:{chat}:r:x", "t:{chat}:l:x", 1.5, b"\x00\xff", "é"),
        ("PING",),
    ],
)
def test_commands_packed_by_hiredis_are_redis_pys_bytes(args: tuple[Any, ...]) -> None:
    from redis.asyncio.connection import Connection

    from turnout.redisio.link import _packed_by_hiredis

    ours = b"".join(_packed_by_hiredis(Connection)().pack_command(*args))
    assert ours == b"".join(Connection().pack_command(*args))
