"""Which store keeps Responses API answers: the one shared as widely as the gateway runs.

A follow-up turn (``previous_response_id``), a GET or a DELETE reaches whichever worker or
instance the connection lands on, so by default (``backend: auto``) the store is as shared as
the gateway: Redis when routing state is in Redis, since instances then run side by side; the
SQLite file in the workers' shared directory when one gateway runs several workers; memory for a
single process. ``file`` with a `path` keeps responses across restarts. A choice that cannot
work (``redis`` without Redis state, ``file`` without a path nor workers) is a `ConfigError`,
raised before the gateway starts (`check`).
"""

from __future__ import annotations

import logging
import os
from typing import Literal

from turnout.config.server import GatewayConfig, ResponsesStoreConfig
from turnout.config.state import StateConfig
from turnout.errors import ConfigError
from turnout.gateway.responses_store import ResponseStore
from turnout.gateway.responses_store_file import FileResponseStore
from turnout.gateway.responses_store_guard import GuardedStore
from turnout.gateway.responses_store_memory import MemoryResponseStore

logger = logging.getLogger("turnout.gateway")

#: The file's name in the workers' shared directory.
SHARED_FILE = "responses.sqlite3"
_WHERE = "server.responses_store"

Backend = Literal["memory", "file", "redis"]


def choose(store: ResponsesStoreConfig, state: StateConfig, workers: bool) -> Backend:
    """The backend `store` asks for, with routing state in `state`; `workers`: whether the
    gateway runs several workers (which share a directory)."""
    backend = store.backend
    if backend == "auto":
        if store.path is not None:
            return "file"
        if state.backend == "redis":
            return "redis"
        return "file" if workers else "memory"
    if backend == "redis" and state.backend != "redis":
        raise ConfigError(
            "redis keeps responses in the routing state's Redis: set state.backend to redis, "
            "or choose auto, memory or file",
            path=f"{_WHERE}.backend",
        )
    if backend == "file" and store.path is None and not workers:
        raise ConfigError(
            "the file backend needs a path when the gateway runs one worker (several share a "
            "file in their own directory)",
            path=f"{_WHERE}.path",
        )
    return backend


def check(config: GatewayConfig) -> None:
    """Raise the `ConfigError` that building the store would raise (before workers start)."""
    choose(config.server.responses_store, config.router.state, config.server.workers > 1)


def response_store(config: GatewayConfig, shared_dir: str | None) -> GuardedStore:
    """A new store for `config`; `shared_dir`: the workers' shared directory (None: one
    process). Nothing is opened yet: the file or Redis is reached on first use."""
    settings = config.server.responses_store
    state = config.router.state
    backend = choose(settings, state, shared_dir is not None)
    store: ResponseStore
    if backend == "redis":
        # Imported only when asked for: the Redis client loads much (OpenTelemetry among it).
        from turnout.gateway.responses_store_redis import RedisResponseStore

        redis = RedisResponseStore(settings, state)
        store, where = redis, f"Redis at {redis.where}"
    elif backend == "file":
        path = settings.path
        if path is None:
            assert shared_dir is not None  # `choose` said so
            path = os.path.join(shared_dir, SHARED_FILE)
        store = FileResponseStore(settings, path)
        where = f"the SQLite file {path}"
    else:
        store = MemoryResponseStore(settings)
        where = "this process's memory"
        if shared_dir is not None:
            logger.warning(
                "%s.backend is memory with several workers: a follow-up turn served by another "
                "worker than its previous response will not find it",
                _WHERE,
            )
    logger.info("Responses API answers are kept in %s", where)
    return GuardedStore(store)
